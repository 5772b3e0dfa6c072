//! A latency histogram whose `observe` takes no lock: one atomic counter per bucket plus an
//! atomic sum in microseconds. prometheus-client's own `Histogram` takes a write lock on every
//! observation; this one encodes through the same encoder, as a histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of the buckets in seconds: 100 µs to ~6.5 s, doubling (plus +Inf).
pub const BUCKETS_S: [f64; 17] = [
    0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512, 0.1024, 0.2048,
    0.4096, 0.8192, 1.6384, 3.2768, 6.5536,
];

/// Bucket bounds in whole microseconds, for comparing without floating point.
const BOUNDS_US: [u64; 17] = [
    100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 51_200, 102_400, 204_800, 409_600,
    819_200, 1_638_400, 3_276_800, 6_553_600,
];

#[derive(Debug, Default)]
struct Inner {
    /// Per-bucket (not cumulative) counts; the last is the +Inf bucket.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

/// A lock-free histogram of durations (cheap to clone: clones share their counts).
#[derive(Debug, Clone, Default)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

impl AtomicHistogram {
    /// Counts one observation of `d`.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_US.partition_point(|&bound| bound < us);
        self.inner.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let bounds = BUCKETS_S.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        let sum = self.inner.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound() {
        let h = AtomicHistogram::default();
        for us in [0, 100, 101, 6_553_600, 7_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let counts: Vec<u64> = h
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(
            counts[0], 2,
            "0 and 100 µs are in the first bucket (le=0.0001)"
        );
        assert_eq!(counts[1], 1);
        assert_eq!(counts[16], 1);
        assert_eq!(counts[17], 1, "beyond the last bound: +Inf");
        assert_eq!(h.count(), 5);
        let bounds: Vec<u64> = BUCKETS_S.iter().map(|s| (s * 1e6).round() as u64).collect();
        assert_eq!(bounds, BOUNDS_US);
    }
}
