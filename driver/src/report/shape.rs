//! The load shape's part of a report: for an open or ramped run, the stages, the arrivals
//! dropped at the in-flight bound, and latency both ways (response time from the due instant,
//! service time from the actual send). Burst and closed-loop runs have none.

use std::fmt::Write as _;

use serde::Serialize;

use crate::engine::stats::Stats;
use crate::report::Latency;
use crate::spec::{LoadSpec, Shape};

/// What the thresholds and `latency_ms` measure in an open run.
pub const THRESHOLDS_USE: &str = "response_time";

/// An open or ramped run's shape and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShapeReport {
    /// `open` (arrival rate) or `ramping_vus`.
    pub model: &'static str,
    /// The stages as run, e.g. `0s:0/s,1s:2000/s,10s:2000/s`.
    pub stages: String,
    /// Open model: the bound on purchases in flight.
    pub max_in_flight: Option<u32>,
    /// Open model: arrivals the stages scheduled (sent + dropped, unless stopped early).
    pub scheduled: Option<u64>,
    /// Open model: arrivals dropped because the bound was reached (never sent: not attempts).
    pub dropped: u64,
    /// Ramping users: the think time's bounds in ms.
    pub think_ms: Option<[f64; 2]>,
    /// Which latency `latency_ms` and the thresholds use: `response_time` in an open run.
    pub thresholds_use: &'static str,
    /// Open model: due instant → reply (the same figures as `latency_ms`).
    pub response_time_ms: Option<Latency>,
    /// Open model: actual send → reply (what a closed-loop tool would print).
    pub service_time_ms: Option<Latency>,
}

impl ShapeReport {
    /// The shape part of a run of `spec` whose statistics are `stats`; `None` for a burst or
    /// closed loop.
    pub fn new(spec: &LoadSpec, stats: &Stats) -> Option<Self> {
        let stages = spec.shape.stages()?;
        let (max_in_flight, scheduled, think_ms) = match &spec.shape {
            Shape::Rate { max_in_flight, .. } => (
                Some(*max_in_flight),
                Some(stages.total_arrivals().ceil() as u64),
                None,
            ),
            Shape::Vus { think, .. } => {
                let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                (None, None, Some([ms(think.min), ms(think.max)]))
            }
            Shape::Users => (None, None, None),
        };
        let open = matches!(spec.shape, Shape::Rate { .. });
        Some(Self {
            model: spec.shape.model(spec.duration),
            stages: stages.to_string(),
            max_in_flight,
            scheduled,
            dropped: stats.dropped,
            think_ms,
            thresholds_use: if open { THRESHOLDS_USE } else { "latency" },
            response_time_ms: open.then(|| Latency::from_histogram(&stats.latency)),
            service_time_ms: stats.service.as_ref().map(Latency::from_histogram),
        })
    }

    /// The text report's lines.
    pub fn write_rows(&self, s: &mut String) {
        let mut row = |label: &str, value: String| {
            let _ = writeln!(s, "    {label:<20} {value}");
        };
        row("load shape", format!("{} {}", self.model, self.stages));
        if let (Some(bound), Some(scheduled)) = (self.max_in_flight, self.scheduled) {
            row(
                "dropped arrivals",
                format!(
                    "{} of {scheduled} scheduled (bound: {bound} in flight)",
                    self.dropped
                ),
            );
        }
        if let Some([min, max]) = self.think_ms {
            row("think time", format!("{min:.0}..{max:.0} ms"));
        }
        let line = |l: &Latency| {
            format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                l.p50, l.p90, l.p99, l.p999, l.max
            )
        };
        if let Some(l) = &self.response_time_ms {
            row("response (ms)", format!("{}  (thresholds)", line(l)));
        }
        if let Some(l) = &self.service_time_ms {
            row("service (ms)", line(l));
        }
    }
}
