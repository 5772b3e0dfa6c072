//! The contract probes of a distributed run: the coordinator runs them once, before the load,
//! and the client's report carries their checks (a `> 0` checkout caught by
//! `probe_over_stock`; `--no-probes` travels to the coordinator and skips them).

mod cluster_support;
mod faults;

use clap::Parser;
use flashsale_driver::audit::Status;
use flashsale_driver::cli::Cli;
use flashsale_driver::{Report, Verdict};

use cluster_support::{Coordinator, TOKEN, worker};
use faults::{Config, Fault, start};

async fn distributed(coordinator: &str, extra: &[&str]) -> Report {
    let argv = [
        "driver",
        "--coordinator",
        coordinator,
        "--token",
        TOKEN,
        "--mode",
        "safe",
        "-u",
        "20",
        "--stock",
        "10",
        "--settle",
        "1s",
    ]
    .into_iter()
    .chain(extra.iter().copied());
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    flashsale_driver::run(&spec).await.unwrap()
}

fn status(report: &Report, name: &str) -> Option<Status> {
    report
        .audit
        .checks
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_probes_once_before_the_load() {
    let correct = start(Config::new(Fault::Correct).per_user_limit(2));
    let coordinator = Coordinator::start(1, correct.url()).await;
    let _worker = worker(&coordinator.url, "w1", Some(TOKEN));
    let report = distributed(&coordinator.url, &[]).await;
    assert_eq!(report.audit.verdict, Verdict::Pass, "{}", report.to_table());
    let probes: Vec<_> = report
        .audit
        .checks
        .iter()
        .filter(|c| c.name.starts_with("probe_"))
        .collect();
    assert_eq!(probes.len(), 6, "{}", report.to_table());
    assert!(
        probes.iter().all(|c| c.status == Status::Pass),
        "{}",
        report.to_table()
    );
    drop(coordinator);

    let faulty = start(Config::new(Fault::GreaterThanZeroCheck));
    let coordinator = Coordinator::start(1, faulty.url()).await;
    let _worker = worker(&coordinator.url, "w1", Some(TOKEN));
    let report = distributed(&coordinator.url, &[]).await;
    assert_eq!(report.audit.verdict, Verdict::Fail, "{}", report.to_table());
    assert_eq!(
        report.audit.with_status(Status::Fail),
        ["probe_over_stock"],
        "{}",
        report.to_table()
    );
    assert_eq!(report.exit_code(), 1);
    let report = distributed(&coordinator.url, &["--no-probes"]).await;
    assert_eq!(report.audit.verdict, Verdict::Pass, "{}", report.to_table());
    assert_eq!(status(&report, "probe_over_stock"), Some(Status::Skipped));
}
