//! The flash-sale checkout server: a tonic `Checkout` service with buggy, unstable and safe
//! purchase paths (`purchase`) over a store of primitives (`store`: in memory, or in PostgreSQL
//! shared by replicas, see [`open_store`]), plus gRPC server reflection and the standard health
//! service.
//!
//! [`run`] serves on a listener until a shutdown future resolves; [`spawn`] starts a server on
//! an ephemeral loopback port in the background (tests and the driver's embedded mode).

pub mod accept;
pub mod admin;
pub mod budget;
pub mod config;
pub mod drain;
pub mod error;
pub mod guard;
pub mod hardening;
pub mod latency;
pub mod metrics;
pub mod purchase;
pub mod serve;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use flashsale::pb::{self, checkout_server::CheckoutServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::drain::Drain;
use crate::guard::GuardLayer;
use crate::metrics::{MetricsArgs, MetricsLayer};

pub use config::{ServerConfig, StoreConfig, StoreKind};
pub use service::CheckoutService;
pub use store::postgres::RESOLVE_WITHIN;
pub use store::{BatchFault, Batching, MemoryStore, PgSettings, PgStore, Store, Strategy};

/// A server failed to start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport error: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Hardening(#[from] hardening::HardeningError),
    #[error("PostgreSQL store: {0}")]
    Postgres(#[from] store::PgError),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(
        "--stock-shards {0} needs --store postgres: the memory store keeps its stock in one \
         counter"
    )]
    ShardsNeedPostgres(u16),
}

/// Opens the store `store` asks for, with `config`'s first round and policy.
pub async fn open_store(
    store: &StoreConfig,
    config: &ServerConfig,
) -> Result<Arc<dyn Store>, ServerError> {
    match (store.kind, &store.database_url) {
        (StoreKind::Memory, _) if store.stock_shards != 1 => {
            Err(ServerError::ShardsNeedPostgres(store.stock_shards))
        }
        (StoreKind::Memory, _) => Ok(Arc::new(MemoryStore::from_config(config))),
        (StoreKind::Postgres, url) => {
            let settings = PgSettings {
                url: url.clone().unwrap_or_default(),
                pool_size: store.pool_size,
            };
            let pg = PgStore::open_sharded(
                &settings,
                config.stock,
                config.strategy,
                config.policy(),
                store.stock_shards,
            )
            .await?
            .with_batching(Batching {
                window: store.batch_window,
                size: store.batch_size,
            });
            Ok(Arc::new(pg))
        }
    }
}

/// Serves the checkout, reflection and health on `listener` until `shutdown` resolves, then
/// stops accepting, lets in-flight calls finish within the configured grace period, ends what
/// is left and returns (see [`serve`]).
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let store = Arc::new(MemoryStore::from_config(&config));
    run_with_store(listener, store, config, shutdown).await
}

/// [`run`] over a store of the caller's choosing.
pub async fn run_with_store(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    run_with_metrics(listener, None, store, config, shutdown).await
}

/// Binds `--metrics-listen`'s address, if any.
pub async fn bind_metrics(args: &MetricsArgs) -> Result<Option<TcpListener>, ServerError> {
    let Some(addr) = args.metrics_listen else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServerError::Bind { addr, source })
}

/// [`run_with_store`], also serving Prometheus metrics at `/metrics` on `metrics` when given
/// (see [`metrics`]) until the server has stopped.
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    store: Arc<dyn Store>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (metrics_layer, metrics_server) = match metrics {
        Some(metrics_listener) => {
            let registry = Arc::new(metrics::Metrics::new(store.clone()));
            let (stop, stopped) = oneshot::channel::<()>();
            tracing::info!(
                addr = ?metrics_listener.local_addr().ok(),
                "serving Prometheus metrics at /metrics"
            );
            let task = tokio::spawn(metrics::http::serve(
                metrics_listener,
                registry.clone(),
                async {
                    let _ = stopped.await;
                },
            ));
            (MetricsLayer::new(registry), Some((stop, task)))
        }
        None => (MetricsLayer::off(), None),
    };
    let served = serve_checkout(listener, store, config, metrics_layer, shutdown).await;
    if let Some((stop, task)) = metrics_server {
        let _ = stop.send(());
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(%err, "metrics endpoint failed"),
            Err(err) => tracing::warn!(%err, "metrics endpoint task failed"),
        }
    }
    served
}

