//! Command-line arguments, and their conversion into a validated [`RunSpec`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flashsale_server::Strategy;

use crate::client::normalize_target;
use crate::compare::CompareSpec;
use crate::error::DriverError;
use crate::spec::{LoadSpec, Mode, RunSpec};

/// Load driver that proves whether a gRPC checkout oversells under concurrency.
///
/// Starts N virtual users together against flashsale.v1.Checkout, records every outcome, then
/// audits the server: units sold vs. initial stock, final stock, conservation
/// (initial - final == units sold), the server's ledger, duplicate order ids, errors.
///
/// Without --target it starts the checkout server inside the driver on a loopback port.
///
/// Exit status: 0 every invariant held, 1 the audit failed (oversell or inconsistency),
/// 2 usage or connection error.
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
    /// completed (buggy and unstable failing their audit is the expected result), 2 on errors.
    Compare(CompareArgs),
}

/// Flags of `driver compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Concurrent virtual users of every run.
    #[arg(short, long, default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,

    /// Stock every run starts with (applied through Reset before each).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
    pub stock: i64,

    /// Checkout server as host:port or http://host:port [default: one embedded server,
    /// started once for all runs].
    #[arg(long, env = "FLASHSALE_TARGET")]
    pub target: Option<String>,

    /// Sustained runs of this length each instead of bursts.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// HTTP/2 connections [default: one per 100 users].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: Option<u32>,

    /// OS threads driving the connections [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Units each purchase asks for.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub quantity: u32,

    /// Deadline of each purchase.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Comparison format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Also write one HTML file with the comparison table and every run's charts here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

impl CompareArgs {
    /// The comparison these flags describe.
    pub fn to_spec(&self) -> Result<CompareSpec, DriverError> {
        let target = self.target.as_deref().map(normalize_target).transpose()?;
        let load = LoadSpec {
            mode: Mode::Buggy,
            users: self.users,
            connections: self
                .connections
                .unwrap_or_else(|| LoadSpec::auto_connections(self.users)),
            threads: self.threads.unwrap_or_else(available_threads),
            duration: self.duration,
            quantity: self.quantity,
            timeout: self.timeout,
            user_prefix: random_prefix(),
            first_user: 0,
        };
        Ok(CompareSpec::new(target, self.stock, &load))
    }
}

/// Flags of `driver coordinator`.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    /// Address to listen on for workers and runs.
    #[arg(
        long,
        env = "FLASHSALE_COORDINATOR_LISTEN",
        default_value = "0.0.0.0:7000"
    )]
    pub listen: std::net::SocketAddr,

    /// Workers a run waits for; every worker present when it starts takes part.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub expect_workers: u32,

    /// Checkout the workers load when a run names none, as the workers reach it.
    #[arg(long, env = "FLASHSALE_TARGET")]
    pub target: Option<String>,

    /// How long a run waits for the expected workers before failing.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub join_timeout: Duration,
}

/// Flags of `driver worker`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Coordinator as host:port or http://host:port; retried until it answers.
    #[arg(long, env = "FLASHSALE_COORDINATOR")]
    pub coordinator: String,

    /// Name in reports [default: the host name].
    #[arg(long, env = "FLASHSALE_WORKER_NAME")]
    pub name: Option<String>,
}

impl WorkerArgs {
    /// The given name, else the host name, else one made from the process id.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("worker-{}", std::process::id()))
    }
}

/// Flags of `driver probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Server as host:port or http://host:port.
    pub target: String,

    /// Service name to ask about; the empty default means the whole server.
    #[arg(long, default_value = "")]
    pub service: String,

    /// How long the check may take.
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// How the report is printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    Table,
    /// One JSON document with stable field names (see README).
    Json,
}

