//! One run from start to report, the same lifecycle whether the checkout is embedded, remote or
//! driven through a coordinator: verified Reset, load with live progress and stock polling,
//! cancellation, settling, the order book, the audit and the report.

pub mod compare;
pub mod faults;
pub mod reachability;

use flashsale_server::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::audit::{Evidence, LostTarget};
use crate::checkout::Control;
use crate::checkout::settle::FinalState;
use crate::engine::live::Live;
use crate::error::DriverError;
use crate::observe::stop::Stop;
use crate::observe::watch::Watcher;
use crate::observe::{progress, watch};
use crate::probes;
use crate::report::Report;
use crate::report::timeline::StockPoint;
use crate::spec::{LoadSpec, RunSpec};

/// Runs `spec` from start to report: through the coordinator if one is given, else embedded
/// server if no target, verified Reset, load, wait until the server settles, GetStock,
/// ListOrders, audit. A failed audit is a normal result (`report.audit.verdict`).
pub async fn run(spec: &RunSpec) -> Result<Report, DriverError> {
    run_with_progress(spec, false, Stop::new()).await
}

/// [`run`], showing live progress on stderr when `progress` is set, and winding the load down
/// early when `stop` is stopped: users stop after their current attempt and the run still
/// settles, audits and reports what happened, marked as stopped ([`Report::mark_stopped`]).
pub async fn run_with_progress(
    spec: &RunSpec,
    progress: bool,
    stop: Stop,
) -> Result<Report, DriverError> {
    if let Some(coordinator) = &spec.coordinator {
        return crate::cluster::client::run(coordinator, spec, progress, stop).await;
    }
    with_targets(&spec.targets, spec.stock, async |urls, embedded| {
        run_against(urls, spec, embedded, progress, stop).await
    })
    .await
}

/// Calls `body` with `targets` (names of several addresses expanded, see
/// [`crate::spec::targets`]), or with an embedded server started for it (holding `stock`)
/// and stopped afterwards when there is none; `body`'s second argument says which.
pub async fn with_targets<T>(
    targets: &[String],
    stock: i64,
    body: impl AsyncFnOnce(&[String], bool) -> Result<T, DriverError>,
) -> Result<T, DriverError> {
    if !targets.is_empty() {
        let targets = crate::spec::targets::resolve(targets).await?;
        return body(&targets, false).await;
    }
    let config = ServerConfig {
        stock,
        ..ServerConfig::default()
    };
    let server = flashsale_server::spawn(config).await?;
    let result = body(&[server.url()], true).await;
    server.shutdown().await?;
    result
}

/// One run against the server at `urls` (`embedded`: the driver started it): the load spread
/// over every replica, the control calls (Reset, GetStock, settling, ListOrders) to the first,
/// as the replicas share one database. Once the load has run, there is a report: a target that dies mid-run stops the load
/// ([`reachability`]), and one whose final stock or book cannot be read gets an audit that
/// says what could not be audited ([`Report::build_without_final_state`]).
pub async fn run_against(
    urls: &[String],
    spec: &RunSpec,
    embedded: bool,
    progress: bool,
    stop: Stop,
) -> Result<Report, DriverError> {
    let url = urls
        .first()
        .ok_or_else(|| DriverError::from(crate::spec::SpecError::NoTarget))?
        .as_str();
    let mut control = Control::connect_with(url, &spec.connection)
        .await?
        .with_admin_token(spec.admin_token.as_deref())?;
    // The first call names the cause when the target is not a checkout.
    let first = control.begin(false, spec.stock, spec.strategy).await?;
    // Before the load's own Reset, on rounds of their own.
    let probed = probes::run(&mut control, url, &probes::Plan::of(spec)).await;
    let before = if spec.reset {
        control.reset_verified(spec.stock, spec.strategy).await?
    } else {
        first
    };
    tracing::info!(
        target = url,
        replicas = urls.len(),
        mode = %spec.label(),
        users = spec.load.users,
        stock = before.stock,
        round = before.round,
        "starting run"
    );
    // The load stops early on the user's Ctrl-C (`stop`) or when the target is gone.
    let stop_load = stop.token().child_token();
    let live = Live::new(stop_load.clone());
    progress::publish(live.clone());
    let watcher = Watcher::start(
        control.clone(),
        live.clone(),
        watch::poll_interval(spec.load.duration),
        progress.then(|| spec.label()),
    );
    let load_done = CancellationToken::new();
    let monitor = tokio::spawn(reachability::watch(
        control.clone(),
        live.clone(),
        stop_load,
        load_done.clone(),
    ));
    let faults = faults::Faults::start(&spec.faults);
    let load = {
        let urls = urls.to_vec();
        let load_spec = LoadSpec {
            round: before.round,
            ..spec.load.clone()
        };
        let live = live.clone();
        let connection = spec.connection.clone();
        tokio::task::spawn_blocking(move || {
            crate::engine::run_observed_with(&urls, &connection, &load_spec, None, &live)
        })
        .await
        .map_err(|e| DriverError::Thread(e.to_string()))
    };
    load_done.cancel();
    let stopped = stop.cause_by(std::time::Instant::now()).map(|(by, at)| {
        let after = live.started().map(|s| at.saturating_duration_since(s));
        (by, after.unwrap_or_default().as_secs_f64())
    });
    let faults = faults.finish().await;
    let gone = monitor.await.ok().flatten();
    let polls = watcher.finish(&live).await;
    let load = load??;
    // Whatever happens to the target now, the statistics are reported.
    let final_state = match gone {
        Some(why) => Err(why),
        None => control
            .final_state(
                spec.settle,
                &spec.load.user_prefix,
                load.stats.counts.purchased,
            )
            .await
            .map_err(|e| e.to_string()),
    };
    let mut report = match final_state {
        Ok(FinalState {
            after,
            unsettled,
            moved,
            book,
        }) => {
            let readings: Vec<_> = polls.iter().map(StockPoint::reading).collect();
            let evidence = Evidence {
                before: &before,
                after: &after,
                book: &book,
                unsettled,
                moved,
                quiet: crate::spec::quiet_window(spec.settle),
                policy: &spec.policy,
                counters: control.counters(),
                readings: &readings,
                slack_us: 0,
            };
            let mut report = Report::build(url, embedded, &spec.load, &evidence, &load);
            report.series.add_stock_polls(&polls);
            report
        }
        Err(why) => {
            tracing::warn!(target = url, %why, "reporting without the final stock and book");
            let lost = LostTarget {
                before: &before,
                why,
                last_stock: live.stock(),
                policy: &spec.policy,
            };
            let mut report =
                Report::build_without_final_state(url, embedded, &spec.load, &lost, &load);
            report.series.add_stock_polls(&polls);
            report.series.drop_final_reading();
            report
        }
    };
    report.add_checks(probed);
    report.faults = faults;
    report.run.tls_unverified = spec.connection.insecure();
    report.run.name_checkout(&spec.connection);
    if let Some((by, after_s)) = stopped {
        report.mark_stopped(by, after_s);
    }
    Ok(report)
}
