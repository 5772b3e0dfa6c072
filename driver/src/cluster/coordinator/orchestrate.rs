//! One distributed run: wait for workers (telling the client), reset the target, split the
//! users, start everyone at one instant, poll the stock and stream progress while collecting
//! results or noticing losses, pass cancellation on to the workers, read the final stock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flashsale::pb;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::registry::{Member, Registry, RunEvent};
use super::{CoordinatorConfig, CoordinatorError, HEARTBEAT_TIMEOUT};
use crate::checkout::book::BookState;
use crate::checkout::settle::FinalState;
use crate::checkout::{Control, normalize_target};
use crate::cluster::parts::Assembly;
use crate::cluster::verify::{Fault, ShareBounds, verify};
use crate::cluster::wire::{book_to_wire, checkout_from_wire, plan_from_wire};
use crate::engine::bins::LatencyBins;
use crate::engine::live::{Live, Totals, live_bins_to_columns};
use crate::observe::watch::{self, Watcher};
use crate::probes;
use crate::spec::Connection;
use crate::spec::LoadSpec;

/// Time between handing out assignments and the shared start: enough for every worker to
/// receive its assignment and open its connections.
pub const START_DELAY: Duration = Duration::from_millis(1500);
/// Slack after the plan's own end (start + duration + timeout) for the workers' results to
/// arrive; a worker that has not reported by then is lost.
pub const RESULT_SLACK: Duration = Duration::from_secs(5);
/// How often the client hears how many workers joined while the run waits for them.
const WAITING_EVERY: Duration = Duration::from_millis(500);
/// How often the client gets the summed live counters during the load.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Most worker rows in one progress update (a client refuses more).
pub const MAX_PROGRESS_WORKERS: usize = 1024;

/// The updates of one SubmitRun stream. Progress is offered without waiting: a slow client
/// loses intermediate updates, never holds the run up.
#[derive(Debug, Clone)]
pub struct Updates(mpsc::Sender<Result<pb::RunUpdate, Status>>);

impl Updates {
    pub fn new(tx: mpsc::Sender<Result<pb::RunUpdate, Status>>) -> Self {
        Self(tx)
    }

    /// Queues `update` if there is room.
    pub fn offer(&self, update: pb::run_update::Update) {
        let _ = self.0.try_send(Ok(pb::RunUpdate {
            update: Some(update),
        }));
    }
}

/// A submitted run that passed the checks that need no worker.
#[derive(Debug)]
pub struct Prepared {
    request: pb::RunRequest,
    plan: pb::LoadPlan,
    spec: LoadSpec,
    target: String,
    settle: Duration,
    /// How to talk to the checkout: the built-in contract or the plan's own checkout.
    connection: Connection,
}

/// Checks a submitted run before it is accepted: a plan as a worker will see it, a target.
pub fn prepare(
    config: &CoordinatorConfig,
    request: pb::RunRequest,
) -> Result<Prepared, CoordinatorError> {
    let plan = request.plan.clone().ok_or(CoordinatorError::NoPlan)?;
    let spec = plan_from_wire(&pb::LoadPlan {
        users: request.users,
        ..plan.clone()
    })
    .map_err(|e| CoordinatorError::InvalidRun(e.to_string()))?;
    let connection = Connection {
        custom: checkout_from_wire(&plan)
            .map_err(|e| CoordinatorError::InvalidRun(e.to_string()))?,
        ..Connection::default()
    };
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
    Ok(Prepared {
        request,
        plan,
        spec,
        target,
        settle,
        connection,
    })
}

/// The admin token to send to `target`: the coordinator's, but only to its own `--target`. A
/// client holding the cluster token may name any target; the coordinator must not hand the
/// checkout's admin token to a server of the client's choosing.
pub fn admin_token_for<'a>(config: &'a CoordinatorConfig, target: &str) -> Option<&'a str> {
    (config.default_target.as_deref() == Some(target))
        .then_some(config.admin_token.as_deref())
        .flatten()
}