/// Flags of a standalone run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which purchase RPC to call (required for a run).
    #[arg(long, value_enum, required = true)]
    pub mode: Option<Mode>,

    /// Concurrent virtual users; they start together.
    #[arg(short, long, default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub users: u32,

    /// Stock to start the round with (applied through Reset).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
    pub stock: i64,

    /// Checkout server as host:port or http://host:port. Without it, a server is started
    /// inside the driver on an ephemeral loopback port with its default settings. With
    /// --coordinator: the server as the workers reach it (default: the coordinator's).
    #[arg(long, env = "FLASHSALE_TARGET")]
    pub target: Option<String>,

    /// Run distributed: submit the run to this coordinator, which splits the users over its
    /// workers, and print the merged audit with a per-worker breakdown.
    #[arg(long, env = "FLASHSALE_COORDINATOR")]
    pub coordinator: Option<String>,

    /// Sustained run: users buy back to back for this long (e.g. 10s, 1m). Without it, a
    /// flash-sale burst: each user tries once.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// HTTP/2 connections to spread the users over [default: one per 100 users].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: Option<u32>,

    /// OS threads driving the connections [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Units each purchase asks for.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub quantity: u32,

    /// Deadline of each purchase; a purchase past it counts as indeterminate.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Safe strategy to switch the server to with Reset [default: keep the server's].
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,

    /// Do not call Reset: audit against the stock the server has now.
    #[arg(long, conflicts_with_all = ["strategy"])]
    pub no_reset: bool,

    /// Prefix of the virtual users' ids [default: random per run].
    #[arg(long)]
    pub user_prefix: Option<String>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Also write a self-contained HTML report (verdict, charts over time, tables) here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
}

impl RunArgs {
    /// Checks the combination of flags and fills in the defaults that depend on others.
    pub fn to_spec(&self) -> Result<RunSpec, DriverError> {
        let mode = self
            .mode
            .ok_or_else(|| DriverError::Invalid("--mode is required for a run".into()))?;
        let target = self.target.as_deref().map(normalize_target).transpose()?;
        let prefix = match &self.user_prefix {
            Some(p) if p.len() > 100 => {
                return Err(DriverError::Invalid(format!(
                    "--user-prefix is {} bytes; at most 100 leave room for the user number",
                    p.len()
                )));
            }
            Some(p) => p.clone(),
            None => random_prefix(),
        };
        let connections = self
            .connections
            .unwrap_or_else(|| LoadSpec::auto_connections(self.users));
        let threads = self.threads.unwrap_or_else(available_threads);
        Ok(RunSpec {
            load: LoadSpec {
                mode,
                users: self.users,
                connections,
                threads,
                duration: self.duration,
                quantity: self.quantity,
                timeout: self.timeout,
                user_prefix: prefix,
                first_user: 0,
            },
            target,
            coordinator: self
                .coordinator
                .as_deref()
                .map(normalize_target)
                .transpose()?,
            stock: self.stock,
            reset: !self.no_reset,
            strategy: self.strategy,
        })
    }
}

/// One thread per available core.
fn available_threads() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// A short prefix that differs between runs, so user ids never repeat across rounds.
fn random_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("u{:x}{:x}-", std::process::id() & 0xfff, nanos & 0xfffff)
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

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("driver").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let spec = parse(&["--mode", "buggy"]).unwrap().run.to_spec().unwrap();
        assert_eq!(spec.load.users, 1000);
        assert_eq!(spec.load.connections, 10);
        assert_eq!(spec.stock, 100);
        assert!(spec.target.is_none() && spec.reset && spec.load.duration.is_none());
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
        let cli = parse(&["--mode", "safe", "--target", "https://x:1"]).unwrap();
        assert!(cli.run.to_spec().is_err());
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
        assert_eq!(args.output, OutputFormat::Json);
        let spec = args.to_spec().unwrap();
        assert!(spec.target.is_none());
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
        assert_eq!(spec.target.as_deref(), Some("http://localhost:9"));
        assert_eq!(spec.strategy, Some(Strategy::Mutex));
        assert_eq!(spec.load.user_prefix, "t-");
    }
}
