//! A run stopped before its planned end (Ctrl-C, SIGTERM, the dashboard's Stop, CancelRun):
//! how its report says so. The audit still covers everything that was sent, but a run cut
//! short never passes: a `completed` check is added as inconclusive, so the verdict is FAIL
//! when a check failed in what was sent, else INCONCLUSIVE; the exit status is
//! [`crate::EXIT_STOPPED`] unless the audit failed.

use serde::Serialize;

use crate::audit::{Check, CheckId, Status, Verdict};
use crate::observe::stop::StoppedBy;
use crate::report::Report;

/// The JSON report's `stopped`: who stopped the run, and when.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stopped {
    /// `ctrl-c`, `sigterm`, `dashboard`, `cancel-run` or `shutdown`.
    pub by: StoppedBy,
    /// Seconds from the users' start to the stop (0 when it came before they started).
    pub after_s: f64,
    /// The planned duration of a sustained run; `null` for a burst.
    pub planned_s: Option<f64>,
}

impl Stopped {
    /// `stopped by Ctrl-C after 2.1 s of the planned 10 s`.
    pub fn sentence(&self) -> String {
        let planned = match self.planned_s {
            Some(planned) => format!(" of the planned {planned} s"),
            None => " of a burst".to_string(),
        };
        format!(
            "stopped by {} after {:.1} s{planned}",
            self.by.describe(),
            self.after_s
        )
    }
}

impl Report {
    /// Marks this report as the report of a run stopped by `by` `after_s` seconds after its
    /// users started: `stopped` set, `run.duration_s` the duration actually run (a sustained
    /// run's), a `completed` check (inconclusive) added and the verdict recomputed.
    pub fn mark_stopped(&mut self, by: StoppedBy, after_s: f64) {
        let after_s = if after_s.is_finite() {
            after_s.max(0.0)
        } else {
            0.0
        };
        let planned_s = self.run.duration_s;
        let stopped = Stopped {
            by,
            after_s,
            planned_s,
        };
        if planned_s.is_some() {
            self.run.duration_s = Some(after_s);
        }
        let audit = &mut self.audit;
        audit.checks.retain(|c| c.id != CheckId::Completed);
        audit.checks.push(Check::new(
            CheckId::Completed,
            Status::Inconclusive,
            format!(
                "{}: the audit covers what was sent, not the run asked for",
                stopped.sentence()
            ),
        ));
        audit.verdict = if audit.checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::Fail
        } else {
            Verdict::Inconclusive
        };
        self.verdict = audit.verdict.name();
        self.stopped = Some(stopped);
    }
}
