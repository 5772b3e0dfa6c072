//! A worker: joins a coordinator (with the cluster token), runs the share of each run it is
//! assigned with the same load engine as standalone mode, and reports its statistics back. It
//! heartbeats its live counters while joined, stops a run's load when told `Cancel` (or when a
//! newer assignment supersedes it), and exits when it loses the coordinator.
//!
//! An assignment is never started once its start instant has passed by more than
//! [`START_TOLERANCE`], and no attempt starts after the run's own end (start + duration +
//! timeout + [`CUTOFF_SLACK`]): a worker frozen (SIGSTOP) through the end of a run and resumed
//! later sends nothing more for it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::checkout;
use crate::cluster::auth::{self, ClusterToken};
use crate::cluster::coordinator::{HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, MAX_MESSAGE_BYTES};
use crate::cluster::parts;
use crate::cluster::wire::{checkout_from_wire, plan_from_wire, stats_to_wire};
use crate::engine;
use crate::engine::live::{Live, live_bins_to_columns};
use crate::engine::stats::Stats;
use crate::error::DriverError;

/// How late after its start instant an assignment may still start (delivery and clock skew
/// between hosts; the coordinator hands assignments out 1.5 s ahead).
pub const START_TOLERANCE: Duration = Duration::from_millis(500);
/// How far ahead of now a start instant may lie.
pub const MAX_START_AHEAD: Duration = Duration::from_secs(60);
/// Slack after start + duration + timeout before no further attempt may start.
pub const CUTOFF_SLACK: Duration = Duration::from_secs(1);

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "the coordinator refused this worker: {0}; pass its cluster token with --token or FLASHSALE_CLUSTER_TOKEN"
    )]
    Unauthenticated(String),
    #[error("lost the coordinator: {0}")]
    Lost(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// The run a worker is busy with: for heartbeats, and for stopping it.
struct Running {
    run_id: u64,
    live: Arc<Live>,
    cancel: CancellationToken,
}

type Current = Arc<Mutex<Option<Running>>>;

fn lock(current: &Current) -> std::sync::MutexGuard<'_, Option<Running>> {
    current.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Joins `coordinator` (a normalized URL) as `name`, presenting `token`, and serves runs until
/// `shutdown` resolves (`Ok`) or the coordinator goes away or refuses the token (`Err`).
/// Retries the first connection until the coordinator is reachable.
pub async fn run(
    coordinator: &str,
    name: &str,
    token: Option<&ClusterToken>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    tokio::pin!(shutdown);
    let channel = tokio::select! {
        channel = connect_with_retry(coordinator) => channel?,
        () = &mut shutdown => return Ok(()),
    };
    let mut client = CoordinatorClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let (outbox, rx) = mpsc::channel::<pb::WorkerMessage>(8);
    let hello = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Hello(pb::Hello {
            name: name.to_string(),
        })),
    };
    outbox
        .send(hello)
        .await
        .map_err(|_| WorkerError::Lost("the Join stream closed at once".into()))?;
    let request = auth::attach(token, tonic::Request::new(ReceiverStream::new(rx)));
    let mut inbound = client
        .join(request)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::Unauthenticated => {
                WorkerError::Unauthenticated(status.message().to_string())
            }
            _ => WorkerError::Lost(format!("Join refused: {}", status.message())),
        })?
        .into_inner();

    let current: Current = Arc::default();
    // Every run's load is a child of the session: leaving the coordinator stops it.
    let session = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeats(outbox.clone(), current.clone()));
    let outcome = loop {
        use pb::coordinator_message::Msg;
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(pb::CoordinatorMessage { msg: Some(Msg::Welcome(w)) })) => {
                    tracing::info!(worker_id = w.worker_id, %coordinator, "joined the coordinator");
                }
                Ok(Some(pb::CoordinatorMessage { msg: Some(Msg::Assignment(a)) })) => {
                    let cancel = session.child_token();
                    let live = Live::new(cancel.clone());
                    let superseded = lock(&current).replace(Running {
                        run_id: a.run_id,
                        live: live.clone(),
                        cancel,
                    });
                    if let Some(old) = superseded {
                        tracing::warn!(run_id = old.run_id, by = a.run_id, "run superseded: stopping it");
                        old.cancel.cancel();
                    }
                    tokio::spawn(carry_out(a, outbox.clone(), current.clone(), live));
                }
                Ok(Some(pb::CoordinatorMessage { msg: Some(Msg::Cancel(c)) })) => {
                    match lock(&current).as_ref() {
                        Some(running) if running.run_id == c.run_id => {
                            tracing::warn!(run_id = c.run_id, "run cancelled: users stop after their current attempt");
                            running.cancel.cancel();
                        }
                        _ => tracing::debug!(run_id = c.run_id, "cancel for a run not in progress"),
                    }
                }
                Ok(Some(_)) => tracing::warn!("ignoring an unknown message from the coordinator"),
                Ok(None) => break Err(WorkerError::Lost("the coordinator closed the stream".into())),
                Err(status) => break Err(WorkerError::Lost(status.message().to_string())),
            },
            () = &mut shutdown => break Ok(()),
        }
    };
    heartbeat.abort();
    if let Some(running) = lock(&current).take() {
        tracing::warn!(
            run_id = running.run_id,
            "stopping the load of the current run"
        );
    }
    session.cancel();
    outcome
}

