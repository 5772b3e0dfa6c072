//! `driver compare`: the modes back to back against one target with the same users and stock
//! (buggy, unstable, safe with the mutex strategy, safe with the atomic strategy), Reset before
//! each, and one side-by-side comparison of what they did.

use std::fmt::Write as _;

use flashsale_server::Strategy;
use serde::Serialize;

use crate::audit::policy::Policy;
use crate::error::DriverError;
use crate::interrupt::Interrupt;
use crate::report::{Report, SCHEMA_VERSION};
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
    /// `http://host:port`; `None` starts one embedded server for every run.
    pub target: Option<String>,
    /// Stock every run starts with (Reset before each).
    pub stock: i64,
    /// One run per [`PLAN`] entry, with the same load shape.
    pub runs: Vec<RunSpec>,
}

impl CompareSpec {
    /// The four runs of [`PLAN`] with `load` (its mode is replaced; each run gets its own
    /// user-id prefix so no two runs share a user).
    pub fn new(
        target: Option<String>,
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
                    target: target.clone(),
                    coordinator: None,
                    stock,
                    reset: true,
                    strategy,
                    policy: policy.clone(),
                    settle,
                    admin_token: None,
                };
                run.load.user_prefix = format!("{}{}-", run.load.user_prefix, run.label());
                run
            })
            .collect();
        Self {
            target,
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
}

/// The reports of a comparison, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub target: String,
    pub embedded: bool,
    pub users: u32,
    pub stock: i64,
    /// `null` for bursts, else the sustained duration of each run.
    pub duration_s: Option<f64>,
    pub runs: Vec<ComparedRun>,
}

/// One run of a comparison: its label (`buggy`, `unstable`, `safe/mutex`, `safe/atomic`) and
/// its full report.
#[derive(Debug, Clone, Serialize)]
pub struct ComparedRun {
    pub label: String,
    #[serde(flatten)]
    pub report: Report,
}

/// Runs every run of `spec` in turn against its target (or one embedded server started for
/// the whole comparison). A failed audit is a result, not an error.
/// When `interrupt` fires, the current run winds down and the remaining ones are skipped.
pub async fn compare(
    spec: &CompareSpec,
    progress: bool,
    interrupt: Interrupt,
) -> Result<Comparison, DriverError> {
    crate::with_target(spec.target.as_deref(), spec.stock, async |url, embedded| {
        compare_against(url, spec, embedded, progress, interrupt).await
    })
    .await
}

async fn compare_against(
    url: &str,
    spec: &CompareSpec,
    embedded: bool,
    progress: bool,
    interrupt: Interrupt,
) -> Result<Comparison, DriverError> {
    let mut runs = Vec::with_capacity(spec.runs.len());
    for run in &spec.runs {
        if interrupt.fired() {
            break;
        }
        let report = crate::run_against(url, run, embedded, progress, interrupt.clone()).await?;
        runs.push(ComparedRun {
            label: run.label(),
            report,
        });
    }
    let first = spec.runs.first().map(|r| &r.load);
    Ok(Comparison {
        schema_version: SCHEMA_VERSION,
        target: url.to_string(),
        embedded,
        users: first.map_or(0, |l| l.users),
        stock: spec.stock,
        duration_s: first.and_then(|l| l.duration).map(|d| d.as_secs_f64()),
        runs,
    })
}

impl Comparison {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a comparison always serializes")
    }

    /// One line per measure, one column per run.
    pub fn rows(&self) -> Vec<(&'static str, Vec<String>)> {
        let col = |f: &dyn Fn(&Report) -> String| self.runs.iter().map(|r| f(&r.report)).collect();
        vec![
            ("purchased", col(&|r| r.outcomes.purchased.to_string())),
            ("sold out", col(&|r| r.outcomes.sold_out.to_string())),
            (
                "oversold units",
                col(&|r| r.audit.oversold_units.to_string()),
            ),
            ("final stock", col(&|r| r.audit.final_stock.to_string())),
            ("errors", col(&|r| r.outcomes.errors.to_string())),
            ("requests/s", col(&|r| format!("{:.0}", r.throughput_rps))),
            ("elapsed (s)", col(&|r| format!("{:.3}", r.run.elapsed_s))),
            ("p50 (ms)", col(&|r| format!("{:.2}", r.latency_ms.p50))),
            ("p99 (ms)", col(&|r| format!("{:.2}", r.latency_ms.p99))),
            ("verdict", col(&|r| r.verdict.to_uppercase())),
        ]
    }

    /// A one-line description of the comparison's shape and target.
    pub fn headline(&self) -> String {
        let shape = self
            .duration_s
            .map_or("burst".to_string(), |d| format!("sustained {d} s"));
        let where_ = if self.embedded {
            "embedded server at "
        } else {
            ""
        };
        format!(
            "flashsale compare: {} users, stock {}, {shape}, against {where_}{}",
            self.users, self.stock, self.target
        )
    }

    /// The side-by-side table.
    pub fn to_table(&self) -> String {
        let mut s = self.headline();
        s.push_str("\n\n");
        let _ = write!(s, "  {:<16}", "");
        for run in &self.runs {
            let _ = write!(s, " {:>12}", run.label);
        }
        s.push('\n');
        for (name, values) in self.rows() {
            let _ = write!(s, "  {name:<16}");
            for v in values {
                let _ = write!(s, " {v:>12}");
            }
            s.push('\n');
        }
        s.push_str(
            "\nbuggy and unstable are expected to FAIL: that is what the comparison shows.\n",
        );
        s
    }
}
