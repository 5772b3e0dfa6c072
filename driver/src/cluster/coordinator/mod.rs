//! The coordinator: workers join it over a long-lived `Join` stream; clients submit runs that
//! it splits over the workers, starts at one shared instant, and collects back, streaming
//! progress to the client meanwhile. It runs no users itself. Every call but health needs the
//! cluster token ([`ClusterToken`]).
//!
//! A run lives in a task of its own, owned by neither call: `CancelRun` or the client dropping
//! its `SubmitRun` stream cancel it, and it still settles, audits and reports.

mod orchestrate;
mod registry;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flashsale::pb::{
    self,
    coordinator_server::{Coordinator, CoordinatorServer},
};
use flashsale_server::accept::AcceptLimits;
use flashsale_server::drain::Drain;
use flashsale_server::guard::GuardLayer;
use flashsale_server::hardening;
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::auth::ClusterToken;
use crate::cluster::wire::worker_name;
use crate::engine::live::{Totals, live_bins_from_columns};
use crate::error::DriverError;
pub use orchestrate::{MAX_PROGRESS_WORKERS, RESULT_SLACK, START_DELAY, Updates};
pub use registry::Registry;

/// Time between worker heartbeats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// A worker silent for this long is lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest message the coordinator sends a client (the run's result with every worker's
/// history); what it accepts is bounded by [`crate::cluster::parts::JOIN_MAX_MESSAGE_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// After SIGTERM/SIGINT: how long a submitted run may take to finish before it is ended with
/// UNAVAILABLE and the coordinator exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How a coordinator behaves.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Workers a run waits for (at least; every present worker takes part).
    pub expect_workers: usize,
    /// Checkout the workers load when a run names none (as the workers reach it).
    pub default_target: Option<String>,
    /// How long a run waits for the expected workers.
    pub join_timeout: Duration,
    /// Admin token of the checkout server, sent on Reset and ListOrders to `default_target`
    /// only (never to a target a client names).
    pub admin_token: Option<String>,
    /// Secret that workers and clients must present.
    pub token: ClusterToken,
}

