//! The client side of a distributed run: submit the run to a coordinator (with the cluster
//! token), follow its updates (the wait for workers, the same live progress line as a
//! standalone run), cancel it on the first Ctrl-C, then merge what every worker reported with
//! the same [`Stats::merge`] as standalone mode, and account for lost workers as indeterminate
//! attempts.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::observe::stop::{Stop, StoppedBy};

use crate::audit::Evidence;
use crate::checkout::book::BookState;
use crate::checkout::connect;
use crate::cluster::auth::{self, ClusterToken};
use crate::cluster::coordinator::{MAX_MESSAGE_BYTES, MAX_PROGRESS_WORKERS};

/// How far the workers' clocks and the coordinator's may disagree about the shared start, for
/// the audit's judgement of refusals by time: 100 ms.
const DISTRIBUTED_CLOCK_SLACK_US: u32 = 100_000;
use crate::cluster::verify::{ShareBounds, verify};
use crate::cluster::wire::{book_from_wire, plan_to_wire, stats_from_wire, worker_name};
use crate::engine::LoadResult;
use crate::engine::live::{Totals, live_bins_from_columns};
use crate::engine::stats::Stats;
use crate::error::DriverError;
use crate::observe::progress::{self, Remote, RemoteState, WorkerRow, WorkerState};
use crate::report::timeline::StockPoint;
use crate::report::{Report, WorkerSummary};
use crate::spec::{LoadSpec, RunSpec};

/// How long a CancelRun call may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `spec` through the coordinator at `url` (normalized) and builds the report. With
/// `progress`, shows the live progress line on stderr; when `stop` is stopped, asks the
/// coordinator to wind the run down and still reports it. A run the coordinator says was
/// cancelled is marked stopped: by this client's cause, else by a CancelRun of someone else.
pub async fn run(
    url: &str,
    spec: &RunSpec,
    progress: bool,
    stop: Stop,
) -> Result<Report, DriverError> {
    let token = spec
        .cluster_token
        .as_deref()
        .map(ClusterToken::new)
        .transpose()
        .map_err(|e| crate::spec::SpecError::Secret {
            flag: "--token",
            reason: e.to_string(),
        })?;
    let client = CoordinatorClient::new(connect(url).await?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut plan = plan_to_wire(&spec.load);
    if let Some(api) = &spec.connection.custom {
        plan.checkout = api.source.clone();
    }
    // Each worker picks its own connection and thread counts for its share.
    plan.connections = 0;
    plan.threads = 0;
    let request = pb::RunRequest {
        users: spec.load.users,
        target: spec.targets.first().cloned().unwrap_or_default(),
        reset: spec.reset,
        stock: spec.stock,
        safe_strategy: flashsale_server::Strategy::to_wire(spec.strategy),
        plan: Some(plan),
        settle_ms: u64::try_from(spec.settle.as_millis()).unwrap_or(u64::MAX),
        probes: spec.probes,
    };
    let submitted = std::time::Instant::now();
    let session = Session {
        url,
        client,
        token,
        label: progress.then(|| spec.label()),
    };
    let result = session.follow(request, stop.token().clone()).await?;
    let (before, after) = match (&result.before, &result.after) {
        (Some(before), Some(after)) => (before, after),
        _ => {
            return Err(DriverError::IncompleteResult(
                "the coordinator sent no stock readings".into(),
            ));
        }
    };

    // Every assignment went out after the submission: an upper bound of each worker's window.
    let window = submitted.elapsed();
    let mut merged = Stats::default();
    let mut workers = Vec::with_capacity(result.workers.len());
    for worker in &result.workers {
        let worker = &checked(worker, spec, window);
        let stats = match &worker.stats {
            Some(wire) => stats_from_wire(wire)?,
            None => Stats::default(),
        };
        let unreported = worker.unreported_attempts;
        workers.push(WorkerSummary::new(worker, &stats, unreported));
        merged.merge(stats)?;
        if worker.lost || worker.faulty || unreported > 0 {
            let first = u32::try_from(worker.first_user).unwrap_or(u32::MAX);
            let end = first.saturating_add(worker.users);
            merged.history.unreported.push(first..end);
        }
        merged.counts.indeterminate = merged.counts.indeterminate.saturating_add(unreported);
        merged.counts.indeterminate_units = merged
            .counts
            .indeterminate_units
            .saturating_add(unreported.saturating_mul(u64::from(spec.load.quantity.max())));
    }
    let load = LoadResult {
        stats: merged,
        elapsed: std::time::Duration::from_secs_f64(result.elapsed_s.max(0.0)),
        connections: result.workers.iter().map(|w| w.connections).sum(),
        threads: result.workers.iter().map(|w| w.threads).sum(),
        replicas: Vec::new(),
    };
    let book = match &result.book {
        Some(columns) => BookState::Complete(book_from_wire(after.round, columns)?),
        None if result.book_unavailable.is_empty() => {
            BookState::Failed("the coordinator sent no order book and no reason".to_string())
        }
        None if result.book_failed => BookState::Failed(result.book_unavailable.clone()),
        None => BookState::Unavailable(result.book_unavailable.clone()),
    };
    let polls: Vec<StockPoint> = result
        .stock_polls
        .iter()
        .filter(|p| p.t_s.is_finite() && p.t_s >= 0.0)
        .map(|p| StockPoint {
            t_s: p.t_s,
            stock: p.stock,
        })
        .collect();
    let readings: Vec<_> = polls.iter().map(StockPoint::reading).collect();
    let evidence = Evidence {
        before,
        after,
        book: &book,
        unsettled: (!result.unsettled.is_empty()).then(|| result.unsettled.clone()),
        moved: (!result.moved.is_empty()).then(|| result.moved.clone()),
        quiet: crate::spec::quiet_window(spec.settle),
        policy: &spec.policy,
        counters: spec.connection.custom.is_none(),
        readings: &readings,
        // The coordinator's polls and the workers' histories are on different clocks, tied
        // only by the shared start instant.
        slack_us: DISTRIBUTED_CLOCK_SLACK_US,
    };
    let mut report = Report::build(&result.target, false, &spec.load, &evidence, &load);
    report.run.name_checkout(&spec.connection);
    report.series.add_stock_polls(&polls);
    report.run.coordinator = Some(url.to_string());
    // The coordinator ran the probes once, before the load.
    report.add_checks(crate::probes::remote::from_wire(&result.probes));
    report.workers = Some(workers);
    if result.cancelled {
        let by = stop.cause().map_or(StoppedBy::CancelRun, |(by, _)| by);
        let after_s = result.cancelled_after_s.unwrap_or(result.elapsed_s);
        report.mark_stopped(by, after_s);
    }
    Ok(report)
}

/// One SubmitRun call and what it needs while it streams.
struct Session<'a> {
    url: &'a str,
    client: CoordinatorClient<Channel>,
    token: Option<ClusterToken>,
    /// Label of the progress line, when it is shown.
    label: Option<String>,
}