/// When the coordinator stops waiting for results: the plan's own end plus [`RESULT_SLACK`]
/// (a burst: start + timeout; a sustained run: start + duration + timeout). Checked: an
/// absurd plan gives a far deadline, never a panic.
pub fn result_deadline(start: Instant, spec: &LoadSpec) -> Instant {
    let span = spec
        .duration
        .unwrap_or_default()
        .saturating_add(spec.timeout)
        .saturating_add(RESULT_SLACK);
    start
        .checked_add(span)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

/// Stands in for deadlines beyond what an `Instant` can hold.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

/// Where one worker stands during the run.
struct Share {
    member: Member,
    users: u32,
    /// Its users are `first_user .. first_user + users`.
    first_user: u64,
    last_heard: Instant,
    attempts_seen: u64,
    /// Its live counters as of its last heartbeat.
    live: Totals,
    /// Its latencies so far as of its last heartbeat that carried well-formed ones.
    latency: LatencyBins,
    /// Highest attempts per second between two heartbeats.
    peak_rate: f64,
    result: Option<pb::WorkerResult>,
    /// Why it was lost, and when that was noticed.
    lost: Option<(String, Instant)>,
    /// Its report was impossible for its share: dropped, and `lost` says why.
    faulty: bool,
    /// The parts of its result received so far (`None` once it is faulty or reported).
    parts: Option<Assembly>,
}

impl Share {
    fn pending(&self) -> bool {
        self.result.is_none() && self.lost.is_none()
    }

    fn heartbeat(&mut self, totals: Totals, latency: Option<LatencyBins>) {
        let attempts = totals.attempts;
        self.live = totals;
        if let Some(latency) = latency {
            self.latency = latency;
        }
        let now = Instant::now();
        let secs = now.duration_since(self.last_heard).as_secs_f64();
        if attempts > self.attempts_seen && secs > 0.0 {
            let rate = (attempts - self.attempts_seen) as f64 / secs;
            self.peak_rate = self.peak_rate.max(rate);
        }
        self.attempts_seen = self.attempts_seen.max(attempts);
        self.last_heard = now;
    }

    /// Marks it lost and tells it to stop, in case it is only slow or frozen.
    fn lose(&mut self, reason: String, run_id: u64) {
        self.lost = Some((reason, Instant::now()));
        send_cancel(&self.member, run_id);
    }

    /// Its live row for the client's progress.
    fn row(&self) -> pb::WorkerProgress {
        let totals = self.totals();
        let state = if self.faulty {
            pb::WorkerState::Faulty
        } else if self.lost.is_some() {
            pb::WorkerState::Lost
        } else if self.result.is_some() {
            pb::WorkerState::Done
        } else {
            pb::WorkerState::Running
        };
        pb::WorkerProgress {
            name: self.member.name.clone(),
            attempts: totals.attempts,
            purchased: totals.purchased,
            sold_out: totals.sold_out,
            errors: totals.errors,
            state: state as i32,
        }
    }

    /// Its counters so far: from its result once it reported, else its last heartbeat.
    fn totals(&self) -> Totals {
        let Some(stats) = self.result.as_ref().and_then(|r| r.stats.as_ref()) else {
            return self.live;
        };
        Totals {
            attempts: stats.attempts,
            purchased: stats.purchased,
            sold_out: stats.sold_out.saturating_add(stats.limit_reached),
            errors: stats
                .statuses
                .values()
                .fold(stats.timeouts, |sum, n| sum.saturating_add(*n)),
        }
    }

    /// Takes the worker's result if it is possible for its share of `spec`, received `window`
    /// after the assignments went out; else names the worker faulty and treats its share like
    /// a lost worker's (its statistics are never merged).
    fn report(
        &mut self,
        mut result: pb::WorkerResult,
        spec: &LoadSpec,
        window: Duration,
        run_id: u64,
    ) {
        let share = LoadSpec {
            users: self.users,
            first_user: self.first_user,
            shape: crate::spec::Shape::default(),
            ..spec.clone()
        };
        let faults = match self.parts.take().map(|parts| parts.complete(&mut result)) {
            Some(Err(fault)) => vec![fault],
            _ => verify(&share, window, &result),
        };
        if faults.is_empty() {
            self.result = Some(result);
            return;
        }
        self.faulty_because(&faults, run_id);
    }

    /// Appends a part of the worker's result, within its share's bound; past it, the worker is
    /// faulty and what it sent is dropped.
    fn part(&mut self, part: pb::ResultPart, run_id: u64) {
        let Some(parts) = self.parts.as_mut() else {
            return;
        };
        if let Err(fault) = parts.add(part) {
            self.parts = None;
            self.faulty_because(&[fault], run_id);
        }
    }

    fn faulty_because(&mut self, faults: &[Fault], run_id: u64) {
        let reasons: Vec<String> = faults.iter().map(ToString::to_string).collect();
        let reasons = reasons.join("; ");
        tracing::warn!(worker = %self.member.name, %reasons, "faulty report dropped");
        self.faulty = true;
        self.parts = None;
        self.lose(format!("faulty report: {reasons}"), run_id);
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

/// Sends `Cancel{run_id}` down `member`'s Join stream without waiting on the caller's side.
fn send_cancel(member: &Member, run_id: u64) {
    let outbox = member.outbox.clone();
    let message = pb::CoordinatorMessage {
        msg: Some(pb::coordinator_message::Msg::Cancel(pb::Cancel { run_id })),
    };
    tokio::spawn(async move {
        let _ = outbox.send(Ok(message)).await;
    });
}

/// Waits for the expected workers, telling the client how many joined every
/// [`WAITING_EVERY`]; fails after the join timeout or when cancelled.
async fn wait_for_workers(
    config: &CoordinatorConfig,
    registry: &Registry,
    updates: &Updates,
    cancel: &CancellationToken,
) -> Result<Vec<Member>, CoordinatorError> {
    let expected = config.expect_workers;
    let deadline = Instant::now() + config.join_timeout;
    loop {
        let present = registry.present();
        if present.len() >= expected {
            return Ok(present);
        }
        if Instant::now() >= deadline {
            return Err(CoordinatorError::NotEnoughWorkers {
                present: present.len(),
                expected,
                waited: config.join_timeout,
            });
        }
        updates.offer(pb::run_update::Update::Waiting(pb::WaitingForWorkers {
            joined: u32::try_from(present.len()).unwrap_or(u32::MAX),
            expected: u32::try_from(expected).unwrap_or(u32::MAX),
        }));
        let slice = WAITING_EVERY.min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = registry.wait_for(expected, slice) => {}
            () = cancel.cancelled() => return Err(CoordinatorError::Cancelled),
        }
    }
}

pub async fn run(
    config: &CoordinatorConfig,
    registry: &Registry,
    run_id: u64,
    prepared: Prepared,
    updates: &Updates,
    cancel: &CancellationToken,
) -> Result<pb::RunResult, CoordinatorError> {
    let Prepared {
        request,
        plan,
        spec,
        target,
        settle,
        connection,
    } = prepared;
    let members = wait_for_workers(config, registry, updates, cancel).await?;
    if (request.users as usize) < members.len() {
        return Err(CoordinatorError::TooFewUsers {
            users: request.users,
            workers: members.len(),
        });
    }

    let mut control = Control::connect_with(&target, &connection)
        .await?
        .with_admin_token(admin_token_for(config, &target))?;
    let strategy = flashsale_server::Strategy::from_wire(request.safe_strategy)
        .ok()
        .flatten();
    // The first call names the cause when the target is not a checkout.
    let first = control.begin(false, request.stock, strategy).await?;
    // Once for the whole run, before its own Reset, on rounds of their own.
    let probe_plan = probes::Plan {
        enabled: request.probes,
        reset: request.reset,
        mode: spec.mode,
        strategy,
        timeout: spec.timeout,
        user_prefix: &spec.user_prefix,
        connection: &connection,
    };
    let probed = probes::run(&mut control, &target, &probe_plan).await;
    let before = if request.reset {
        control.reset_verified(request.stock, strategy).await?
    } else {
        first
    };
    if cancel.is_cancelled() {
        return Err(CoordinatorError::Cancelled);
    }

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let routing = registry.begin_run(run_id, events_tx);
    let start_at = SystemTime::now() + START_DELAY;
    let started = Instant::now() + START_DELAY;
    let start_ms = start_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    // The coordinator's own view of the run, for the stock polls (same watcher as standalone).
    let live = Live::new(cancel.child_token());
    live.mark_started(started.into_std());
    let watcher = Watcher::start(
        control.clone(),
        live.clone(),
        watch::poll_interval(spec.duration),
        None,
    );
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
                live: Totals::default(),
                latency: LatencyBins::default(),
                peak_rate: 0.0,
                result: None,
                lost,
                faulty: false,
                parts: Some(Assembly::new(&ShareBounds::new(&LoadSpec {
                    users,
                    first_user,
                    ..spec.clone()
                }))),
            },
        );
        first_user += u64::from(users);
    }
    tracing::info!(run_id, %target, users = request.users, workers = shares.len(), "run assigned");

    let deadline = result_deadline(started, &spec);
    let round = Round {
        run_id,
        started,
        deadline,
        cancel,
        live: &live,
        updates,
        spec: &spec,
    };
    let cancelled = collect(&mut shares, &mut events, &round).await;
    drop(routing);
    let stock_polls = watcher
        .finish(&live)
        .await
        .into_iter()
        .map(|p| pb::StockPoll {
            t_s: p.t_s,
            stock: p.stock,
        })
        .collect();
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
    let acknowledged = shares
        .values()
        .fold(0u64, |sum, s| sum.saturating_add(s.totals().purchased));
    let FinalState {
        after,
        unsettled,
        moved,
        book,
    } = control
        .final_state(settle, &spec.user_prefix, acknowledged)
        .await?;
    let (book, book_unavailable, book_failed) = match book {
        BookState::Complete(book) => (Some(book_to_wire(&book)), String::new(), false),
        BookState::Unavailable(why) => (None, why, false),
        BookState::Failed(why) => (None, why, true),
    };
    let burst = spec.duration.is_none().then_some(spec.clicks);
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
        book_failed,
        moved: moved.unwrap_or_default(),
        unsettled: unsettled.unwrap_or_default(),
        stock_polls,
        cancelled: cancelled.is_some(),
        cancelled_after_s: cancelled.map(|d| d.as_secs_f64()),
        probes: probes::remote::to_wire(&probed),
    })
}

