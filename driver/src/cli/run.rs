//! Flags of a run and of a comparison, and their conversion into validated specs.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use flashsale_server::Strategy;

use super::{ConnectArgs, CustomArgs, OutputFormat, parse_positive_duration};
use crate::checkout::{normalize_direct_target, normalize_target};
use crate::error::DriverError;
use crate::run::compare::CompareSpec;
use crate::spec::faults::FaultWindow;
use crate::spec::policy::{Policy, Threshold, parse_share, parse_threshold};
use crate::spec::retry::{
    Backoff, Budget, DEFAULT_BACKOFF, DEFAULT_BUDGET, DEFAULT_RETRY_ON, MAX_RETRIES, Retry, RetryOn,
};
use crate::spec::{
    LoadSpec, MAX_CLICKS, MAX_CONNECTIONS, MAX_QUANTITY, MAX_THREADS, MAX_USERS, Mode, Quantities,
    RunSpec, SpecError,
};

/// The load's shape and the report's form: shared by a run and a comparison.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Concurrent virtual users; they start together.
    #[arg(short, long, default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_USERS)))]
    pub users: u32,

    /// Stock to start the round with (applied through Reset).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(0..))]
    pub stock: i64,

    /// Checkout server as host:port, http://host:port or https://host:port (TLS, see
    /// --ca-cert). Several replicas of one checkout
    /// (sharing one database): comma-separated and/or the flag repeated; a name that resolves
    /// to several addresses is resolved once at the start and every address becomes a replica
    /// (IPv4 ones only when it has both, so localhost stays one). Connections are spread round-robin over
    /// the replicas; Reset, GetStock and ListOrders go to the first; the report shows each
    /// replica's attempts. Without it, a server is started inside the driver on an ephemeral
    /// loopback port with its default settings. With --coordinator: one server as the workers
    /// reach it (default: the coordinator's; plaintext only).
    #[arg(
        long,
        env = "FLASHSALE_TARGET",
        value_delimiter = ',',
        value_name = "HOST:PORT"
    )]
    pub target: Vec<String>,

    /// Sustained run: users buy back to back for this long (e.g. 10s, 1m; at most 1h).
    /// Without it, a flash-sale burst: each user tries once.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// HTTP/2 connections to spread the users over [default: one per 100 users].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONNECTIONS)))]
    pub connections: Option<u32>,

    /// OS threads driving the connections [default: available cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_THREADS)))]
    pub threads: Option<u32>,

    /// Units each purchase asks for: one number, or a mix such as 1,2,3 that the attempts
    /// cycle through (so a checkout that tests `stock > 0` instead of `stock >= quantity`
    /// is caught) [default: 1 for a run, 1,2,3 for compare].
    #[arg(long, value_parser = Quantities::parse)]
    pub quantity: Option<Quantities>,

    /// Concurrent purchases each user sends at once, the double-click of a one-per-customer
    /// flash sale (checked against the server's per-customer limit).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CLICKS)))]
    pub clicks: u32,

    /// Largest share of attempts answered with an error status (e.g. 0.1 or 10%) before the
    /// availability check fails. Deadline expiries are not errors here: bound them with
    /// --threshold 'timeout_rate<=...'.
    #[arg(long, default_value = "0.1", value_parser = parse_rate)]
    pub max_error_rate: f64,

    /// A threshold the run must meet, k6 style; repeatable: p50/p90/p99/p99.9/mean/max with a
    /// duration (`p99<=500ms`), error_rate or timeout_rate with a share (`error_rate<1%`).
    #[arg(long = "threshold", value_name = "EXPR", value_parser = parse_threshold)]
    pub thresholds: Vec<Threshold>,

    /// How long to wait after the last reply for the server's stock and order book to stop
    /// changing before they are read and reconciled (at most 1m).
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration)]
    pub settle: Duration,

    /// Deadline of each purchase; a purchase past it counts as indeterminate (at most 1h).
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub retry: Box<RetryArgs>,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Also write a self-contained HTML report (verdict, charts over time, tables) here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,

    /// Also write the audit as a JUnit XML report here, for CI: one test case per check, one
    /// test suite per run (per mode in `compare`); see docs/driver.md.
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,

    /// Also write the time series and the per-replica (and per-worker) tables as CSV files
    /// into this directory (created if missing); columns in docs/driver.md.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,

    /// Admin token of the server, sent on Reset (its --admin-token).
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub shape: Box<super::shape::ShapeArgs>,
}