/// Connects with HTTP/2 keepalive (so a cut network is noticed), retrying until it works.
async fn connect_with_retry(url: &str) -> Result<Channel, DriverError> {
    let endpoint = checkout::endpoint(url)?
        .http2_keep_alive_interval(HEARTBEAT_INTERVAL)
        .keep_alive_timeout(HEARTBEAT_TIMEOUT)
        .keep_alive_while_idle(true);
    let mut backoff = Duration::from_millis(200);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(err) => {
                tracing::warn!(%url, error = %err, retry_in = ?backoff, "coordinator not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Sends a heartbeat every interval, with the live counters and latencies of the current run.
async fn heartbeats(outbox: mpsc::Sender<pb::WorkerMessage>, current: Current) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        let running = lock(&current).as_ref().map(|r| (r.run_id, r.live.clone()));
        let (run_id, totals, latency) =
            running.map_or((0, Default::default(), None), |(id, live)| {
                let (bins, counts) = live_bins_to_columns(&live.latency());
                (id, live.totals(), Some(pb::LiveLatency { bins, counts }))
            });
        let beat = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Heartbeat(pb::Heartbeat {
                run_id,
                attempts: totals.attempts,
                purchased: totals.purchased,
                sold_out: totals.sold_out,
                errors: totals.errors,
                latency,
            })),
        };
        if outbox.send(beat).await.is_err() {
            return;
        }
    }
}

/// Why an assignment's start instant is refused, if it is: passed by more than
/// [`START_TOLERANCE`] or more than [`MAX_START_AHEAD`] away.
pub fn check_start(start_at: SystemTime, now: SystemTime) -> Result<(), String> {
    if let Ok(late) = now.duration_since(start_at)
        && late > START_TOLERANCE
    {
        return Err(format!(
            "the assignment arrived {:.1} s after its start instant; not started",
            late.as_secs_f64()
        ));
    }
    if let Ok(ahead) = start_at.duration_since(now)
        && ahead > MAX_START_AHEAD
    {
        return Err(format!(
            "the assignment starts {:.0} s from now; at most {} s ahead",
            ahead.as_secs_f64(),
            MAX_START_AHEAD.as_secs()
        ));
    }
    Ok(())
}

/// The instant after which no attempt of a run starting at `start_at` may start.
/// Checked arithmetic: a huge plan gives the latest representable cut-off, never a panic.
fn cutoff(start_at: SystemTime, spec: &crate::spec::LoadSpec) -> Instant {
    let span = spec
        .duration
        .unwrap_or_default()
        .saturating_add(spec.timeout)
        .saturating_add(CUTOFF_SLACK);
    let left = start_at.checked_add(span).map_or(span, |end| {
        end.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    });
    let now = Instant::now();
    now.checked_add(left)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// Runs one assignment on the blocking pool and sends the result (or the error) back.
async fn carry_out(
    assignment: pb::Assignment,
    outbox: mpsc::Sender<pb::WorkerMessage>,
    current: Current,
    live: Arc<Live>,
) {
    let run_id = assignment.run_id;
    let mut result = pb::WorkerResult {
        run_id,
        ..Default::default()
    };
    let start_at = u64::try_from(assignment.start_at_unix_ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or(UNIX_EPOCH);
    let planned = match assignment.plan.as_ref().map(|p| (plan_from_wire(p), p)) {
        None => Err("assignment without a plan".to_string()),
        Some((Err(err), _)) => Err(err.to_string()),
        Some((Ok(spec), plan)) => match checkout_from_wire(plan) {
            Err(err) => Err(err.to_string()),
            Ok(custom) => check_start(start_at, SystemTime::now()).map(|()| (spec, custom)),
        },
    };
    match planned {
        Err(why) => result.error = why,
        // Cancelled (or superseded) before it started: nothing was attempted, say so.
        Ok(_) if live.stopped() => {
            tracing::info!(run_id, "run cancelled before its start: not started");
            result.stats = Some(stats_to_wire(&Stats::default()));
        }
        Ok((spec, custom)) => {
            live.set_cutoff(cutoff(start_at, &spec));
            tracing::info!(
                run_id,
                users = spec.users,
                first_user = spec.first_user,
                "run assigned"
            );
            let target = assignment.target.clone();
            let load_live = live.clone();
            let connection = crate::spec::Connection {
                custom,
                ..Default::default()
            };
            let load = tokio::task::spawn_blocking(move || {
                let targets = [target];
                engine::run_observed_with(&targets, &connection, &spec, Some(start_at), &load_live)
            })
            .await;
            match load {
                Ok(Ok(load)) => {
                    result.stats = Some(stats_to_wire(&load.stats));
                    result.elapsed_s = load.elapsed.as_secs_f64();
                    result.connections = load.connections;
                    result.threads = load.threads;
                }
                Ok(Err(err)) => result.error = err.to_string(),
                Err(err) => result.error = format!("load task failed: {err}"),
            }
        }
    }
    {
        let mut current = lock(&current);
        if current.as_ref().is_some_and(|r| r.run_id == run_id) {
            *current = None;
        }
    }
    if !result.error.is_empty() {
        tracing::error!(run_id, error = %result.error, "run failed on this worker");
    }
    // History and series first, in parts the coordinator accepts; then the result.
    for part in parts::split(&mut result) {
        let message = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Part(part)),
        };
        if outbox.send(message).await.is_err() {
            return;
        }
    }
    let message = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Result(result)),
    };
    let _ = outbox.send(message).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_instants_outside_the_window_are_refused() {
        let now = SystemTime::now();
        assert!(check_start(now, now).is_ok());
        assert!(check_start(now - START_TOLERANCE / 2, now).is_ok());
        assert!(check_start(now + Duration::from_secs(2), now).is_ok());
        assert!(check_start(now - START_TOLERANCE * 2, now).is_err());
        assert!(check_start(now + MAX_START_AHEAD * 2, now).is_err());
        assert!(check_start(UNIX_EPOCH, now).is_err());
    }
}
