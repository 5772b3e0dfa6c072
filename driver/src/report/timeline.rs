//! The report's view of a run over time (`series` in the JSON report): per-bucket rates,
//! outcomes, errors by status and latency percentiles, plus the stock polled during the run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::engine::series::{Bucket, Series};

/// The run over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Width of each bucket in seconds (0.01 for a burst, 1 for a sustained run; doubled for
    /// every coarsening of a long run).
    pub bucket_s: f64,
    pub buckets: Vec<TimeBucket>,
    /// Stock over time: the initial stock at 0, GetStock polls during the run, the final stock
    /// at `run.elapsed_s`.
    pub stock: Vec<StockPoint>,
}

/// The requests that ended in `[t_s, t_s + bucket_s)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeBucket {
    pub t_s: f64,
    /// Attempts per second over the part of the bucket the run covered.
    pub requests_per_s: f64,
    pub attempts: u64,
    pub purchased: u64,
    pub sold_out: u64,
    /// Non-OK statuses plus timeouts.
    pub errors: u64,
    pub timeouts: u64,
    pub by_status: BTreeMap<&'static str, u64>,
    /// Percentiles of this bucket's latencies (2 significant digits); `null` when empty.
    pub latency_ms: Option<BucketLatency>,
}

/// Latency percentiles of one bucket in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BucketLatency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// One stock reading, `t_s` seconds after the users started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StockPoint {
    pub t_s: f64,
    pub stock: i64,
}

impl StockPoint {
    /// The reading as the audit takes it: sent `t_s` after the users' start.
    pub fn reading(&self) -> crate::audit::Reading {
        crate::audit::Reading {
            sent_us: crate::engine::history::micros(std::time::Duration::from_secs_f64(
                self.t_s.max(0.0),
            )),
            stock: self.stock,
        }
    }
}

impl Timeline {
    /// The timeline of a run that lasted `elapsed`, with the stock at its ends.
    pub fn new(series: &Series, elapsed: Duration, initial: i64, last: i64) -> Self {
        let width = series.bucket_ms as f64 / 1000.0;
        let elapsed_s = elapsed.as_secs_f64();
        let buckets = series
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let t_s = i as f64 * width;
                // The last bucket may be cut short by the end of the run.
                let covered = (elapsed_s - t_s).clamp(width.min(0.001), width);
                time_bucket(t_s, covered, b)
            })
            .collect();
        Self {
            bucket_s: width,
            buckets,
            stock: vec![
                StockPoint {
                    t_s: 0.0,
                    stock: initial,
                },
                StockPoint {
                    t_s: elapsed_s,
                    stock: last,
                },
            ],
        }
    }

    /// Removes the final stock reading, for a run whose final stock could not be read (call
    /// after [`Timeline::add_stock_polls`]).
    pub fn drop_final_reading(&mut self) {
        if self.stock.len() > 1 {
            self.stock.pop();
        }
    }

    /// Inserts stock polls (seconds after the start) between the initial and final readings;
    /// polls outside the run are dropped.
    pub fn add_stock_polls(&mut self, polls: &[StockPoint]) {
        let end = self.stock.last().map_or(0.0, |p| p.t_s);
        let last = self.stock.pop();
        self.stock
            .extend(polls.iter().filter(|p| p.t_s > 0.0 && p.t_s < end));
        self.stock.extend(last);
        self.stock.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }
}

fn time_bucket(t_s: f64, covered_s: f64, b: &Bucket) -> TimeBucket {
    let ms = |us: Option<u64>| us.unwrap_or(0) as f64 / 1000.0;
    let c = &b.counts;
    TimeBucket {
        t_s,
        requests_per_s: c.attempts as f64 / covered_s,
        attempts: c.attempts,
        purchased: c.purchased,
        // Turned away, by stock or by the per-user limit (as the report has always shown it).
        sold_out: c.refused(),
        errors: c.errors(),
        timeouts: c.timeouts,
        by_status: c.statuses.by_name(),
        latency_ms: (b.latency.count() > 0).then(|| BucketLatency {
            p50: ms(b.latency.quantile(0.5)),
            p90: ms(b.latency.quantile(0.9)),
            p99: ms(b.latency.quantile(0.99)),
            max: ms(b.latency.quantile(1.0)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;
    use tonic::Code;

    #[test]
    fn rates_percentiles_and_stock() {
        let mut series = Series::new(1000);
        for _ in 0..10 {
            series.record(
                Duration::from_millis(100),
                &Outcome::SoldOut {
                    stock_after: Some(1),
                },
                1,
                2000,
            );
        }
        series.record(
            Duration::from_millis(1100),
            &Outcome::Status(Code::Unavailable),
            1,
            10,
        );
        let mut t = Timeline::new(&series, Duration::from_millis(1500), 100, -3);
        assert_eq!(t.bucket_s, 1.0);
        assert_eq!(t.buckets[0].requests_per_s, 10.0);
        assert_eq!(t.buckets[1].requests_per_s, 2.0, "half a bucket covered");
        assert_eq!(t.buckets[1].by_status.get("UNAVAILABLE"), Some(&1));
        assert_eq!(t.buckets[0].latency_ms.unwrap().p50, 2.05);
        let poll = |t_s, stock| StockPoint { t_s, stock };
        t.add_stock_polls(&[poll(1.2, 5), poll(0.5, 50), poll(9.0, 0)]);
        let stock: Vec<i64> = t.stock.iter().map(|p| p.stock).collect();
        assert_eq!(stock, [100, 50, 5, -3]);
    }
}
