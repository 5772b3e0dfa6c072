//! A worker: joins a coordinator, runs the share of each run it is assigned with the same load
//! engine as standalone mode, and reports its statistics back. It heartbeats while joined, and
//! stops its load and exits when it loses the coordinator.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::checkout;
use crate::cluster::coordinator::{HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, MAX_MESSAGE_BYTES};
use crate::cluster::wire::{plan_from_wire, stats_to_wire};
use crate::engine;
use crate::engine::live::Live;
use crate::error::DriverError;

/// The run a worker is busy with, for heartbeats and for stopping it.
type Current = Arc<Mutex<Option<(u64, Arc<Live>)>>>;

/// Joins `coordinator` (a normalized URL) as `name` and serves runs until `shutdown` resolves
/// (`Ok`) or the coordinator goes away (`Err`). Retries the first connection until the
/// coordinator is reachable.
pub async fn run(
    coordinator: &str,
    name: &str,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DriverError> {
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
    outbox.send(hello).await.expect("receiver is alive");
    let mut inbound = client
        .join(ReceiverStream::new(rx))
        .await
        .map_err(|status| lost(&format!("Join refused: {}", status.message())))?
        .into_inner();

    let current: Current = Arc::default();
    // Every run's load is a child of the session: leaving the coordinator stops it.
    let session = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeats(outbox.clone(), current.clone()));
    let outcome = loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(pb::CoordinatorMessage { msg: Some(pb::coordinator_message::Msg::Welcome(w)) })) => {
                    tracing::info!(worker_id = w.worker_id, %coordinator, "joined the coordinator");
                }
                Ok(Some(pb::CoordinatorMessage { msg: Some(pb::coordinator_message::Msg::Assignment(a)) })) => {
                    tokio::spawn(carry_out(a, outbox.clone(), current.clone(), session.child_token()));
                }
                Ok(Some(_)) => tracing::warn!("ignoring an unknown message from the coordinator"),
                Ok(None) => break Err(lost("the coordinator closed the stream")),
                Err(status) => break Err(lost(status.message())),
            },
            () = &mut shutdown => break Ok(()),
        }
    };
    heartbeat.abort();
    if let Some((run_id, _)) = current.lock().unwrap_or_else(|p| p.into_inner()).take() {
        tracing::warn!(run_id, "stopping the load of the current run");
    }
    session.cancel();
    outcome
}

fn lost(why: &str) -> DriverError {
    DriverError::LostCoordinator(why.to_string())
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

/// Sends a heartbeat every interval, with the attempts of the current run.
async fn heartbeats(outbox: mpsc::Sender<pb::WorkerMessage>, current: Current) {
    let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL);
    loop {
        tick.tick().await;
        let (run_id, attempts) = current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or((0, 0), |(id, live)| (*id, live.totals().attempts));
        let beat = pb::WorkerMessage {
            msg: Some(pb::worker_message::Msg::Heartbeat(pb::Heartbeat {
                run_id,
                attempts,
            })),
        };
        if outbox.send(beat).await.is_err() {
            return;
        }
    }
}

/// Runs one assignment on the blocking pool and sends the result (or the error) back.
async fn carry_out(
    assignment: pb::Assignment,
    outbox: mpsc::Sender<pb::WorkerMessage>,
    current: Current,
    cancel: CancellationToken,
) {
    let run_id = assignment.run_id;
    let mut result = pb::WorkerResult {
        run_id,
        ..Default::default()
    };
    match assignment.plan.as_ref().map(plan_from_wire) {
        None => result.error = "assignment without a plan".into(),
        Some(Err(err)) => result.error = err.to_string(),
        Some(Ok(spec)) => {
            let start_at = UNIX_EPOCH
                + Duration::from_millis(u64::try_from(assignment.start_at_unix_ms).unwrap_or(0));
            let live = Live::new(cancel);
            *current.lock().unwrap_or_else(|p| p.into_inner()) = Some((run_id, live.clone()));
            tracing::info!(
                run_id,
                users = spec.users,
                first_user = spec.first_user,
                "run assigned"
            );
            let target = assignment.target.clone();
            let load = tokio::task::spawn_blocking(move || {
                engine::run_observed(&target, &spec, Some(start_at), &live)
            })
            .await;
            current.lock().unwrap_or_else(|p| p.into_inner()).take();
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
    if !result.error.is_empty() {
        tracing::error!(run_id, error = %result.error, "run failed on this worker");
    }
    let message = pb::WorkerMessage {
        msg: Some(pb::worker_message::Msg::Result(result)),
    };
    let _ = outbox.send(message).await;
}