/// What the collection of one run's results needs to know besides the shares.
struct Round<'a> {
    run_id: u64,
    started: Instant,
    deadline: Instant,
    cancel: &'a CancellationToken,
    /// The coordinator's watcher writes the last stock polled here.
    live: &'a Arc<Live>,
    updates: &'a Updates,
    /// The whole run's plan: each result is checked against its share of it.
    spec: &'a LoadSpec,
}

impl Round<'_> {
    /// Sends the client the workers' summed counters and latencies, and a row per worker
    /// (at most [`MAX_PROGRESS_WORKERS`]).
    fn progress(&self, shares: &BTreeMap<u64, Share>) {
        let mut latency = LatencyBins::default();
        for share in shares.values() {
            latency.merge(&share.latency);
        }
        let (bins, counts) = live_bins_to_columns(&latency);
        let workers = shares
            .values()
            .take(MAX_PROGRESS_WORKERS)
            .map(Share::row)
            .collect();
        let totals = shares
            .values()
            .map(Share::totals)
            .fold(Totals::default(), |sum, t| Totals {
                attempts: sum.attempts.saturating_add(t.attempts),
                purchased: sum.purchased.saturating_add(t.purchased),
                sold_out: sum.sold_out.saturating_add(t.sold_out),
                errors: sum.errors.saturating_add(t.errors),
            });
        self.updates
            .offer(pb::run_update::Update::Progress(pb::RunProgress {
                elapsed_s: Instant::now()
                    .saturating_duration_since(self.started)
                    .as_secs_f64(),
                attempts: totals.attempts,
                purchased: totals.purchased,
                sold_out: totals.sold_out,
                errors: totals.errors,
                stock: self.live.stock(),
                latency: Some(pb::LiveLatency { bins, counts }),
                workers,
            }));
    }
}

