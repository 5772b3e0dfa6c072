//! Time series of a run: outcome [`Counts`] and latency per time bucket relative to the users'
//! start. Plain data kept per load thread next to its [`Stats`](crate::engine::stats::Stats)
//! and merged with it; memory is bounded because past [`MAX_BUCKETS`] buckets the series
//! coarsens (adjacent buckets merge, the width doubles).

use std::time::Duration;

use crate::engine::bins::LatencyBins;
use crate::engine::counts::{Counts, Overflow};
use crate::outcome::Outcome;

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
    /// What the requests that ended in this bucket came to.
    pub counts: Counts,
    /// Their latency.
    pub latency: LatencyBins,
}

impl Bucket {
    /// Adds `other`; the caller has checked with [`Series::merge`]'s totals that nothing wraps.
    fn merge(&mut self, other: &Bucket) {
        self.counts = self.counts.saturating_sum(&other.counts);
        self.latency.merge(&other.latency);
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

    /// Records a request for `quantity` units that ended `at` after the start with `outcome`,
    /// taking `latency_us`.
    pub fn record(&mut self, at: Duration, outcome: &Outcome, quantity: u32, latency_us: u64) {
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        while ms / self.bucket_ms >= MAX_BUCKETS as u64 {
            self.rebucket(self.bucket_ms.saturating_mul(2));
        }
        let idx = (ms / self.bucket_ms) as usize;
        if self.buckets.len() <= idx {
            self.buckets.resize_with(idx + 1, Bucket::default);
        }
        let bucket = &mut self.buckets[idx];
        bucket.counts.record(outcome, quantity);
        bucket.latency.record(latency_us);
    }

    /// The sum of every bucket's counts and the number of latency samples, or which counter
    /// does not fit.
    pub fn totals(&self) -> Result<(Counts, u64), Overflow> {
        self.buckets
            .iter()
            .try_fold((Counts::default(), 0u64), |(counts, samples), b| {
                let more = b
                    .latency
                    .checked_count()
                    .ok_or(Overflow("latency samples"))?;
                Ok((
                    counts.checked_sum(&b.counts)?,
                    samples
                        .checked_add(more)
                        .ok_or(Overflow("latency samples"))?,
                ))
            })
    }

    /// Adds `other` into `self`, first bringing both to the wider bucket width. When a counter
    /// would overflow, `self` is left as it was: the totals of both series are checked first,
    /// and no bucket can exceed them.
    pub fn merge(&mut self, other: Series) -> Result<(), Overflow> {
        let (mine, my_samples) = self.totals()?;
        let (theirs, their_samples) = other.totals()?;
        mine.checked_sum(&theirs)?;
        my_samples
            .checked_add(their_samples)
            .ok_or(Overflow("latency samples"))?;
        self.merge_unchecked(other);
        Ok(())
    }

    fn merge_unchecked(&mut self, mut other: Series) {
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
            // In u128: a peer's series may have a huge width.
            let idx = (i as u128 * u128::from(self.bucket_ms) / u128::from(width)) as usize;
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
        a.record(
            at(10),
            &Outcome::SoldOut {
                stock_after: Some(0),
            },
            1,
            900,
        );
        a.record(at(2500), &Outcome::Status(Code::Unavailable), 1, 100);
        let mut b = Series::new(1000);
        b.record(at(999), &Outcome::Timeout, 2, 5_000);
        b.record(at(3000), &Outcome::BadReply, 1, 5);
        a.merge(b).unwrap();
        assert_eq!(a.buckets.len(), 4);
        let first = &a.buckets[0].counts;
        assert_eq!(first.attempts, 2);
        assert_eq!((first.sold_out, first.timeouts), (1, 1));
        assert_eq!((first.units_requested, first.indeterminate_units), (3, 2));
        assert_eq!(a.buckets[0].latency.quantile(1.0), Some(5_050));
        assert_eq!(a.buckets[1], Bucket::default());
        assert_eq!(a.buckets[2].counts.errors(), 1);
        assert_eq!(a.buckets[3].counts.bad_replies, 1);
        assert_eq!(a.totals().unwrap().0.attempts, 4);
    }

    #[test]
    fn long_runs_coarsen_instead_of_growing() {
        let mut s = Series::new(1000);
        for second in 0..2000u64 {
            s.record(
                at(second * 1000),
                &Outcome::SoldOut {
                    stock_after: Some(0),
                },
                1,
                10,
            );
        }
        assert!(s.buckets.len() <= MAX_BUCKETS, "{}", s.buckets.len());
        assert_eq!(s.bucket_ms, 4000);
        assert_eq!(
            s.buckets.iter().map(|b| b.counts.attempts).sum::<u64>(),
            2000
        );
        assert_eq!(s.buckets[0].counts.attempts, 4);

        // Merging a finer series brings it to the coarser width.
        let mut fine = Series::new(1000);
        fine.record(at(5_500), &Outcome::Timeout, 1, 10);
        s.merge(fine).unwrap();
        assert_eq!(s.bucket_ms, 4000);
        let second = &s.buckets[1].counts;
        assert_eq!((second.attempts, second.timeouts), (5, 1));
    }

    #[test]
    fn a_peer_series_cannot_wrap_or_overflow_the_rebucketing() {
        let mut mine = Series::new(10);
        mine.record(at(5), &Outcome::Timeout, 1, 10);
        let before = mine.clone();
        // Latency samples that would wrap.
        let mut theirs = Series::new(10);
        theirs.record(at(5), &Outcome::Timeout, 1, 10);
        theirs.buckets[0].latency.bins[0].1 = u64::MAX;
        assert_eq!(mine.merge(theirs).unwrap_err(), Overflow("latency samples"));
        assert_eq!(mine, before);
        // A huge width with many buckets re-buckets without overflowing the index arithmetic.
        let huge = Series {
            bucket_ms: u64::MAX / 2,
            buckets: vec![Bucket::default(); MAX_BUCKETS],
        };
        mine.merge(huge).unwrap();
        assert_eq!(mine.bucket_ms, u64::MAX / 2);
        assert_eq!(mine.totals().unwrap().0.attempts, 1);
    }
}