/// Why a submitted run was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("a run is already in progress; submit again when it has finished")]
    Busy,
    #[error("invalid run: {0}")]
    InvalidRun(String),
    #[error("invalid run: no load plan")]
    NoPlan,
    #[error("{users} users cannot be split over {workers} workers")]
    TooFewUsers { users: u32, workers: usize },
    #[error("no target: start the coordinator with --target or pass --target with the run")]
    NoTarget,
    #[error("only {present} of {expected} workers joined within {waited:?}")]
    NotEnoughWorkers {
        present: usize,
        expected: usize,
        waited: Duration,
    },
    #[error("every worker failed: {0}")]
    AllWorkersFailed(String),
    #[error("the run was cancelled before its load started")]
    Cancelled,
    #[error("{0}")]
    Target(#[from] DriverError),
    #[error("coordinator transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("coordinator reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

impl From<CoordinatorError> for Status {
    fn from(err: CoordinatorError) -> Self {
        let message = err.to_string();
        match err {
            CoordinatorError::Busy => Status::failed_precondition(message),
            CoordinatorError::InvalidRun(_)
            | CoordinatorError::NoPlan
            | CoordinatorError::TooFewUsers { .. }
            | CoordinatorError::NoTarget => Status::invalid_argument(message),
            CoordinatorError::NotEnoughWorkers { .. } => Status::deadline_exceeded(message),
            CoordinatorError::Cancelled => Status::cancelled(message),
            // What the submitter asked for is wrong: a target that is no address, a run the
            // checkout refuses as invalid.
            CoordinatorError::Target(DriverError::InvalidTarget { .. } | DriverError::Spec(_)) => {
                Status::invalid_argument(message)
            }
            CoordinatorError::AllWorkersFailed(_)
            | CoordinatorError::Target(_)
            | CoordinatorError::Transport(_)
            | CoordinatorError::Reflection(_) => Status::unavailable(message),
        }
    }
}

/// The run in progress: its id and what cancels it.
type Current = Arc<Mutex<Option<(u64, CancellationToken)>>>;

/// The gRPC service.
pub struct CoordinatorService {
    config: Arc<CoordinatorConfig>,
    registry: Arc<Registry>,
    run_lock: Arc<tokio::sync::Mutex<()>>,
    current: Current,
    next_run: AtomicU64,
}

impl CoordinatorService {
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            config: Arc::new(config),
            registry: Arc::new(Registry::new(HEARTBEAT_TIMEOUT)),
            run_lock: Arc::default(),
            current: Arc::default(),
            next_run: AtomicU64::new(1),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

type JoinStream = Pin<Box<dyn Stream<Item = Result<pb::CoordinatorMessage, Status>> + Send>>;
type RunStream = Pin<Box<dyn Stream<Item = Result<pb::RunUpdate, Status>> + Send>>;

/// Updates a run may queue for a slow client before progress messages are dropped.
const UPDATE_BUFFER: usize = 16;
/// How long the result may wait for room on a client's stream.
const RESULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    type JoinStream = JoinStream;
    type SubmitRunStream = RunStream;

    async fn join(
        &self,
        request: Request<Streaming<pb::WorkerMessage>>,
    ) -> Result<Response<Self::JoinStream>, Status> {
        self.config.token.check(request.metadata())?;
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let name = match inbound.message().await? {
            Some(pb::WorkerMessage {
                msg: Some(pb::worker_message::Msg::Hello(hello)),
            }) if !hello.name.is_empty() => worker_name(&hello.name),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be a Hello with a name",
                ));
            }
        };
        let (outbox, rx) = mpsc::channel(8);
        let worker = self.registry.join(name.clone(), outbox.clone());
        tracing::info!(worker, %name, ?peer, "worker joined");
        let welcome = pb::CoordinatorMessage {
            msg: Some(pb::coordinator_message::Msg::Welcome(pb::Welcome {
                worker_id: worker,
            })),
        };
        outbox
            .send(Ok(welcome))
            .await
            .map_err(|_| Status::cancelled("worker went away"))?;
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let reason = loop {
                match inbound.message().await {
                    Ok(Some(message)) => forward(&registry, worker, message),
                    Ok(None) => break "worker closed its stream".to_string(),
                    Err(status) => break format!("stream broke: {}", status.message()),
                }
            };
            tracing::warn!(worker, %name, %reason, "worker left");
            registry.leave(worker, reason);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn submit_run(
        &self,
        request: Request<pb::RunRequest>,
    ) -> Result<Response<Self::SubmitRunStream>, Status> {
        self.config.token.check(request.metadata())?;
        let only_run = self
            .run_lock
            .clone()
            .try_lock_owned()
            .map_err(|_| CoordinatorError::Busy)?;
        let prepared = orchestrate::prepare(&self.config, request.into_inner())?;
        let run_id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        *lock(&self.current) = Some((run_id, cancel.clone()));
        let (tx, rx) = mpsc::channel(UPDATE_BUFFER);
        let updates = Updates::new(tx.clone());
        updates.offer(pb::run_update::Update::Accepted(pb::RunAccepted { run_id }));
        let (config, registry, current) = (
            self.config.clone(),
            self.registry.clone(),
            self.current.clone(),
        );
        tokio::spawn(async move {
            // A client that goes away (its stream dropped) cancels its run.
            let gone = {
                let (tx, cancel) = (tx.clone(), cancel.clone());
                tokio::spawn(async move {
                    tx.closed().await;
                    if !cancel.is_cancelled() {
                        tracing::warn!(run_id, "the client went away: cancelling its run");
                        cancel.cancel();
                    }
                })
            };
            let outcome =
                orchestrate::run(&config, &registry, run_id, prepared, &updates, &cancel).await;
            gone.abort();
            let last = outcome
                .map(|result| pb::RunUpdate {
                    update: Some(pb::run_update::Update::Result(result)),
                })
                .map_err(Status::from);
            // A client that stops reading must not hold the next run up for ever.
            if tokio::time::timeout(RESULT_SEND_TIMEOUT, tx.send(last))
                .await
                .is_err()
            {
                tracing::warn!(run_id, "the client did not take the result; dropped");
            }
            let mut current = lock(&current);
            if current.as_ref().is_some_and(|(id, _)| *id == run_id) {
                *current = None;
            }
            drop(only_run);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunReply>, Status> {
        self.config.token.check(request.metadata())?;
        let run_id = request.into_inner().run_id;
        let cancelled = match lock(&self.current).as_ref() {
            Some((id, cancel)) if *id == run_id => {
                tracing::info!(run_id, "run cancelled by its client");
                cancel.cancel();
                true
            }
            _ => false,
        };
        Ok(Response::new(pb::CancelRunReply { cancelled }))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn forward(registry: &Registry, worker: u64, message: pb::WorkerMessage) {
    use pb::worker_message::Msg;
    match message.msg {
        Some(Msg::Heartbeat(beat)) => registry.heard(
            worker,
            beat.run_id,
            Some(registry::RunEvent::Heartbeat {
                worker,
                totals: Totals {
                    attempts: beat.attempts,
                    purchased: beat.purchased,
                    sold_out: beat.sold_out,
                    errors: beat.errors,
                },
                latency: beat.latency.and_then(|l| {
                    let bins = live_bins_from_columns(&l.bins, &l.counts);
                    if bins.is_none() {
                        tracing::warn!(worker, "malformed live latencies in a heartbeat ignored");
                    }
                    bins
                }),
            }),
        ),
        Some(Msg::Result(result)) => {
            let run_id = result.run_id;
            registry.heard(
                worker,
                run_id,
                Some(registry::RunEvent::Result {
                    worker,
                    result: Box::new(result),
                }),
            );
        }
        Some(Msg::Part(part)) => {
            let run_id = part.run_id;
            registry.heard(
                worker,
                run_id,
                Some(registry::RunEvent::Part {
                    worker,
                    part: Box::new(part),
                }),
            );
        }
        Some(Msg::Hello(_)) | None => registry.heard(worker, 0, None),
    }
}

/// Serves the coordinator (plus gRPC health and server reflection, so that a client pointed at
/// it by mistake can say what it is) on `listener` until `shutdown` resolves. Health reports
/// the whole server SERVING once listening, and `flashsale.v1.Coordinator` SERVING while at
/// least the expected number of workers are present.
pub async fn run(
    listener: TcpListener,
    config: CoordinatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), CoordinatorError> {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let expected = config.expect_workers;
    let service = CoordinatorService::new(config);
    let registry = service.registry();
    let closer = service.registry();
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_INTERVAL / 2);
        loop {
            tick.tick().await;
            if registry.present().len() >= expected {
                reporter
                    .set_serving::<CoordinatorServer<CoordinatorService>>()
                    .await;
            } else {
                reporter
                    .set_not_serving::<CoordinatorServer<CoordinatorService>>()
                    .await;
            }
        }
    });
    tracing::info!(?addr, expected, "coordinator listening");
    let shutdown = async move {
        shutdown.await;
        // Workers' Join streams would keep a graceful shutdown waiting forever: end them.
        closer.close_all();
    };
    // The checkout server's limits, except the request deadline: a submitted run lasts as long
    // as the run.
    let drain = Drain::new();
    let limits = AcceptLimits::from(&hardening::Hardening::default());
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(hardening::DEFAULT_MAX_STREAMS)
        .http2_keepalive_interval(Some(HEARTBEAT_INTERVAL))
        .http2_keepalive_timeout(Some(HEARTBEAT_TIMEOUT))
        .http2_max_pending_accept_reset_streams(Some(hardening::MAX_PENDING_ACCEPT_RESET_STREAMS))
        .http2_max_local_error_reset_streams(Some(hardening::MAX_LOCAL_ERROR_RESET_STREAMS))
        // No metrics here yet (the server's layer, passing requests through).
        .layer(flashsale_server::metrics::MetricsLayer::off())
        .layer(GuardLayer::new(None, drain.clone()))
        .add_service(health)
        .add_service(reflection()?)
        .add_service(
            CoordinatorServer::new(service)
                // Workers send their results in parts; SubmitRun and CancelRun requests are
                // small. The result sent to the client holds every worker's history.
                .max_decoding_message_size(crate::cluster::parts::JOIN_MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    let served =
        flashsale_server::serve::serve(router, listener, limits, drain, SHUTDOWN_GRACE, shutdown)
            .await;
    health_task.abort();
    Ok(served?)
}

/// Server reflection listing the coordinator's own services only (its descriptors import the
/// checkout's messages, not its service).
fn reflection() -> Result<
    tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
        impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(flashsale::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("flashsale.v1.Coordinator")
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn a_bad_target_is_the_submitters_fault_an_unreachable_one_is_not() {
        let bad = crate::checkout::normalize_target("https://x:1").unwrap_err();
        assert!(matches!(bad, DriverError::InvalidTarget { .. }));
        let status = Status::from(CoordinatorError::Target(bad));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("https://x:1"), "{status:?}");

        let unreachable = DriverError::Rpc {
            call: "GetStock",
            target: "http://x:1".into(),
            status: Box::new(Status::unavailable("connection refused")),
        };
        let status = Status::from(CoordinatorError::Target(unreachable));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            Status::from(CoordinatorError::NoTarget).code(),
            tonic::Code::InvalidArgument
        );
    }
}