/// Takes run events until every worker reported or was lost, or the deadline passes; streams
/// progress meanwhile, and passes a cancellation on to every worker. Returns when the run was
/// cancelled (time since the start instant), if it was.
async fn collect(
    shares: &mut BTreeMap<u64, Share>,
    events: &mut mpsc::UnboundedReceiver<RunEvent>,
    round: &Round<'_>,
) -> Option<Duration> {
    let run_id = round.run_id;
    let mut tick = tokio::time::interval(HEARTBEAT_TIMEOUT / 4);
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    let mut cancelled = None;
    while shares.values().any(Share::pending) {
        tokio::select! {
            event = events.recv() => match event {
                Some(RunEvent::Heartbeat { worker, totals, latency }) => {
                    if let Some(share) = shares.get_mut(&worker) {
                        share.heartbeat(totals, latency);
                    }
                }
                Some(RunEvent::Result { worker, result }) => {
                    if let Some(share) = shares.get_mut(&worker).filter(|s| s.pending()) {
                        // The assignments went out START_DELAY before the start.
                        let window = Instant::now().saturating_duration_since(round.started) + START_DELAY;
                        share.report(*result, round.spec, window, run_id);
                    }
                }
                Some(RunEvent::Part { worker, part }) => {
                    if let Some(share) = shares.get_mut(&worker).filter(|s| s.pending()) {
                        share.part(*part, run_id);
                    }
                }
                Some(RunEvent::Gone { worker, reason }) => {
                    if let Some(share) = shares.get_mut(&worker).filter(|s| s.pending()) {
                        share.lose(reason, run_id);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                for share in shares.values_mut().filter(|s| s.pending()) {
                    let silent = now.duration_since(share.last_heard);
                    if silent > HEARTBEAT_TIMEOUT {
                        share.lose(format!("no heartbeat for {:.1} s", silent.as_secs_f64()), run_id);
                    }
                }
            }
            _ = progress.tick() => round.progress(shares),
            () = round.cancel.cancelled(), if cancelled.is_none() => {
                cancelled = Some(Instant::now().saturating_duration_since(round.started));
                tracing::info!(run_id, "cancelling the run on every worker");
                for share in shares.values() {
                    send_cancel(&share.member, run_id);
                }
            }
            () = tokio::time::sleep_until(round.deadline) => {
                for share in shares.values_mut().filter(|s| s.pending()) {
                    share.lose("no result before the run's deadline".into(), run_id);
                }
            }
        }
    }
    round.progress(shares);
    for share in shares.values().filter(|s| s.lost.is_some()) {
        let reason = share.lost.as_ref().map(|(r, _)| r.as_str());
        tracing::warn!(worker = %share.member.name, ?reason, "worker lost during run");
    }
    cancelled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mode, Quantities};

    #[test]
    fn the_admin_token_goes_only_to_the_coordinators_own_target() {
        let config = CoordinatorConfig {
            expect_workers: 1,
            default_target: Some("http://server:50051".into()),
            join_timeout: Duration::from_secs(1),
            admin_token: Some("secret-admin".into()),
            token: crate::cluster::auth::ClusterToken::generate(),
        };
        assert_eq!(
            admin_token_for(&config, "http://server:50051"),
            Some("secret-admin")
        );
        assert_eq!(admin_token_for(&config, "http://attacker:50051"), None);
        let no_default = CoordinatorConfig {
            default_target: None,
            ..config
        };
        assert_eq!(admin_token_for(&no_default, "http://server:50051"), None);
    }

    fn spec(duration: Option<Duration>, timeout: Duration) -> LoadSpec {
        LoadSpec {
            mode: Mode::Safe,
            users: 10,
            connections: 1,
            threads: 1,
            duration,
            quantity: Quantities::single(1),
            clicks: 1,
            round: 1,
            timeout,
            user_prefix: "d-".into(),
            first_user: 0,
            retry: Default::default(),
            shape: crate::spec::Shape::default(),
        }
    }

    #[test]
    fn the_result_deadline_follows_from_the_plan() {
        let start = Instant::now();
        let burst = spec(None, Duration::from_secs(10));
        assert_eq!(
            result_deadline(start, &burst) - start,
            Duration::from_secs(10) + RESULT_SLACK
        );
        let sustained = spec(Some(Duration::from_secs(30)), Duration::from_secs(2));
        assert_eq!(
            result_deadline(start, &sustained) - start,
            Duration::from_secs(32) + RESULT_SLACK
        );
        let absurd = spec(Some(Duration::MAX), Duration::MAX);
        assert_eq!(result_deadline(start, &absurd) - start, FAR_FUTURE);
    }

    #[test]
    fn splits_evenly() {
        assert_eq!(split(1000, 3), [334, 333, 333]);
        assert_eq!(split(3, 3), [1, 1, 1]);
        assert_eq!(split(10, 1), [10]);
        assert_eq!(split(7, 4).iter().sum::<u32>(), 7);
    }
}
