//! Time series of a run: outcomes and latency per time bucket relative to the users' start.
//! Plain data kept per load thread next to its [`Stats`](crate::engine::stats::Stats) and merged with
//! it; memory is bounded because past [`MAX_BUCKETS`] buckets the series coarsens (adjacent
//! buckets merge, the width doubles).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::bins::LatencyBins;
use crate::engine::outcome::Outcome;

/// Most buckets a series keeps; one more doubles the bucket width.
pub const MAX_BUCKETS: usize = 600;
/// Bucket width of a sustained run.
pub const SUSTAINED_BUCKET_MS: u64 = 1000;
/// Bucket width of a burst, which lasts milliseconds to seconds.
pub const BURST_BUCKET_MS: u64 = 10;

/// The bucket width for a run of `duration` (`None`: a burst).
pub fn bucket_ms_for(duration: Option<Duration>) -> u64 {
    match duration {
        None => BURST_BUCKET_MS,
        Some(_) => SUSTAINED_BUCKET_MS,
    }
}

/// What happened in one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub attempts: u64,
    pub purchased: u64,
    pub sold_out: u64,
    pub bad_replies: u64,
    pub timeouts: u64,
    /// Requests per non-OK status code (its number).
    pub statuses: BTreeMap<i32, u64>,
    /// Latency of the requests that ended in this bucket.
    pub latency: LatencyBins,
}

impl Bucket {
    fn merge(&mut self, other: &Bucket) {
        self.attempts += other.attempts;
        self.purchased += other.purchased;
        self.sold_out += other.sold_out;
        self.bad_replies += other.bad_replies;
        self.timeouts += other.timeouts;
        for (code, n) in &other.statuses {
            *self.statuses.entry(*code).or_default() += n;
        }
        self.latency.merge(&other.latency);
    }

    /// Non-OK statuses plus timeouts.
    pub fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.timeouts
    }
}

/// Buckets of `bucket_ms` each; bucket `i` holds requests that ended in
/// `[i * bucket_ms, (i + 1) * bucket_ms)` after the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub bucket_ms: u64,
    pub buckets: Vec<Bucket>,
}

impl Default for Series {
    fn default() -> Self {
        Self::new(SUSTAINED_BUCKET_MS)
    }
}

impl Series {
    pub fn new(bucket_ms: u64) -> Self {
        Self {
            bucket_ms: bucket_ms.max(1),
            buckets: Vec::new(),
        }
    }

    /// Records a request that ended `at` after the start with `outcome`, taking `latency_us`.
    pub fn record(&mut self, at: Duration, outcome: &Outcome, latency_us: u64) {
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        while ms / self.bucket_ms >= MAX_BUCKETS as u64 {
            self.rebucket(self.bucket_ms.saturating_mul(2));
        }
        let idx = (ms / self.bucket_ms) as usize;
        if self.buckets.len() <= idx {
            self.buckets.resize_with(idx + 1, Bucket::default);
        }
        let bucket = &mut self.buckets[idx];
        bucket.attempts += 1;
        bucket.latency.record(latency_us);
        match outcome {
            Outcome::Purchased { .. } => bucket.purchased += 1,
            Outcome::SoldOut { .. } | Outcome::LimitReached { .. } => bucket.sold_out += 1,
            Outcome::BadReply => bucket.bad_replies += 1,
            Outcome::Status(code) => *bucket.statuses.entry(*code as i32).or_default() += 1,
            Outcome::Timeout => bucket.timeouts += 1,
        }
    }

    /// Adds `other` into `self`, first bringing both to the wider bucket width.
    pub fn merge(&mut self, mut other: Series) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            *self = other;
            return;
        }
        let width = self.bucket_ms.max(other.bucket_ms);
        self.rebucket(width);
        other.rebucket(width);
        if self.buckets.len() < other.buckets.len() {
            self.buckets
                .resize_with(other.buckets.len(), Bucket::default);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.merge(theirs);
        }
        while self.buckets.len() > MAX_BUCKETS {
            self.rebucket(self.bucket_ms.saturating_mul(2));
        }
    }

    /// Re-buckets into buckets of `width` ms, each old bucket going where its start falls
    /// (exact when `width` is a multiple of the current width, as doubling always is).
    fn rebucket(&mut self, width: u64) {
        if width == self.bucket_ms {
            return;
        }
        let old = std::mem::take(&mut self.buckets);
        for (i, bucket) in old.iter().enumerate() {
            let idx = (i as u64 * self.bucket_ms / width) as usize;
            if self.buckets.len() <= idx {
                self.buckets.resize_with(idx + 1, Bucket::default);
            }
            self.buckets[idx].merge(bucket);
        }
        self.bucket_ms = width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn records_into_buckets_and_merges() {
        let mut a = Series::new(1000);
        a.record(at(10), &Outcome::SoldOut { stock_after: 0 }, 900);
        a.record(at(2500), &Outcome::Status(Code::Unavailable), 100);
        let mut b = Series::new(1000);
        b.record(at(999), &Outcome::Timeout, 5_000);
        b.record(at(3000), &Outcome::BadReply, 5);
        a.merge(b);
        assert_eq!(a.buckets.len(), 4);
        assert_eq!(a.buckets[0].attempts, 2);
        assert_eq!((a.buckets[0].sold_out, a.buckets[0].timeouts), (1, 1));
        assert_eq!(a.buckets[0].latency.quantile(1.0), Some(5_050));
        assert_eq!(a.buckets[1], Bucket::default());
        assert_eq!(a.buckets[2].errors(), 1);
        assert_eq!(a.buckets[3].bad_replies, 1);
    }

    #[test]
    fn long_runs_coarsen_instead_of_growing() {
        let mut s = Series::new(1000);
        for second in 0..2000u64 {
            s.record(at(second * 1000), &Outcome::SoldOut { stock_after: 0 }, 10);
        }
        assert!(s.buckets.len() <= MAX_BUCKETS, "{}", s.buckets.len());
        assert_eq!(s.bucket_ms, 4000);
        assert_eq!(s.buckets.iter().map(|b| b.attempts).sum::<u64>(), 2000);
        assert_eq!(s.buckets[0].attempts, 4);

        // Merging a finer series brings it to the coarser width.
        let mut fine = Series::new(1000);
        fine.record(at(5_500), &Outcome::Timeout, 10);
        s.merge(fine);
        assert_eq!(s.bucket_ms, 4000);
        assert_eq!((s.buckets[1].attempts, s.buckets[1].timeouts), (5, 1));
    }
}
