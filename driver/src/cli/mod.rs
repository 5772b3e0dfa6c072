//! Command-line arguments, and their conversion into validated specs.

mod cluster;
mod compose;
mod connect;
mod custom;
mod run;
mod shape;
mod web;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

pub use cluster::{CoordinatorArgs, ProbeArgs, WorkerArgs};
pub use compose::{COMPOSE_ENV, compose_help};
pub use connect::ConnectArgs;
pub use custom::CustomArgs;
pub use run::{CompareArgs, LoadArgs, RunArgs};
pub use web::WebArgs;

/// Load driver that proves whether a gRPC checkout oversells under concurrency.
///
/// Starts N virtual users together against flashsale.v1.Checkout (Reset first, verified),
/// records every attempt with its request id, waits for the server to settle, then audits it
/// order by order against the server's book (ListOrders): oversell, undersell, conservation,
/// lost / phantom / ghost / duplicate orders, the per-customer limit, availability, thresholds.
///
/// Without --target it starts the checkout server inside the driver on a loopback port.
///
/// Exit status: 0 every check held, 1 a check failed, 2 usage or connection error (or a Reset
/// that did not take effect), 3 (distributed) nothing failed but a worker was lost,
/// 4 inconclusive: nothing failed but the run did not prove it (e.g. the stock never ran out,
/// or attempts of unknown effect and no order book to resolve them), 5 stopped early (Ctrl-C,
/// SIGTERM, the dashboard's Stop, CancelRun) with nothing failed in what was sent.
#[derive(Debug, Parser)]
#[command(
    name = "driver",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(flatten)]
    pub run: RunArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Other things the driver can do besides a run.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Coordinate distributed runs: wait for workers, split each submitted run over them, start
    /// them together, merge their results. Runs no users itself.
    Coordinator(CoordinatorArgs),
    /// Join a coordinator and run the users it assigns.
    Worker(WorkerArgs),
    /// Check a server's standard gRPC health service (for container healthchecks): exit 0 when
    /// SERVING, 1 when not serving, 2 when unreachable.
    Probe(ProbeArgs),
    /// Run buggy, unstable, safe (mutex) and safe (atomic) back to back against one target
    /// with the same users and stock, and print them side by side. Exit 0 when every run
    /// completed (buggy and unstable failing their audit is the expected result), 5 when
    /// stopped early, 2 on errors.
    Compare(Box<CompareArgs>),
    /// Serve the live web dashboard: start runs from a browser, watch them live, stop them,
    /// read and download their reports, compare runs (see docs/web.md).
    Web(WebArgs),
}

/// How the report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document with stable field names (see docs/json-report.md).
    Json,
}