/// How purchases are retried ([`Retry`]); boxed in [`LoadArgs`] to keep the commands small.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// Retries of a purchase after an answer in --retry-on, each with the same request id
    /// (0: one try, no retry).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETRIES)))]
    pub retries: u32,

    /// The answers retried: gRPC status names (unavailable, deadline_exceeded, internal,
    /// aborted, ...), `connect` (a failed or lost connection: UNAVAILABLE here) and `timeout`
    /// (the per-try --timeout expired).
    #[arg(long, value_name = "LIST", default_value = DEFAULT_RETRY_ON, value_parser = RetryOn::parse)]
    pub retry_on: RetryOn,

    /// Backoff between tries, INITIAL..MAX: a random wait up to INITIAL × 2^(n-1), at most
    /// MAX, before retry n (gRPC's full jitter).
    #[arg(long, value_name = "INITIAL..MAX", default_value = DEFAULT_BACKOFF, value_parser = Backoff::parse)]
    pub retry_backoff: Backoff,

    /// Retry budget TOKENS:RATIO per connection (gRPC's retry throttling): an answer to retry
    /// takes a token, any other gives RATIO back; retries only while more than half are left.
    #[arg(long, value_name = "TOKENS:RATIO", default_value = DEFAULT_BUDGET, value_parser = Budget::parse)]
    pub retry_budget: Budget,

    /// Overall deadline of one purchase, all tries and backoffs included [default: tries ×
    /// --timeout + the backoffs' ceilings].
    #[arg(long, value_parser = parse_positive_duration)]
    pub deadline: Option<Duration>,
}

impl RetryArgs {
    fn to_retry(&self) -> Retry {
        Retry {
            retries: self.retries,
            on: self.retry_on,
            backoff: self.retry_backoff,
            deadline: self.deadline,
            budget: self.retry_budget,
        }
    }
}

impl LoadArgs {
    /// The load these flags describe, with users named `user_prefix<n>` and
    /// `default_quantity` unless --quantity says otherwise.
    fn to_load(
        &self,
        mode: Mode,
        user_prefix: String,
        default_quantity: Quantities,
    ) -> Result<LoadSpec, DriverError> {
        let (shape, users, duration) = self.shape.to_shape(self.users, self.duration)?;
        Ok(LoadSpec {
            mode,
            users,
            connections: self
                .connections
                .unwrap_or_else(|| LoadSpec::auto_connections(users)),
            threads: self.threads.unwrap_or_else(available_threads),
            duration,
            quantity: self.quantity.clone().unwrap_or(default_quantity),
            clicks: self.clicks,
            round: 0,
            timeout: self.timeout,
            user_prefix,
            first_user: 0,
            retry: self.retry.to_retry(),
            shape,
        })
    }

    /// The audit's demands these flags describe.
    fn to_policy(&self) -> Policy {
        Policy {
            max_error_rate: self.max_error_rate,
            thresholds: self.thresholds.clone(),
        }
    }

    /// The targets as given, each normalized (blank entries of a list such as `a,,b` are
    /// refused by [`normalize_target`]).
    fn targets(&self) -> Result<Vec<String>, DriverError> {
        self.target
            .iter()
            .map(|t| normalize_direct_target(t))
            .collect()
    }
}

/// Flags of a standalone or distributed run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Which purchase RPC of flashsale.v1.Checkout to call (required for a run, unless the
    /// checkout is your own: --checkout, --call or --http-post).
    #[arg(long, value_enum, required_unless_present_any = ["checkout", "call", "http_post"])]
    pub mode: Option<Mode>,

    #[command(flatten)]
    pub load: LoadArgs,

    /// Runs COMMAND (by `sh -c`, on this machine only) at AT after the load starts, e.g.
    /// 2s:'kill -STOP 1234'; repeatable. Start, end and exit status go on the report's timeline.
    #[arg(long = "fault", value_name = "AT:COMMAND", value_parser = FaultWindow::parse)]
    pub faults: Vec<FaultWindow>,

    /// Run distributed: submit the run to this coordinator, which splits the users over its
    /// workers, and print the merged audit with a per-worker breakdown.
    #[arg(long, env = "FLASHSALE_COORDINATOR")]
    pub coordinator: Option<String>,

    /// Cluster token of the coordinator (printed by `driver coordinator` when it made one).
    #[arg(long, env = crate::cluster::auth::TOKEN_ENV, hide_env_values = true,
          value_parser = parse_cluster_token)]
    pub token: Option<String>,

    /// Safe strategy of the round the Reset starts [default: the server's configured one].
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,

    /// Do not call Reset: audit against the stock the server has now.
    #[arg(long, conflicts_with_all = ["strategy"])]
    pub no_reset: bool,

    /// Skip the contract probes: the short sequential phase before the load that checks, each
    /// on a fresh round with a small stock, that q > stock is refused, q == stock sells exactly,
    /// a retried request id gives the same order and takes the stock once, a stale round is
    /// refused, limit + 1 is refused and quantities 0 and max + 1 follow the contract. Each is a
    /// check of its own in the report (probe_*); they need Reset.
    #[arg(long)]
    pub no_probes: bool,

    /// Prefix of the virtual users' ids: at most 100 bytes of printable ASCII without '.'
    /// [default: random per run].
    #[arg(long)]
    pub user_prefix: Option<String>,

    #[command(flatten)]
    pub custom: CustomArgs,
}

