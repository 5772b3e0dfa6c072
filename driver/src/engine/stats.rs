//! Outcome counters, latency histogram and history of a set of requests. Each load thread
//! keeps its own (no lock, no channel on the hot path); they are merged once at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tonic::Code;

use crate::engine::history::{Answer, Attempt, AttemptKey, History};
use crate::engine::outcome::Outcome;
use crate::engine::series::Series;

/// Highest latency the histograms track exactly (longer ones are clamped): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Counters and latencies of a set of requests.
#[derive(Debug, Clone)]
pub struct Stats {
    pub attempts: u64,
    pub purchased: u64,
    pub units_purchased: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    pub bad_replies: u64,
    pub timeouts: u64,
    /// Units all the attempts asked for.
    pub units_requested: u64,
    /// Requests per non-OK status code (its number).
    pub statuses: BTreeMap<i32, u64>,
    /// Requests whose effect is unknown (timeouts and indeterminate statuses).
    pub indeterminate: u64,
    /// Units those requests asked for.
    pub indeterminate_units: u64,
    /// Purchases acknowledged without an order id.
    pub missing_order_ids: u64,
    /// Every attempt, compactly (24 bytes each), for the reconciliation.
    pub history: History,
    /// Lowest `stock_after` any reply reported.
    pub min_stock_seen: Option<i64>,
    /// Latency of every answered request and of timeouts (at the deadline), in microseconds.
    pub latency: Histogram<u64>,
    /// The same requests over time (filled by [`Stats::record_at`]).
    pub series: Series,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            attempts: 0,
            purchased: 0,
            units_purchased: 0,
            sold_out: 0,
            limit_reached: 0,
            bad_replies: 0,
            timeouts: 0,
            units_requested: 0,
            statuses: BTreeMap::new(),
            indeterminate: 0,
            indeterminate_units: 0,
            missing_order_ids: 0,
            history: History::default(),
            min_stock_seen: None,
            latency: new_histogram(),
            series: Series::default(),
        }
    }
}

/// A latency histogram in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

impl Stats {
    /// Empty stats whose time series uses buckets of `bucket_ms`.
    pub fn with_bucket_ms(bucket_ms: u64) -> Self {
        Self {
            series: Series::new(bucket_ms),
            ..Self::default()
        }
    }

    /// [`Stats::record`], and into the time series as a request that ended `at` after the
    /// users' start.
    pub fn record_at(
        &mut self,
        at: Duration,
        key: AttemptKey,
        quantity: u32,
        outcome: Outcome,
        latency: Duration,
    ) {
        self.series.record(at, &outcome, latency_us(latency));
        self.record(key, quantity, outcome, latency);
    }

    /// Records attempt `key`, which asked for `quantity` units.
    pub fn record(&mut self, key: AttemptKey, quantity: u32, outcome: Outcome, latency: Duration) {
        self.attempts += 1;
        self.units_requested += u64::from(quantity);
        self.latency.saturating_record(latency_us(latency));
        if outcome.is_indeterminate() {
            self.indeterminate += 1;
            self.indeterminate_units += u64::from(quantity);
        }
        let answer = Answer::of(&outcome);
        let mut order = 0;
        match outcome {
            Outcome::Purchased {
                order_id,
                quantity,
                stock_after,
            } => {
                self.purchased += 1;
                self.units_purchased += u64::from(quantity);
                self.see_stock(stock_after);
                if order_id.is_empty() {
                    self.missing_order_ids += 1;
                } else {
                    order = crate::spec::ids::fnv1a(order_id.as_bytes());
                }
            }
            Outcome::SoldOut { stock_after } => {
                self.sold_out += 1;
                self.see_stock(stock_after);
            }
            Outcome::LimitReached { stock_after } => {
                self.limit_reached += 1;
                self.see_stock(stock_after);
            }
            Outcome::BadReply => self.bad_replies += 1,
            Outcome::Status(code) => *self.statuses.entry(code as i32).or_default() += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
        self.history.push(Attempt {
            key,
            quantity,
            answer,
            order,
        });
    }

    fn see_stock(&mut self, stock: i64) {
        self.min_stock_seen = Some(self.min_stock_seen.map_or(stock, |m| m.min(stock)));
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Stats) {
        self.attempts += other.attempts;
        self.purchased += other.purchased;
        self.units_purchased += other.units_purchased;
        self.sold_out += other.sold_out;
        self.limit_reached += other.limit_reached;
        self.bad_replies += other.bad_replies;
        self.timeouts += other.timeouts;
        self.units_requested += other.units_requested;
        for (code, n) in other.statuses {
            *self.statuses.entry(code).or_default() += n;
        }
        self.indeterminate += other.indeterminate;
        self.indeterminate_units += other.indeterminate_units;
        self.missing_order_ids += other.missing_order_ids;
        self.history.merge(other.history);
        if let Some(stock) = other.min_stock_seen {
            self.see_stock(stock);
        }
        self.latency
            .add(&other.latency)
            .expect("histograms share the same bounds");
        self.series.merge(other.series);
    }

    /// Requests that ended in a non-OK status or a timeout.
    pub fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.timeouts
    }

