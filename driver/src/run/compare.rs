//! `driver compare`: the modes back to back against one target with the same users and stock
//! (buggy, unstable, safe with the mutex strategy, safe with the atomic strategy), Reset before
//! each, and one side-by-side comparison of what they did.

use crate::observe::stop::Stop;
use flashsale_server::Strategy;

use crate::error::DriverError;
use crate::report::SCHEMA_VERSION;
use crate::report::comparison::{ComparedRun, Comparison};
use crate::spec::policy::Policy;
use crate::spec::{LoadSpec, Mode, RunSpec};

/// The runs of a comparison, in order: mode and the safe strategy Reset switches to.
pub const PLAN: [(Mode, Option<Strategy>); 4] = [
    (Mode::Buggy, None),
    (Mode::Unstable, None),
    (Mode::Safe, Some(Strategy::Mutex)),
    (Mode::Safe, Some(Strategy::Atomic)),
];

/// What to compare, and where.
#[derive(Debug, Clone)]
pub struct CompareSpec {
    /// `http://host:port` of each replica; empty starts one embedded server for every run.
    pub targets: Vec<String>,
    /// Stock every run starts with (Reset before each).
    pub stock: i64,
    /// One run per [`PLAN`] entry, with the same load shape.
    pub runs: Vec<RunSpec>,
}

impl CompareSpec {
    /// The four runs of [`PLAN`] with `load` (its mode is replaced; each run gets its own
    /// user-id prefix so no two runs share a user).
    pub fn new(
        targets: Vec<String>,
        stock: i64,
        load: &LoadSpec,
        policy: &Policy,
        settle: std::time::Duration,
    ) -> Self {
        let runs = PLAN
            .iter()
            .map(|&(mode, strategy)| {
                let mut load = load.clone();
                load.mode = mode;
                let mut run = RunSpec {
                    load,
                    targets: targets.clone(),
                    coordinator: None,
                    stock,
                    reset: true,
                    probes: true,
                    strategy,
                    policy: policy.clone(),
                    settle,
                    admin_token: None,
                    cluster_token: None,
                    connection: crate::spec::Connection::default(),
                    faults: Vec::new(),
                };
                run.load.user_prefix = format!("{}{}-", run.load.user_prefix, run.label());
                run
            })
            .collect();
        Self {
            targets,
            stock,
            runs,
        }
    }

    /// Every run sends `token` on its admin calls.
    pub fn with_admin_token(mut self, token: Option<&str>) -> Self {
        for run in &mut self.runs {
            run.admin_token = token.map(str::to_string);
        }
        self
    }

    /// Every run connects as `connection` says (TLS, metadata).
    pub fn with_connection(mut self, connection: &crate::spec::Connection) -> Self {
        for run in &mut self.runs {
            run.connection = connection.clone();
        }
        self
    }
}

/// Runs every run of `spec` in turn against its target (or one embedded server started for
/// the whole comparison). A failed audit is a result, not an error.
/// When `stop` is stopped, the current run winds down and the remaining ones are skipped.
pub async fn compare(
    spec: &CompareSpec,
    progress: bool,
    stop: Stop,
) -> Result<Comparison, DriverError> {
    super::with_targets(&spec.targets, spec.stock, async |urls, embedded| {
        compare_against(urls, spec, embedded, progress, stop).await
    })
    .await
}

async fn compare_against(
    urls: &[String],
    spec: &CompareSpec,
    embedded: bool,
    progress: bool,
    stop: Stop,
) -> Result<Comparison, DriverError> {
    let mut runs = Vec::with_capacity(spec.runs.len());
    for run in &spec.runs {
        if stop.is_stopped() {
            break;
        }
        let report = super::run_against(urls, run, embedded, progress, stop.clone()).await?;
        runs.push(ComparedRun {
            label: run.label(),
            report,
        });
    }
    let first = spec.runs.first().map(|r| &r.load);
    Ok(Comparison {
        schema_version: SCHEMA_VERSION,
        target: urls.join(","),
        embedded,
        users: first.map_or(0, |l| l.users),
        stock: spec.stock,
        duration_s: first.and_then(|l| l.duration).map(|d| d.as_secs_f64()),
        runs,
    })
}