async fn serve_checkout(
    listener: TcpListener,
    store: Arc<dyn Store>,
    config: ServerConfig,
    metrics_layer: MetricsLayer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let admin_token = config.hardening.admin_token()?;
    let tls = config.tls.load(config.hardening.handshake_timeout)?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CheckoutServer<CheckoutService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::CHECKOUT_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::CHECKOUT_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let max_message = budget::MAX_REQUEST_MESSAGE;
    let health = health.max_decoding_message_size(max_message);
    let reflection_v1 = reflection_v1.max_decoding_message_size(max_message);
    let reflection_v1alpha = reflection_v1alpha.max_decoding_message_size(max_message);
    let checkout = CheckoutServer::new(CheckoutService::new(store, &config))
        .max_decoding_message_size(max_message);

    let addr = listener.local_addr().ok();
    tracing::info!(
        ?addr,
        stock = config.stock,
        latency = ?config.latency,
        failure_rate = config.failure_rate,
        strategy = %config.strategy,
        admin_token = admin_token.is_some(),
        tls = tls.is_some(),
        client_certificates = config.tls.client_ca.is_some(),
        "checkout server listening"
    );
    if admin_token.is_none() && addr.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            ?addr,
            "listening beyond loopback without an admin token: anyone who reaches this port \
             can Reset the sale and list the orders; set --admin-token or --admin-token-file"
        );
    }
    let shutdown = async move {
        shutdown.await;
        // Tell load balancers and health checks first, then drain.
        health_reporter
            .set_not_serving::<CheckoutServer<CheckoutService>>()
            .await;
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    let hardening = &config.hardening;
    let drain = Drain::new();
    let builder = match tls {
        Some(tls) => hardening.builder().tls_config(tls)?,
        None => hardening.builder(),
    };
    let router = builder
        .layer(metrics_layer)
        .layer(GuardLayer::new(admin_token, drain.clone()).with_budget(hardening.stream_budget()))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(checkout);
    serve::serve(
        router,
        listener,
        hardening.into(),
        drain,
        hardening.shutdown_grace,
        shutdown,
    )
    .await?;
    tracing::info!("checkout server stopped");
    Ok(())
}

/// A server running in the background of this process.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    tls: bool,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it serves `/metrics` ([`spawn_with_metrics`] only).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://ADDR` (`https://ADDR` when it serves TLS), ready for a tonic channel.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops gracefully and waits for the server to finish.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// Starts a server on `127.0.0.1` with an ephemeral port, in the background. Its TLS files
/// (if any) are checked first.
pub async fn spawn(config: ServerConfig) -> Result<RunningServer, ServerError> {
    spawn_inner(config, false).await
}

/// [`spawn`], also serving `/metrics` on another ephemeral loopback port
/// ([`RunningServer::metrics_addr`]).
pub async fn spawn_with_metrics(config: ServerConfig) -> Result<RunningServer, ServerError> {
    spawn_inner(config, true).await
}

async fn spawn_inner(
    config: ServerConfig,
    with_metrics: bool,
) -> Result<RunningServer, ServerError> {
    config.tls.load(config.hardening.handshake_timeout)?;
    let tls = config.tls.enabled();
    let wanted = SocketAddr::from(([127, 0, 0, 1], 0));
    let bind = || async {
        let listener = TcpListener::bind(wanted)
            .await
            .map_err(|source| ServerError::Bind {
                addr: wanted,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: wanted,
            source,
        })?;
        Ok::<_, ServerError>((listener, addr))
    };
    let (listener, addr) = bind().await?;
    let (metrics, metrics_addr) = if with_metrics {
        let (listener, addr) = bind().await?;
        (Some(listener), Some(addr))
    } else {
        (None, None)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let store = Arc::new(MemoryStore::from_config(&config));
    let task = tokio::spawn(run_with_metrics(listener, metrics, store, config, async {
        let _ = stopped.await;
    }));
    Ok(RunningServer {
        addr,
        metrics_addr,
        tls,
        stop,
        task,
    })
}