/// Parses a human duration (`10s`, `250ms`, `1m`) that must be more than zero.
pub fn parse_positive_duration(raw: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(raw).map_err(|e| format!("`{raw}`: {e} (try 10s, 250ms, 1m)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mode, RunSpec};
    use flashsale_server::Strategy;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("driver").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let spec = parse(&["--mode", "buggy"]).unwrap().run.to_spec().unwrap();
        assert_eq!(spec.load.users, 1000);
        assert_eq!(spec.load.connections, 10);
        assert_eq!(spec.stock, 100);
        assert!(spec.targets.is_empty() && spec.reset && spec.load.duration.is_none());
        assert_eq!(spec.load.timeout, Duration::from_secs(10));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["--mode", "fast"][..],
            &[][..],
            &["--mode", "safe", "--users", "0"],
            &["--mode", "safe", "--stock", "-5"],
            &["--mode", "safe", "--duration", "0s"],
            &["--mode", "safe", "--duration", "soon"],
            &["--mode", "safe", "--connections", "0"],
            &["--mode", "safe", "--no-reset", "--strategy", "mutex"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let cli = parse(&["--mode", "safe", "--target", "grpc://x:1"]).unwrap();
        assert!(cli.run.to_spec().is_err());
        // TLS targets are fine for a standalone run (see tests/tls.rs), not distributed ones.
        let cli = parse(&["--mode", "safe", "--target", "https://x:1"]).unwrap();
        assert!(cli.run.to_spec().unwrap().targets[0].starts_with("https://"));
        let cli = parse(&[
            "--mode",
            "safe",
            "--target",
            "https://x:1",
            "--coordinator",
            "c:1",
        ]);
        assert!(cli.unwrap().run.to_spec().is_err());
        // Parsed, then refused by the one validation of a run plan (before any side effect).
        for refused in [
            &["--timeout", "1000000years"][..],
            &["--duration", "61m"],
            &["--settle", "2m"],
            &["--user-prefix", "a.b"],
            &["--user-prefix", "tab\there"],
            &["--users", "1000000", "--clicks", "2"],
        ] {
            let cli = parse(&[&["--mode", "safe"][..], refused].concat()).unwrap();
            assert!(
                matches!(cli.run.to_spec(), Err(crate::DriverError::Spec(_))),
                "{refused:?}"
            );
        }
        let compare = parse(&["compare", "--timeout", "2h"]).unwrap();
        let Some(Command::Compare(args)) = compare.command else {
            panic!("not compare");
        };
        assert!(args.to_spec().is_err());
    }

    #[test]
    fn probe_subcommand() {
        let cli = parse(&["probe", "localhost:50051"]).unwrap();
        match cli.command {
            Some(Command::Probe(p)) => assert_eq!(p.target, "localhost:50051"),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["--mode", "safe", "probe", "x:1"]).is_err());
    }

    #[test]
    fn compare_subcommand() {
        let cli = parse(&["compare", "-u", "300", "--stock", "7", "--output", "json"]).unwrap();
        let Some(Command::Compare(args)) = cli.command else {
            panic!("not compare");
        };
        assert_eq!(args.load.output, OutputFormat::Json);
        let spec = args.to_spec().unwrap();
        assert!(spec.targets.is_empty());
        let labels: Vec<String> = spec.runs.iter().map(RunSpec::label).collect();
        assert_eq!(labels, ["buggy", "unstable", "safe/mutex", "safe/atomic"]);
        for run in &spec.runs {
            assert_eq!(
                (run.load.users, run.load.connections, run.stock),
                (300, 3, 7)
            );
            assert!(run.reset);
        }
        assert_ne!(spec.runs[0].load.user_prefix, spec.runs[1].load.user_prefix);
        assert!(parse(&["compare", "--mode", "safe"]).is_err());
        assert!(parse(&["compare", "--stock", "-1"]).is_err());
    }

    #[test]
    fn explicit_values() {
        let cli = parse(&[
            "--mode",
            "unstable",
            "-u",
            "250",
            "--connections",
            "3",
            "--duration",
            "2s",
            "--target",
            "localhost:9",
            "--strategy",
            "mutex",
            "--user-prefix",
            "t-",
        ])
        .unwrap();
        let spec = cli.run.to_spec().unwrap();
        assert_eq!(spec.load.mode, Mode::Unstable);
        assert_eq!((spec.load.users, spec.load.connections), (250, 3));
        assert_eq!(spec.load.duration, Some(Duration::from_secs(2)));
        assert_eq!(spec.targets, ["http://localhost:9"]);
        assert_eq!(spec.strategy, Some(Strategy::Mutex));
        assert_eq!(spec.load.user_prefix, "t-");
    }

    #[test]
    fn several_targets_comma_separated_and_repeated() {
        let cli = parse(&[
            "--mode",
            "safe",
            "--target",
            "a:1,http://b:2",
            "--target",
            "c:3",
        ])
        .unwrap();
        let spec = cli.run.to_spec().unwrap();
        assert_eq!(spec.targets, ["http://a:1", "http://b:2", "http://c:3"]);
        for bad in [&["--target", "a:1,,b:2"][..], &["--target", "a:1,b"]] {
            let cli = parse(&[&["--mode", "safe"][..], bad].concat()).unwrap();
            assert!(cli.run.to_spec().is_err(), "{bad:?}");
        }
        let distributed = parse(&[
            "--mode",
            "safe",
            "--coordinator",
            "c:9",
            "--target",
            "a:1,b:2",
        ])
        .unwrap();
        assert!(matches!(
            distributed.run.to_spec(),
            Err(crate::DriverError::Spec(
                crate::spec::SpecError::TargetsWithCoordinator
            ))
        ));
    }
}
