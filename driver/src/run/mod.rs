//! One run from start to report, the same lifecycle whether the checkout is embedded, remote or
//! driven through a coordinator: verified Reset, load with live progress and stock polling,
//! cancellation, settling, the order book, the audit and the report.

pub mod compare;
pub mod progress;
pub mod watch;

use flashsale_server::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::audit::Evidence;
use crate::checkout::Control;
use crate::engine::live::Live;
use crate::error::DriverError;
use crate::report::Report;
use crate::spec::{LoadSpec, RunSpec};
use watch::Watcher;

/// Runs `spec` from start to report: through the coordinator if one is given, else embedded
/// server if no target, verified Reset, load, wait until the server settles, GetStock,
/// ListOrders, audit. A failed audit is a normal result (`report.audit.verdict`).
pub async fn run(spec: &RunSpec) -> Result<Report, DriverError> {
    run_with_progress(spec, false, CancellationToken::new()).await
}

/// [`run`], showing live progress on stderr when `progress` is set, and winding the load down
/// early when `cancel` is cancelled: users stop after their current attempt and the run still
/// settles, audits and reports what happened.
pub async fn run_with_progress(
    spec: &RunSpec,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Report, DriverError> {
    if let Some(coordinator) = &spec.coordinator {
        return crate::cluster::client::run(coordinator, spec, progress, cancel).await;
    }
    with_target(spec.target.as_deref(), spec.stock, async |url, embedded| {
        run_against(url, spec, embedded, progress, cancel).await
    })
    .await
}

/// Calls `body` with `target`, or with an embedded server started for it (holding `stock`)
/// and stopped afterwards; `body`'s second argument says which.
pub async fn with_target<T>(
    target: Option<&str>,
    stock: i64,
    body: impl AsyncFnOnce(&str, bool) -> Result<T, DriverError>,
) -> Result<T, DriverError> {
    match target {
        Some(url) => body(url, false).await,
        None => {
            let config = ServerConfig {
                stock,
                ..ServerConfig::default()
            };
            let server = flashsale_server::spawn(config).await?;
            let result = body(&server.url(), true).await;
            server.shutdown().await?;
            result
        }
    }
}

/// One run against the server at `url` (`embedded`: the driver started it).
pub async fn run_against(
    url: &str,
    spec: &RunSpec,
    embedded: bool,
    progress: bool,
    cancel: CancellationToken,
) -> Result<Report, DriverError> {
    let mut control = Control::connect(url)
        .await?
        .with_admin_token(spec.admin_token.as_deref())?;
    let before = if spec.reset {
        control.reset_verified(spec.stock, spec.strategy).await?
    } else {
        control.stock().await?
    };
    tracing::info!(
        target = url,
        mode = spec.load.mode.name(),
        users = spec.load.users,
        stock = before.stock,
        round = before.round,
        "starting run"
    );
    let live = Live::new(cancel);
    let watcher = Watcher::start(
        control.clone(),
        live.clone(),
        watch::poll_interval(spec.load.duration),
        progress.then(|| spec.label()),
    );
    let load = {
        let url = url.to_string();
        let load_spec = LoadSpec {
            round: before.round,
            ..spec.load.clone()
        };
        let live = live.clone();
        tokio::task::spawn_blocking(move || {
            crate::engine::run_observed(&url, &load_spec, None, &live)
        })
        .await
        .map_err(|e| DriverError::Thread(e.to_string()))
    };
    let polls = watcher.finish(&live).await;
    let load = load??;
    let (after, unsettled) = control.settle(spec.settle).await?;
    let book = control.book(&after, &spec.load.user_prefix).await?;
    let evidence = Evidence {
        before: &before,
        after: &after,
        book: &book,
        unsettled,
        policy: &spec.policy,
    };
    let mut report = Report::build(url, embedded, &spec.load, &evidence, &load);
    report.series.add_stock_polls(&polls);
    Ok(report)
}
