//! One distributed run: wait for workers, reset the target, split the users, start everyone at
//! one instant, collect results or notice losses, read the final stock.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flashsale::pb;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::registry::{Member, Registry, RunEvent};
use super::{CoordinatorConfig, CoordinatorError, HEARTBEAT_TIMEOUT};
use crate::checkout::book::BookState;
use crate::checkout::{Control, normalize_target};
use crate::cluster::verify::verify;
use crate::cluster::wire::{book_to_wire, plan_from_wire};
use crate::spec::LoadSpec;

/// Time between handing out assignments and the shared start: enough for every worker to
/// receive its assignment and open its connections.
const START_DELAY: Duration = Duration::from_millis(1500);
/// Slack after the longest a run can take before missing workers count as lost.
const GRACE: Duration = Duration::from_secs(30);

/// Where one worker stands during the run.
struct Share {
    member: Member,
    users: u32,
    /// Its users are `first_user .. first_user + users`.
    first_user: u64,
    last_heard: Instant,
    attempts_seen: u64,
    /// Highest attempts per second between two heartbeats.
    peak_rate: f64,
    result: Option<pb::WorkerResult>,
    /// Why it was lost, and when that was noticed.
    lost: Option<(String, Instant)>,
    /// Its report was impossible for its share: dropped, and `lost` says why.
    faulty: bool,
}

impl Share {
    fn pending(&self) -> bool {
        self.result.is_none() && self.lost.is_none()
    }

    fn heartbeat(&mut self, attempts: u64) {
        let now = Instant::now();
        let secs = now.duration_since(self.last_heard).as_secs_f64();
        if attempts > self.attempts_seen && secs > 0.0 {
            let rate = (attempts - self.attempts_seen) as f64 / secs;
            self.peak_rate = self.peak_rate.max(rate);
        }
        self.attempts_seen = self.attempts_seen.max(attempts);
        self.last_heard = now;
    }

    fn lose(&mut self, reason: String) {
        self.lost = Some((reason, Instant::now()));
    }

    /// Takes the worker's result if it is possible for its share of `spec`, received `window`
    /// after the assignments went out; else names the worker faulty and treats its share like
    /// a lost worker's (its statistics are never merged).
    fn report(&mut self, result: pb::WorkerResult, spec: &LoadSpec, window: Duration) {
        let share = LoadSpec {
            users: self.users,
            first_user: self.first_user,
            ..spec.clone()
        };
        let faults = verify(&share, window, &result);
        if faults.is_empty() {
            self.result = Some(result);
            return;
        }
        let reasons: Vec<String> = faults.iter().map(ToString::to_string).collect();
        let reasons = reasons.join("; ");
        tracing::warn!(worker = %self.member.name, %reasons, "faulty report dropped");
        self.faulty = true;
        self.lose(format!("faulty report: {reasons}"));
    }

    /// Attempts per second per user this worker achieved, if it reported.
    fn rate_per_user(&self) -> Option<f64> {
        let result = self
            .result
            .as_ref()
            .filter(|r| r.error.is_empty() && r.elapsed_s > 0.0)?;
        let attempts = result.stats.as_ref()?.attempts as f64;
        Some(attempts / (f64::from(self.users.max(1)) * result.elapsed_s))
    }

    /// Upper estimate of what a lost worker did without reporting it: in a burst, one attempt
    /// per user; in a sustained run, the attempts its heartbeats counted, plus twice the faster
    /// of its own peak rate and its peers' rate over the time it went unheard, plus one in
    /// flight per user.
    fn unreported(&self, burst: Option<u32>, started: Instant, peer_rate_per_user: f64) -> u64 {
        match &self.lost {
            None => 0,
            Some(_) if let Some(clicks) = burst => u64::from(self.users) * u64::from(clicks),
            Some((_, at)) => {
                let unheard_since = self.last_heard.max(started);
                let gap = at.saturating_duration_since(unheard_since).as_secs_f64();
                let rate = self
                    .peak_rate
                    .max(peer_rate_per_user * f64::from(self.users));
                self.attempts_seen + (2.0 * rate * gap).ceil() as u64 + u64::from(self.users)
            }
        }
    }
}