    /// Attempts that ran past their deadline: the client's own timeout, DEADLINE_EXCEEDED, or
    /// CANCELLED (what a tonic server answers when it enforces the request's deadline itself).
    pub fn deadline_expiries(&self) -> u64 {
        self.timeouts
            + self.status_count(Code::DeadlineExceeded)
            + self.status_count(Code::Cancelled)
    }

    /// Share of attempts answered with an error status, deadline expiries excluded (an
    /// overloaded server is measured by `timeout_rate` and latency thresholds instead).
    pub fn error_rate(&self) -> f64 {
        let expired = self.deadline_expiries() - self.timeouts;
        let errors = self.statuses.values().sum::<u64>().saturating_sub(expired);
        share(errors, self.attempts)
    }

    /// Share of attempts that ran past their deadline.
    pub fn timeout_rate(&self) -> f64 {
        share(self.deadline_expiries(), self.attempts)
    }

    fn status_count(&self, code: Code) -> u64 {
        self.statuses.get(&(code as i32)).copied().unwrap_or(0)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A latency in whole microseconds within the histograms' bounds.
fn latency_us(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(user: u32) -> AttemptKey {
        AttemptKey { user, seq: 0 }
    }

    fn purchased(id: &str) -> Outcome {
        Outcome::Purchased {
            order_id: id.into(),
            quantity: 2,
            stock_after: 5,
        }
    }

    #[test]
    fn records_and_merges() {
        let ms = Duration::from_millis(1);
        let mut a = Stats::default();
        a.record(k(1), 2, purchased("o1"), ms);
        a.record(k(2), 2, Outcome::SoldOut { stock_after: -3 }, ms);
        a.record(k(3), 2, Outcome::Status(Code::Unavailable), ms);
        let mut b = Stats::default();
        b.record(k(4), 2, purchased("o1"), ms);
        b.record(k(5), 2, purchased(""), ms);
        b.record(k(6), 2, Outcome::Timeout, Duration::from_secs(1));
        b.record(k(7), 1, Outcome::Status(Code::DeadlineExceeded), ms);
        a.merge(b);
        assert_eq!(a.attempts, 7);
        assert_eq!((a.purchased, a.units_purchased), (3, 6));
        assert_eq!(a.sold_out, 1);
        assert_eq!(a.timeouts, 1);
        assert_eq!(a.errors(), 3);
        assert_eq!((a.indeterminate, a.indeterminate_units), (2, 3));
        assert_eq!(a.missing_order_ids, 1);
        assert_eq!(a.history.len(), 7);
        assert_eq!(a.units_requested, 13);
        assert_eq!(a.deadline_expiries(), 2);
        assert!((a.error_rate() - 1.0 / 7.0).abs() < 1e-9);
        assert_eq!(a.min_stock_seen, Some(-3));
        assert_eq!(a.statuses.get(&(Code::Unavailable as i32)), Some(&1));
        assert_eq!(
            crate::engine::outcome::code_name(Code::Unavailable as i32),
            "UNAVAILABLE"
        );
        assert_eq!(a.latency.len(), 7);
        assert!(a.latency.max() >= 1_000_000 - 1000);
        assert!(
            a.series.buckets.is_empty(),
            "record() leaves the series alone"
        );
    }

    #[test]
    fn record_at_fills_the_series_and_merge_combines_it() {
        let ms = Duration::from_millis(1);
        let mut a = Stats::with_bucket_ms(10);
        a.record_at(Duration::from_millis(3), k(9), 2, purchased("o1"), ms);
        let mut b = Stats::with_bucket_ms(10);
        b.record_at(Duration::from_millis(25), k(9), 2, Outcome::Timeout, ms);
        a.merge(b);
        a.merge(Stats::default());
        assert_eq!(a.series.bucket_ms, 10);
        let attempts: Vec<u64> = a.series.buckets.iter().map(|b| b.attempts).collect();
        assert_eq!(attempts, [1, 0, 1]);
        assert_eq!(a.series.buckets[2].timeouts, 1);
        assert_eq!(a.attempts, 2);
    }
}
