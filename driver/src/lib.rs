//! The flashsale load driver: starts virtual users together against a `flashsale.v1.Checkout`
//! server, records every outcome, and audits whether the checkout oversold.
//!
//! [`run`] is a whole standalone run (optionally against an embedded server); the pieces —
//! [`load`], [`audit`], [`report`] — are usable on their own.

pub mod audit;
pub mod bins;
pub mod chart;
pub mod cli;
pub mod client;
pub mod compare;
pub mod coordinator;
pub mod distributed;
pub mod error;
pub mod html;
pub mod interrupt;
pub mod live;
pub mod load;
pub mod probe;
pub mod progress;
pub mod report;
pub mod series;
pub mod spec;
pub mod stats;
pub mod timeline;
pub mod watch;
pub mod wire;
pub mod worker;

use flashsale_server::ServerConfig;

pub use audit::{Audit, Verdict};
pub use error::DriverError;
pub use report::Report;
pub use spec::{LoadSpec, Mode, RunSpec};

use crate::audit::Evidence;
use crate::client::Control;
use crate::interrupt::Interrupt;
use crate::live::Live;
use crate::load::LoadResult;
use crate::report::{Latency, Outcomes, RunInfo};
use crate::timeline::Timeline;
use crate::watch::Watcher;

/// Exit status when every invariant held.
pub const EXIT_PASS: u8 = 0;
/// Exit status when the audit found an oversell or an inconsistency.
pub const EXIT_AUDIT_FAILED: u8 = 1;
/// Exit status for usage and connection errors.
pub const EXIT_ERROR: u8 = 2;
/// Exit status when the audit held but a distributed run lost or failed workers.
pub const EXIT_INCOMPLETE: u8 = 3;
/// Exit status when nothing failed but the run could not prove what it claims (a check not
/// exercised, attempts left unresolved).
pub const EXIT_INCONCLUSIVE: u8 = 4;

impl Report {
    /// The process exit status this report calls for.
    pub fn exit_code(&self) -> u8 {
        match self.audit.verdict {
            Verdict::Fail => EXIT_AUDIT_FAILED,
            _ if !self.incomplete_workers().is_empty() => EXIT_INCOMPLETE,
            Verdict::Inconclusive => EXIT_INCONCLUSIVE,
            Verdict::Pass => EXIT_PASS,
        }
    }
}

/// Runs `spec` from start to report: through the coordinator if one is given, else embedded
/// server if no target, verified Reset, load, wait until the server settles, GetStock,
/// ListOrders, audit. A failed audit is a normal result (`report.audit.verdict`).
pub async fn run(spec: &RunSpec) -> Result<Report, DriverError> {
    run_with_progress(spec, false, Interrupt::never()).await
}

/// [`run`], showing live progress on stderr when `progress` is set, and winding the load down
/// early when `interrupt` fires (standalone runs).
pub async fn run_with_progress(
    spec: &RunSpec,
    progress: bool,
    interrupt: Interrupt,
) -> Result<Report, DriverError> {
    if let Some(coordinator) = &spec.coordinator {
        return distributed::run(coordinator, spec).await;
    }
    with_target(spec.target.as_deref(), spec.stock, async |url, embedded| {
        run_against(url, spec, embedded, progress, interrupt).await
    })
    .await
}

/// Calls `body` with `target`, or with an embedded server started for it (holding `stock`)
/// and stopped afterwards; `body`'s second argument says which.
pub(crate) async fn with_target<T>(
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
pub(crate) async fn run_against(
    url: &str,
    spec: &RunSpec,
    embedded: bool,
    progress: bool,
    interrupt: Interrupt,
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
    let live = Live::new();
    let watcher = Watcher::start(
        control.clone(),
        live.clone(),
        watch::poll_interval(spec.load.duration),
        progress.then(|| spec.label()),
    );
    let stopper = {
        let live = live.clone();
        tokio::spawn(async move {
            interrupt.wait().await;
            live.stop();
        })
    };
    let load = {
        let url = url.to_string();
        let load_spec = LoadSpec {
            round: before.round,
            ..spec.load.clone()
        };
        let live = live.clone();
        tokio::task::spawn_blocking(move || load::run_observed(&url, &load_spec, None, &live))
            .await
            .map_err(|e| DriverError::Thread(e.to_string()))
    };
    stopper.abort();
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
    let mut report = build_report(url, embedded, &spec.load, &evidence, &load);
    report.series.add_stock_polls(&polls);
    Ok(report)
}

/// Assembles the report of a finished run.
pub fn build_report(
    target: &str,
    embedded: bool,
    spec: &LoadSpec,
    evidence: &Evidence<'_>,
    load: &LoadResult,
) -> Report {
    let audit = Audit::new(&load.stats, evidence);
    let elapsed_s = load.elapsed.as_secs_f64();
    let (before, after) = (evidence.before, evidence.after);
    Report {
        schema_version: report::SCHEMA_VERSION,
        verdict: audit.verdict.name(),
        run: RunInfo {
            mode: spec.mode.name(),
            rpc: spec.mode.rpc(),
            target: target.to_string(),
            embedded,
            coordinator: None,
            users: spec.users,
            clicks: spec.clicks,
            connections: load.connections,
            threads: load.threads,
            duration_s: spec.duration.map(|d| d.as_secs_f64()),
            quantity: spec.quantity.clone(),
            timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
            strategy: flashsale_server::Strategy::from_wire(after.safe_strategy)
                .ok()
                .flatten()
                .map(flashsale_server::Strategy::name),
            round: before.round,
            per_user_limit: after.per_user_limit,
            elapsed_s,
        },
        outcomes: Outcomes::from_stats(&load.stats),
        audit,
        throughput_rps: if elapsed_s > 0.0 {
            load.stats.attempts as f64 / elapsed_s
        } else {
            0.0
        },
        latency_ms: Latency::from_histogram(&load.stats.latency),
        series: Timeline::new(&load.stats.series, load.elapsed, before.stock, after.stock),
        workers: None,
    }
}