/// Splits `users` as evenly as possible: 1000 over 3 is 334, 333, 333.
pub fn split(users: u32, workers: usize) -> Vec<u32> {
    let n = workers as u32;
    (0..n)
        .map(|i| users / n + u32::from(i < users % n))
        .collect()
}

pub async fn run(
    config: &CoordinatorConfig,
    registry: &Registry,
    run_id: u64,
    request: pb::RunRequest,
) -> Result<pb::RunResult, CoordinatorError> {
    let plan = request
        .plan
        .clone()
        .ok_or_else(|| CoordinatorError::InvalidRun("no load plan".into()))?;
    // Validate the plan as a worker will see it.
    let spec = plan_from_wire(&pb::LoadPlan {
        users: request.users,
        ..plan.clone()
    })
    .map_err(|e| CoordinatorError::InvalidRun(e.to_string()))?;
    let settle = match request.settle_ms {
        0 => crate::spec::DEFAULT_SETTLE,
        ms => Duration::from_millis(ms),
    };
    crate::spec::validate_settle(settle)
        .map_err(|e| CoordinatorError::InvalidRun(e.to_string()))?;
    let target = match (request.target.as_str(), &config.default_target) {
        ("", Some(default)) => default.clone(),
        ("", None) => return Err(CoordinatorError::NoTarget),
        (given, _) => normalize_target(given)?,
    };

    let members = registry
        .wait_for(config.expect_workers, config.join_timeout)
        .await;
    if members.len() < config.expect_workers {
        return Err(CoordinatorError::NotEnoughWorkers {
            present: members.len(),
            expected: config.expect_workers,
            waited: config.join_timeout,
        });
    }
    if (request.users as usize) < members.len() {
        return Err(CoordinatorError::InvalidRun(format!(
            "{} users cannot be split over {} workers",
            request.users,
            members.len()
        )));
    }

    let mut control = Control::connect(&target)
        .await?
        .with_admin_token(config.admin_token.as_deref())?;
    let before = if request.reset {
        let strategy = flashsale_server::Strategy::from_wire(request.safe_strategy)
            .ok()
            .flatten();
        control.reset_verified(request.stock, strategy).await?
    } else {
        control.stock().await?
    };

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let routing = registry.begin_run(run_id, events_tx);
    let start_at = SystemTime::now() + START_DELAY;
    let assigned = Instant::now();
    let start_ms = start_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut shares: BTreeMap<u64, Share> = BTreeMap::new();
    let mut first_user = 0u64;
    for (member, users) in members.iter().zip(split(request.users, members.len())) {
        let assignment = pb::Assignment {
            run_id,
            target: target.clone(),
            plan: Some(pb::LoadPlan {
                users,
                first_user,
                round: before.round,
                ..plan.clone()
            }),
            start_at_unix_ms: start_ms,
        };
        let message = pb::CoordinatorMessage {
            msg: Some(pb::coordinator_message::Msg::Assignment(assignment)),
        };
        let lost = member.outbox.send(Ok(message)).await.err().map(|_| {
            (
                "gone before its assignment was sent".to_string(),
                Instant::now(),
            )
        });
        shares.insert(
            member.id,
            Share {
                member: member.clone(),
                users,
                first_user,
                last_heard: Instant::now(),
                attempts_seen: 0,
                peak_rate: 0.0,
                result: None,
                lost,
                faulty: false,
            },
        );
        first_user += u64::from(users);
    }
    tracing::info!(run_id, %target, users = request.users, workers = shares.len(), "run assigned");

    let longest = START_DELAY + spec.duration.unwrap_or_default() + spec.timeout + GRACE;
    collect(
        &mut shares,
        &mut events,
        (&spec, assigned),
        Instant::now() + longest,
    )
    .await;
    drop(routing);
    let elapsed_s = SystemTime::now()
        .duration_since(start_at)
        .unwrap_or_default()
        .as_secs_f64();

    let failures: Vec<String> = shares
        .values()
        .filter_map(|s| s.result.as_ref().filter(|r| !r.error.is_empty()))
        .map(|r| r.error.clone())
        .collect();
    if failures.len() == shares.len() {
        return Err(CoordinatorError::AllWorkersFailed(failures.join("; ")));
    }
    let (after, unsettled) = control.settle(settle).await?;
    let (book, book_unavailable) = match control.book(&after, &spec.user_prefix).await? {
        BookState::Complete(book) => (Some(book_to_wire(&book)), String::new()),
        BookState::Unavailable(why) => (None, why),
    };
    let burst = spec.duration.is_none().then_some(spec.clicks);
    let started = assigned + START_DELAY;
    let peer_rate = shares
        .values()
        .filter_map(Share::rate_per_user)
        .fold(0.0, f64::max);
    let workers = shares
        .into_values()
        .map(|share| {
            let unreported_attempts = share.unreported(burst, started, peer_rate);
            let result = share.result.unwrap_or_default();
            pb::WorkerReport {
                name: share.member.name,
                users: share.users,
                lost: share.lost.is_some() && !share.faulty,
                faulty: share.faulty,
                error: share.lost.map_or(result.error, |(reason, _)| reason),
                stats: result.stats,
                elapsed_s: result.elapsed_s,
                attempts_seen: share.attempts_seen,
                unreported_attempts,
                connections: result.connections,
                threads: result.threads,
                first_user: share.first_user,
            }
        })
        .collect();
    Ok(pb::RunResult {
        target,
        before: Some(before),
        after: Some(after),
        workers,
        elapsed_s,
        book,
        book_unavailable,
        unsettled: unsettled.unwrap_or_default(),
    })
}