impl Session<'_> {
    fn rpc_error(&self, call: &'static str, status: tonic::Status) -> DriverError {
        DriverError::Rpc {
            call,
            target: self.url.to_string(),
            status: Box::new(status),
        }
    }

    /// Submits `request` and follows its updates to the result; passes `cancel` on as a
    /// CancelRun once the run id is known.
    async fn follow(
        &self,
        request: pb::RunRequest,
        cancel: CancellationToken,
    ) -> Result<pb::RunResult, DriverError> {
        let mut stream = self
            .client
            .clone()
            .submit_run(auth::attach(
                self.token.as_ref(),
                tonic::Request::new(request),
            ))
            .await
            .map_err(|status| self.rpc_error("SubmitRun", status))?
            .into_inner();
        let remote = Arc::new(Remote::default());
        progress::publish(remote.clone());
        let shown = CancellationToken::new();
        let _hide = shown.clone().drop_guard();
        let mut display = None;
        let mut run_id = None;
        let mut cancel_sent = false;
        let mut waiting = None;
        loop {
            let message = tokio::select! {
                message = stream.message() => message.map_err(|status| self.rpc_error("SubmitRun", status))?,
                () = cancel.cancelled(), if !cancel_sent && run_id.is_some() => {
                    cancel_sent = true;
                    self.send_cancel(run_id.unwrap_or_default());
                    continue;
                }
            };
            use pb::run_update::Update;
            let update = match message {
                None => {
                    return Err(DriverError::IncompleteResult(
                        "the coordinator ended the run without a result".into(),
                    ));
                }
                // An update this client does not know (a newer coordinator): skip it.
                Some(pb::RunUpdate { update: None }) => continue,
                Some(pb::RunUpdate {
                    update: Some(update),
                }) => update,
            };
            match update {
                Update::Accepted(accepted) => {
                    tracing::info!(run_id = accepted.run_id, coordinator = %self.url, "run accepted");
                    run_id = Some(accepted.run_id);
                }
                Update::Waiting(w) => {
                    if waiting != Some((w.joined, w.expected)) {
                        eprintln!(
                            "driver: waiting for workers: {} of {} joined",
                            w.joined, w.expected
                        );
                        waiting = Some((w.joined, w.expected));
                    }
                }
                Update::Progress(p) => {
                    remote.update(progress_from_wire(p));
                    if display.is_none()
                        && let Some(label) = &self.label
                    {
                        display = Some(tokio::spawn(progress::show(
                            remote.clone(),
                            label.clone(),
                            shown.clone(),
                        )));
                    }
                }
                Update::Result(result) => {
                    shown.cancel();
                    if let Some(display) = display {
                        let _ = display.await;
                    }
                    return Ok(result);
                }
            }
        }
    }

    /// Asks the coordinator to cancel `run_id`, without holding up the updates.
    fn send_cancel(&self, run_id: u64) {
        let mut client = self.client.clone();
        let mut request = auth::attach(
            self.token.as_ref(),
            tonic::Request::new(pb::CancelRunRequest { run_id }),
        );
        request.set_timeout(CANCEL_TIMEOUT);
        tokio::spawn(async move {
            match client.cancel_run(request).await {
                Ok(reply) if reply.get_ref().cancelled => {
                    tracing::info!(run_id, "run cancelled: the workers wind down and report");
                }
                Ok(_) => tracing::info!(run_id, "the run was already over"),
                Err(status) => tracing::warn!(run_id, %status, "CancelRun failed"),
            }
        });
    }
}

