//! What a set of requests came to: the outcome [`Counts`], the latency histogram, the history
//! and the time series. Each load thread keeps its own (its connections share it unlocked; no
//! lock, no channel on the hot path); they are merged once at the end.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::checkout::retry::Tried;
use crate::engine::counts::{Counts, Overflow};
use crate::engine::history::{Answer, Attempt, AttemptKey, History, UNKNOWN_TIME, micros};
use crate::engine::series::Series;
use crate::engine::tries::TryCounts;
use crate::outcome::Outcome;

/// Highest latency the histograms track exactly (longer ones are clamped): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Counters, latencies, history and time series of a set of requests.
#[derive(Debug, Clone)]
pub struct Stats {
    /// What the requests came to.
    pub counts: Counts,
    /// Every attempt, compactly (24 bytes each), for the reconciliation.
    pub history: History,
    /// Lowest `stock_after` any reply reported.
    pub min_stock_seen: Option<i64>,
    /// Latency of every answered request and of timeouts (at the deadline), in microseconds.
    pub latency: Histogram<u64>,
    /// The same requests over time (filled by [`Stats::record_at`]).
    pub series: Series,
    /// How the retries went (`--retries`; all zero without).
    pub tries: TryCounts,
    /// Open model only: service time (actual send to reply) of every request, in µs; then
    /// `latency` holds the response time (due instant to reply).
    pub service: Option<Histogram<u64>>,
    /// Open model only: arrivals dropped because `--max-in-flight` purchases were in flight
    /// (never sent, so not attempts).
    pub dropped: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            counts: Counts::default(),
            history: History::default(),
            min_stock_seen: None,
            latency: new_histogram(),
            series: Series::default(),
            tries: TryCounts::default(),
            service: None,
            dropped: 0,
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
        self.series
            .record(at, &outcome, quantity, latency_us(latency));
        let times = (micros(at.saturating_sub(latency)), micros(at));
        self.record_timed(key, quantity, outcome, latency, times);
    }

    /// [`Stats::record_at`] for a request that took `tried.tries` tries (`latency`: all of
    /// them, backoffs included).
    pub fn record_tried(
        &mut self,
        at: Duration,
        key: AttemptKey,
        quantity: u32,
        tried: Tried,
        latency: Duration,
    ) {
        let purchased = matches!(tried.outcome, Outcome::Purchased { .. });
        self.record_at(at, key, quantity, tried.outcome, latency);
        if let Some(last) = self.history.attempts.last_mut() {
            last.tries = u8::try_from(tried.tries).unwrap_or(u8::MAX);
        }
        self.tries
            .record(tried.tries, purchased, tried.exhausted, tried.throttled);
    }

    /// [`Stats::record_at`] for the open model: `latency` and the series get the response time
    /// (due instant to reply), [`Stats::service`] the service time, and the history the
    /// actual send (`at - service`).
    pub fn record_open(
        &mut self,
        at: Duration,
        key: AttemptKey,
        quantity: u32,
        outcome: Outcome,
        (service, response): (Duration, Duration),
    ) {
        self.series
            .record(at, &outcome, quantity, latency_us(response));
        self.service
            .get_or_insert_with(new_histogram)
            .saturating_record(latency_us(service));
        let times = (micros(at.saturating_sub(service)), micros(at));
        self.record_timed(key, quantity, outcome, response, times);
    }

    /// Records attempt `key`, which asked for `quantity` units, at unknown times.
    pub fn record(&mut self, key: AttemptKey, quantity: u32, outcome: Outcome, latency: Duration) {
        self.record_timed(key, quantity, outcome, latency, (0, UNKNOWN_TIME));
    }

    /// Records attempt `key`, sent and answered at `(sent_us, replied_us)` after the users'
    /// start.
    fn record_timed(
        &mut self,
        key: AttemptKey,
        quantity: u32,
        outcome: Outcome,
        latency: Duration,
        (sent_us, replied_us): (u32, u32),
    ) {
        self.counts.record(&outcome, quantity);
        self.latency.saturating_record(latency_us(latency));
        let mut order = 0;
        match &outcome {
            Outcome::Purchased {
                order_id,
                stock_after,
                ..
            } => {
                self.see_stock(*stock_after);
                if !order_id.is_empty() {
                    order = crate::spec::ids::fnv1a(order_id.as_bytes());
                }
            }
            Outcome::SoldOut { stock_after } | Outcome::LimitReached { stock_after } => {
                self.see_stock(*stock_after);
            }
            Outcome::BadReply | Outcome::Status(_) | Outcome::Timeout => {}
        }
        self.history.push(Attempt {
            key,
            quantity,
            answer: Answer::of(&outcome),
            order,
            sent_us,
            replied_us,
            tries: 1,
        });
    }

    fn see_stock(&mut self, stock: Option<i64>) {
        let Some(stock) = stock else { return };
        self.min_stock_seen = Some(self.min_stock_seen.map_or(stock, |m| m.min(stock)));
    }

    /// Adds `other` into `self`. Every sum is checked before anything changes: when a counter
    /// (overall or in a time bucket) would overflow, `self` is left as it was.
    pub fn merge(&mut self, other: Stats) -> Result<(), Overflow> {
        let counts = self.counts.checked_sum(&other.counts)?;
        self.series.merge(other.series)?;
        self.counts = counts;
        self.history.merge(other.history);
        self.tries.merge(&other.tries);
        self.see_stock(other.min_stock_seen);
        // HdrHistogram's add saturates; it fails only on values outside the bounds, which
        // `new_histogram` shares.
        self.latency
            .add(&other.latency)
            .expect("histograms share the same bounds");
        self.dropped = self.dropped.saturating_add(other.dropped);
        match (&mut self.service, other.service) {
            (Some(mine), Some(theirs)) => {
                mine.add(&theirs).expect("histograms share the same bounds")
            }
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        Ok(())
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
    use tonic::Code;

    fn k(user: u32) -> AttemptKey {
        AttemptKey { user, seq: 0 }
    }

    fn purchased(id: &str) -> Outcome {
        Outcome::Purchased {
            order_id: id.into(),
            quantity: 2,
            stock_after: Some(5),
        }
    }

    #[test]
    fn records_and_merges() {
        let ms = Duration::from_millis(1);
        let mut a = Stats::default();
        a.record(k(1), 2, purchased("o1"), ms);
        a.record(
            k(2),
            2,
            Outcome::SoldOut {
                stock_after: Some(-3),
            },
            ms,
        );
        a.record(k(3), 2, Outcome::Status(Code::Unavailable), ms);
        let mut b = Stats::default();
        b.record(k(4), 2, purchased("o1"), ms);
        b.record(k(5), 2, purchased(""), ms);
        b.record(k(6), 2, Outcome::Timeout, Duration::from_secs(1));
        b.record(k(7), 1, Outcome::Status(Code::DeadlineExceeded), ms);
        a.merge(b).unwrap();
        let c = &a.counts;
        assert_eq!(c.attempts, 7);
        assert_eq!((c.purchased, c.units_purchased), (3, 6));
        assert_eq!(c.sold_out, 1);
        assert_eq!(c.timeouts, 1);
        assert_eq!(c.errors(), 3);
        assert_eq!((c.indeterminate, c.indeterminate_units), (2, 3));
        assert_eq!(c.missing_order_ids, 1);
        assert_eq!(c.units_requested, 13);
        assert_eq!(c.deadline_expiries(), 1);
        assert!((c.error_rate() - 2.0 / 7.0).abs() < 1e-9);
        assert_eq!(c.statuses.get(Code::Unavailable), 1);
        assert_eq!(a.history.len(), 7);
        assert_eq!(a.min_stock_seen, Some(-3));
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
        a.merge(b).unwrap();
        a.merge(Stats::default()).unwrap();
        assert_eq!(a.series.bucket_ms, 10);
        let attempts: Vec<u64> = a.series.buckets.iter().map(|b| b.counts.attempts).collect();
        assert_eq!(attempts, [1, 0, 1]);
        assert_eq!(a.series.buckets[2].counts.timeouts, 1);
        assert_eq!(a.counts.attempts, 2);
    }

    #[test]
    fn a_merge_that_would_wrap_is_refused_and_changes_nothing() {
        let ms = Duration::from_millis(1);
        let mut a = Stats::with_bucket_ms(10);
        a.record_at(ms, k(1), 1, purchased("o1"), ms);
        let before = (a.counts, a.series.clone(), a.history.clone());

        // A peer's totals that would wrap the merged counters.
        let mut huge = Stats::default();
        huge.counts.purchased = u64::MAX;
        assert_eq!(a.merge(huge), Err(Overflow("purchased")));
        assert_eq!((a.counts, a.series.clone(), a.history.clone()), before);

        // Totals that fit but a time bucket that would wrap.
        let mut bucket = Stats::with_bucket_ms(10);
        bucket.record_at(ms, k(2), 1, Outcome::Timeout, ms);
        bucket.series.buckets[0].counts.attempts = u64::MAX;
        assert_eq!(a.merge(bucket), Err(Overflow("attempts")));
        assert_eq!((a.counts, a.series.clone(), a.history.clone()), before);
    }

    #[test]
    fn an_open_record_keeps_the_actual_send_and_both_latencies() {
        let ms = Duration::from_millis;
        let mut a = Stats::with_bucket_ms(1000);
        // Due at 1.0 s, sent at 1.2 s (the driver lagged), answered at 1.5 s.
        a.record_open(ms(1500), k(1), 1, purchased("o1"), (ms(300), ms(500)));
        let attempt = a.history.attempts[0];
        assert_eq!(
            (attempt.sent_us, attempt.replied_us),
            (1_200_000, 1_500_000)
        );
        assert!((a.latency.max() as i64 - 500_000).abs() < 1000);
        let service = a.service.as_ref().map(|h| h.max()).unwrap_or(0);
        assert!((service as i64 - 300_000).abs() < 1000);
        a.dropped = 3;
        let mut b = Stats::with_bucket_ms(1000);
        b.record_open(ms(100), k(2), 1, purchased("o2"), (ms(10), ms(10)));
        b.dropped = 4;
        a.merge(b).unwrap();
        assert_eq!(a.dropped, 7);
        assert_eq!(a.service.as_ref().map(|h| h.len()), Some(2));
        // A burst's stats have no service histogram, and merging one in keeps the other's.
        let mut burst = Stats::default();
        burst.merge(a).unwrap();
        assert_eq!(burst.service.as_ref().map(|h| h.len()), Some(2));
    }
}