/// Takes run events until every worker reported or was lost, or `deadline` passes; checks
/// each result against its share of `spec`, the assignments having gone out at `assigned`.
async fn collect(
    shares: &mut BTreeMap<u64, Share>,
    events: &mut mpsc::UnboundedReceiver<RunEvent>,
    (spec, assigned): (&LoadSpec, Instant),
    deadline: Instant,
) {
    let mut tick = tokio::time::interval(HEARTBEAT_TIMEOUT / 4);
    while shares.values().any(Share::pending) {
        tokio::select! {
            event = events.recv() => match event {
                Some(RunEvent::Heartbeat { worker, attempts }) => {
                    if let Some(share) = shares.get_mut(&worker) {
                        share.heartbeat(attempts);
                    }
                }
                Some(RunEvent::Result { worker, result }) => {
                    if let Some(share) = shares.get_mut(&worker).filter(|s| s.pending()) {
                        share.report(*result, spec, assigned.elapsed());
                    }
                }
                Some(RunEvent::Gone { worker, reason }) => {
                    if let Some(share) = shares.get_mut(&worker).filter(|s| s.pending()) {
                        share.lose(reason);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                for share in shares.values_mut().filter(|s| s.pending()) {
                    let silent = now.duration_since(share.last_heard);
                    if silent > HEARTBEAT_TIMEOUT {
                        share.lose(format!("no heartbeat for {:.1} s", silent.as_secs_f64()));
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                for share in shares.values_mut().filter(|s| s.pending()) {
                    share.lose("no result before the run's deadline".into());
                }
            }
        }
    }
    for share in shares.values().filter(|s| s.lost.is_some()) {
        let reason = share.lost.as_ref().map(|(r, _)| r.as_str());
        tracing::warn!(worker = %share.member.name, ?reason, "worker lost during run");
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_evenly() {
        assert_eq!(split(1000, 3), [334, 333, 333]);
        assert_eq!(split(3, 3), [1, 1, 1]);
        assert_eq!(split(10, 1), [10]);
        assert_eq!(split(7, 4).iter().sum::<u32>(), 7);
    }
}