/// `worker`'s report as the coordinator sent it if it is possible for its share, else the same
/// worker named faulty (its statistics dropped, every attempt its users could have made
/// unreported): the client does not take the coordinator's word for it either.
fn checked(worker: &pb::WorkerReport, spec: &RunSpec, window: Duration) -> pb::WorkerReport {
    let share = LoadSpec {
        users: worker.users,
        first_user: worker.first_user,
        shape: crate::spec::Shape::default(),
        ..spec.load.clone()
    };
    let result = pb::WorkerResult {
        stats: worker.stats.clone(),
        elapsed_s: worker.elapsed_s,
        error: worker.error.clone(),
        ..Default::default()
    };
    if worker.faulty || worker.lost || worker.stats.is_none() {
        return worker.clone();
    }
    let faults = verify(&share, window, &result);
    if faults.is_empty() {
        return worker.clone();
    }
    let reasons: Vec<String> = faults.iter().map(ToString::to_string).collect();
    tracing::warn!(worker = %worker.name, reasons = %reasons.join("; "), "faulty report dropped");
    pb::WorkerReport {
        faulty: true,
        error: format!("faulty report: {}", reasons.join("; ")),
        stats: None,
        unreported_attempts: ShareBounds::new(&share).max_attempts(window),
        ..worker.clone()
    }
}

/// A coordinator's progress update as the progress line and the dashboard show it. Nothing
/// in it is trusted: latencies that are not well-formed live bins are dropped, at most
/// [`MAX_PROGRESS_WORKERS`] worker rows are kept, their names cleaned like a worker's own.
fn progress_from_wire(p: pb::RunProgress) -> RemoteState {
    let latency = p.latency.and_then(|l| {
        let bins = live_bins_from_columns(&l.bins, &l.counts);
        if bins.is_none() {
            tracing::warn!("malformed live latencies in the coordinator's progress ignored");
        }
        bins
    });
    let workers = p
        .workers
        .into_iter()
        .take(MAX_PROGRESS_WORKERS)
        .map(|w| WorkerRow {
            name: worker_name(&w.name),
            attempts: w.attempts,
            purchased: w.purchased,
            sold_out: w.sold_out,
            errors: w.errors,
            state: match pb::WorkerState::try_from(w.state) {
                Ok(pb::WorkerState::Lost) => WorkerState::Lost,
                Ok(pb::WorkerState::Faulty) => WorkerState::Faulty,
                Ok(pb::WorkerState::Done) => WorkerState::Done,
                _ => WorkerState::Running,
            },
        })
        .collect();
    RemoteState {
        totals: Totals {
            attempts: p.attempts,
            purchased: p.purchased,
            sold_out: p.sold_out,
            errors: p.errors,
        },
        elapsed: Duration::try_from_secs_f64(p.elapsed_s).unwrap_or_default(),
        stock: p.stock,
        latency,
        workers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_from_a_coordinator_is_bounded_and_checked() {
        let row = |name: &str, state: pb::WorkerState| pb::WorkerProgress {
            name: name.into(),
            attempts: 10,
            purchased: 2,
            sold_out: 7,
            errors: 1,
            state: state as i32,
        };
        let mut workers = vec![
            row("w1\u{7}", pb::WorkerState::Running),
            row("w2", pb::WorkerState::Lost),
            row("w3", pb::WorkerState::Faulty),
            row("w4", pb::WorkerState::Done),
            pb::WorkerProgress {
                state: 99,
                ..row("w5", pb::WorkerState::Running)
            },
        ];
        workers.extend((0..2 * MAX_PROGRESS_WORKERS).map(|_| row("many", pb::WorkerState::Done)));
        let state = progress_from_wire(pb::RunProgress {
            elapsed_s: 1.5,
            attempts: 40,
            latency: Some(pb::LiveLatency {
                bins: vec![10, 200],
                counts: vec![3, 1],
            }),
            workers,
            ..Default::default()
        });
        assert_eq!(state.workers.len(), MAX_PROGRESS_WORKERS);
        assert_eq!(state.workers[0].name, "w1?", "control characters cleaned");
        let states: Vec<_> = state.workers[..5].iter().map(|w| w.state).collect();
        assert_eq!(
            states,
            [
                WorkerState::Running,
                WorkerState::Lost,
                WorkerState::Faulty,
                WorkerState::Done,
                WorkerState::Running
            ]
        );
        assert_eq!(state.latency.map(|l| l.count()), Some(4));
        assert_eq!(state.elapsed, Duration::from_millis(1_500));

        let bad = progress_from_wire(pb::RunProgress {
            elapsed_s: f64::NAN,
            latency: Some(pb::LiveLatency {
                bins: vec![100_000],
                counts: vec![1],
            }),
            ..Default::default()
        });
        assert_eq!(bad.latency, None, "bins beyond the live range refused");
        assert_eq!(bad.elapsed, Duration::ZERO);
    }
}
