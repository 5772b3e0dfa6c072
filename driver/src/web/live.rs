//! What the dashboard shows while a run goes: sampled on a timer from the run's live
//! [`Source`] (the load's relaxed per-connection counters, or the coordinator's summed worker
//! updates), never from the load's request path.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::engine::live::{LatencyWindow, Percentiles};
use crate::observe::progress::{Source, WorkerRow};

/// How often a running run is sampled and pushed to the browsers (4 updates a second).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Window of the requests/s figure.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Most points kept per chart; beyond, every other point is dropped (the chart stays the
/// whole run at half the resolution).
pub const MAX_POINTS: usize = 480;

/// The live figures of the run in progress.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveView {
    /// Which run of a comparison this is (1 for a single run).
    pub part: u32,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    pub attempts: u64,
    pub purchased: u64,
    /// Turned away: sold out or limit reached.
    pub sold_out: u64,
    /// Non-OK statuses plus timeouts.
    pub errors: u64,
    /// Client-side deadline expiries (`null` when the source does not count them apart).
    pub timeouts: Option<u64>,
    /// Non-OK statuses by name (empty when the source only has totals).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Latency percentiles of the requests that finished in the last second (`null` when
    /// none did, or the source has no latencies).
    pub latency: Option<Percentiles>,
    /// One row per worker of a distributed run (empty for a standalone one).
    pub workers: Vec<WorkerRow>,
    /// The last stock polled.
    pub stock: Option<i64>,
    /// `[seconds since the users started, stock]`.
    pub stock_points: Vec<(f64, i64)>,
    /// `[seconds since the users started, requests/s]`.
    pub rate_points: Vec<(f64, f64)>,
}

/// Samples one source.
pub struct Sampler {
    source: Arc<dyn Source>,
    rate: VecDeque<(Instant, u64)>,
    latency: LatencyWindow,
    view: LiveView,
}

impl Sampler {
    pub fn new(source: Arc<dyn Source>, part: u32) -> Self {
        Self {
            source,
            rate: VecDeque::new(),
            latency: LatencyWindow::default(),
            view: LiveView {
                part,
                ..LiveView::default()
            },
        }
    }

    /// Whether this samples `source` already.
    pub fn watches(&self, source: &Arc<dyn Source>) -> bool {
        Arc::ptr_eq(&self.source, source)
    }

    pub fn part(&self) -> u32 {
        self.view.part
    }

    /// Reads the source once and returns the view.
    pub fn sample(&mut self, now: Instant) -> &LiveView {
        let totals = self.source.totals();
        self.rate.push_back((now, totals.attempts));
        while self.rate.len() > 2 && now - self.rate[1].0 >= RATE_WINDOW {
            self.rate.pop_front();
        }
        let rate = match (self.rate.front(), self.rate.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                n1.saturating_sub(n0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let elapsed = self.source.elapsed(now).as_secs_f64();
        let view = &mut self.view;
        view.elapsed_s = elapsed;
        view.requests_per_s = rate;
        view.attempts = totals.attempts;
        view.purchased = totals.purchased;
        view.sold_out = totals.sold_out;
        view.errors = totals.errors;
        view.stock = self.source.stock();
        view.latency = self
            .source
            .latency()
            .and_then(|bins| self.latency.push(now, bins));
        view.workers = self.source.workers();
        if let Some(counts) = self.source.counts() {
            view.timeouts = Some(counts.timeouts);
            view.by_status = counts.statuses.by_name();
        }
        if elapsed > 0.0 {
            if let Some(stock) = view.stock {
                push_bounded(&mut view.stock_points, (elapsed, stock));
            }
            push_bounded(&mut view.rate_points, (elapsed, rate));
        }
        &self.view
    }
}

/// Appends `point`, halving the resolution when `points` is full.
fn push_bounded<T>(points: &mut Vec<T>, point: T) {
    if points.len() >= MAX_POINTS {
        let mut keep = false;
        points.retain(|_| {
            keep = !keep;
            keep
        });
    }
    points.push(point);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::live::Live;
    use crate::outcome::Outcome;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn samples_counters_and_the_stock() {
        let live = Live::new(CancellationToken::new());
        let conn = live.register();
        let start = Instant::now();
        let mut sampler = Sampler::new(live.clone(), 1);
        // Before the users start: figures, but no point on the charts.
        assert!(sampler.sample(start).stock_points.is_empty());
        live.mark_started(start);
        live.set_stock(3);
        conn.record(
            &Outcome::SoldOut {
                stock_after: Some(0),
            },
            1,
            Duration::from_millis(2),
        );
        conn.record(
            &Outcome::Status(tonic::Code::Unavailable),
            1,
            Duration::from_millis(40),
        );
        let view = sampler.sample(start + Duration::from_millis(500)).clone();
        assert_eq!((view.attempts, view.sold_out, view.errors), (2, 1, 1));
        assert_eq!(view.by_status.get("UNAVAILABLE"), Some(&1));
        let latency = view.latency.expect("latencies of the last second");
        assert_eq!(
            (latency.count, latency.p50_us, latency.p99_us),
            (2, 2_050, 40_500)
        );
        assert!(view.workers.is_empty());
        assert_eq!(view.stock_points, vec![(0.5, 3)]);
        live.set_stock(-2);
        conn.record(
            &Outcome::SoldOut {
                stock_after: Some(0),
            },
            1,
            Duration::from_millis(7),
        );
        let view = sampler.sample(start + Duration::from_millis(750));
        assert_eq!(view.stock_points.last(), Some(&(0.75, -2)));
        // All three finished within the last second.
        assert_eq!(view.latency.map(|l| l.count), Some(3));
        assert!(view.requests_per_s > 0.0);
    }

    #[test]
    fn charts_stay_bounded() {
        let mut points = Vec::new();
        for i in 0..10 * MAX_POINTS {
            push_bounded(&mut points, i);
        }
        assert!(points.len() <= MAX_POINTS);
        assert_eq!(points.first(), Some(&0));
        assert_eq!(points.last(), Some(&(10 * MAX_POINTS - 1)));
    }
}
