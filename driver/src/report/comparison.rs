//! The result of `driver compare`: the reports of its runs side by side, as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::Report;

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
