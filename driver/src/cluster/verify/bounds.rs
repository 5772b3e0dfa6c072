//! How much a share of a run can produce: attempts, and bytes on the wire and in memory.

use std::time::Duration;

use flashsale::pb;

use crate::engine::bins::LatencyBins;
use crate::engine::series::MAX_BUCKETS;
use crate::engine::stats::new_histogram;
use crate::spec::LoadSpec;

/// Shortest time one attempt can take (a gRPC round trip, even on loopback, takes longer).
pub const MIN_ATTEMPT: Duration = Duration::from_micros(20);
/// Most attempts one worker's report may hold, whatever the plan (1.2 GB of history).
pub const MAX_SHARE_ATTEMPTS: u64 = 50_000_000;
/// Bytes one attempt of the history costs at most, on the wire (5 + 5 + 5 + 1 + 5 + 5 varint
/// bytes and an 8-byte hash) and decoded (six `u32` and a `u64`).
pub const ATTEMPT_WIRE_BYTES: u64 = 34;
/// Bytes of a report besides its history, its series and its histogram.
const FIXED_REPORT_BYTES: u64 = 4096;
/// Bytes one series bucket costs decoded besides its statuses and latency bins.
const BUCKET_BYTES: u64 = std::mem::size_of::<pb::SeriesBucket>() as u64;
/// Bytes one status entry of a series bucket costs decoded (generously: a hash map entry).
const STATUS_BYTES: u64 = 32;
/// Bytes one latency bin of a series bucket costs decoded (index and count).
const BIN_BYTES: u64 = 12;

/// What one series bucket costs the coordinator once decoded.
pub fn bucket_bytes(bucket: &pb::SeriesBucket) -> u64 {
    BUCKET_BYTES
        .saturating_add((bucket.statuses.len() as u64).saturating_mul(STATUS_BYTES))
        .saturating_add(
            (bucket.latency_bins.len().max(bucket.latency_counts.len()) as u64)
                .saturating_mul(BIN_BYTES),
        )
}
/// Slack on the coordinator's measured window for clocks and scheduling.
pub(super) const WINDOW_SLACK: Duration = Duration::from_secs(2);

/// What a share may produce.
#[derive(Debug, Clone)]
pub struct ShareBounds {
    plan: LoadSpec,
}

impl ShareBounds {
    /// The bounds of `plan`, a worker's share (its `users` and `first_user`).
    pub fn new(plan: &LoadSpec) -> Self {
        Self { plan: plan.clone() }
    }

    fn buyers(&self) -> u64 {
        u64::from(self.plan.users) * u64::from(self.plan.clicks.max(1))
    }

    /// Most attempts one buyer can make within `window`.
    pub(super) fn per_buyer(&self, window: Duration) -> u64 {
        match self.plan.duration {
            None => 1,
            Some(d) => {
                let busy = d.min(window).as_nanos() / MIN_ATTEMPT.as_nanos().max(1);
                u64::try_from(busy)
                    .unwrap_or(u64::MAX)
                    .saturating_add(1)
                    .min(MAX_SHARE_ATTEMPTS)
            }
        }
    }

    /// Most attempts the share can report if its result arrived `window` after its assignment.
    pub fn max_attempts(&self, window: Duration) -> u64 {
        self.buyers()
            .saturating_mul(self.per_buyer(window))
            .min(MAX_SHARE_ATTEMPTS)
    }

    /// Most attempts the share can report at all: its run's length plus one timeout.
    pub fn max_attempts_ever(&self) -> u64 {
        self.max_attempts(self.longest())
    }

    /// The longest the share's load can last.
    pub fn longest(&self) -> Duration {
        self.plan
            .duration
            .unwrap_or_default()
            .saturating_add(self.plan.timeout)
            .saturating_add(WINDOW_SLACK)
    }

    /// The largest report (result and history chunks together, in bytes on the wire and
    /// decoded) the share can produce: its history, a full series and a histogram.
    pub fn max_report_bytes(&self) -> u64 {
        let attempts = self.max_attempts_ever();
        let buckets = MAX_BUCKETS as u64;
        let bins = attempts.min(buckets * u64::from(max_bin() + 1));
        attempts
            .saturating_mul(ATTEMPT_WIRE_BYTES)
            .saturating_add(buckets * (BUCKET_BYTES + 16 * STATUS_BYTES))
            .saturating_add(bins.saturating_mul(BIN_BYTES))
            .saturating_add(max_histogram_bytes())
            .saturating_add(FIXED_REPORT_BYTES)
    }
}

/// Largest V2 serialization of the driver's latency histogram: its header and at most 9 bytes
/// per count.
pub fn max_histogram_bytes() -> u64 {
    40 + 9 * new_histogram().distinct_values() as u64
}

/// The highest latency bin a series can hold (that of the histogram's highest value).
pub(super) fn max_bin() -> u16 {
    let mut bins = LatencyBins::default();
    bins.record(new_histogram().high());
    bins.bins[0].0
}