impl RunArgs {
    /// Checks the combination of flags and fills in the defaults that depend on others.
    pub fn to_spec(&self) -> Result<RunSpec, DriverError> {
        let custom = self.custom.to_api()?.map(std::sync::Arc::new);
        let mode = match (&custom, self.mode) {
            (None, mode) => mode.ok_or(SpecError::NoMode)?,
            (Some(_), Some(_)) => return Err(SpecError::CustomWithBuiltinFlag("--mode").into()),
            // Not used: the spec names the call.
            (Some(_), None) => Mode::Safe,
        };
        let prefix = self.user_prefix.clone().unwrap_or_else(random_prefix);
        let targets = if self.coordinator.is_some() {
            if self.load.connect.any() {
                return Err(crate::spec::SpecError::ConnectionWithCoordinator.into());
            }
            self.load
                .target
                .iter()
                .map(|t| normalize_target(t))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            self.load.targets()?
        };
        if let (Some(api), Some(_)) = (&custom, &self.coordinator) {
            api.check_portable()?;
        }
        let targets = match &custom {
            Some(api) => custom_targets(api, targets, self)?,
            None => targets,
        };
        let mut connection = self.load.connect.to_connection(&targets)?;
        connection.custom = custom;
        let spec = RunSpec {
            policy: self.load.to_policy(),
            settle: self.load.settle,
            load: self.load.to_load(mode, prefix, Quantities::single(1))?,
            targets,
            coordinator: self
                .coordinator
                .as_deref()
                .map(normalize_target)
                .transpose()?,
            stock: self.load.stock,
            reset: !self.no_reset,
            probes: !self.no_probes,
            strategy: self.strategy,
            admin_token: self.load.admin_token.clone(),
            cluster_token: self.token.clone(),
            connection,
            faults: self.faults.clone(),
        };
        // Before anything happens: no Reset, no connection for a plan that is refused.
        spec.validate()?;
        Ok(spec)
    }
}

/// The targets of a run against a checkout of the team's own: as given, else the origin of
/// its URLs; with the flags that only the built-in contract has refused.
fn custom_targets(
    api: &crate::spec::custom::CustomApi,
    targets: Vec<String>,
    args: &RunArgs,
) -> Result<Vec<String>, DriverError> {
    if args.strategy.is_some() {
        return Err(SpecError::CustomWithBuiltinFlag("--strategy").into());
    }
    if !args.no_reset && !api.can_reset() {
        return Err(SpecError::CustomWithoutReset.into());
    }
    if !targets.is_empty() {
        return Ok(targets);
    }
    match (&api.origin, &args.coordinator) {
        (Some(origin), None) => Ok(vec![normalize_direct_target(origin)?]),
        (None, None) => Err(SpecError::CustomWithoutTarget.into()),
        // Distributed: the workers reach the checkout over plaintext, the coordinator's
        // default target when none is given.
        (Some(origin), Some(_)) => Ok(vec![normalize_target(origin)?]),
        (None, Some(_)) => Ok(targets),
    }
}

/// Flags of `driver compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub load: LoadArgs,
}

impl CompareArgs {
    /// The comparison these flags describe.
    pub fn to_spec(&self) -> Result<CompareSpec, DriverError> {
        let load = self
            .load
            .to_load(Mode::Buggy, random_prefix(), compare_quantities())?;
        let targets = self.load.targets()?;
        let connection = self.load.connect.to_connection(&targets)?;
        let spec = CompareSpec::new(
            targets,
            self.load.stock,
            &load,
            &self.load.to_policy(),
            self.load.settle,
        )
        .with_admin_token(self.load.admin_token.as_deref())
        .with_connection(&connection);
        for run in &spec.runs {
            run.validate()?;
        }
        Ok(spec)
    }
}

/// The quantity mix of `compare` unless --quantity says otherwise: orders above one unit, so
/// that a check of `stock > 0` instead of `stock >= quantity` oversells.
fn compare_quantities() -> Quantities {
    Quantities::new(vec![1, 2, 3], MAX_QUANTITY).expect("a valid constant mix")
}

/// A cluster token as given (checked here so a bad one fails before anything runs).
fn parse_cluster_token(raw: &str) -> Result<String, String> {
    crate::cluster::auth::ClusterToken::new(raw)
        .map(|t| t.expose().to_string())
        .map_err(|e| e.to_string())
}

/// A share in [0, 1], as `0.05` or `5%`.
fn parse_rate(raw: &str) -> Result<f64, String> {
    parse_share(raw).ok_or_else(|| format!("`{raw}` is not a share between 0 and 1 (0.05 or 5%)"))
}

/// One thread per available core.
fn available_threads() -> u32 {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() as u32)
        .min(MAX_THREADS)
}

/// A short prefix that differs between runs, so user ids never repeat across rounds.
fn random_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("u{:x}{:x}-", std::process::id() & 0xfff, nanos & 0xfffff)
}
