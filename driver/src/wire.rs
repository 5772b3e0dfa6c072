//! Conversions between the driver's own types and the `flashsale.v1` coordinator messages.

use std::time::Duration;

use flashsale::pb;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use crate::bins::LatencyBins;
use crate::error::DriverError;
use crate::series::{Bucket, Series};
use crate::spec::{LoadSpec, Mode};
use crate::stats::Stats;

impl From<Mode> for pb::Mode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Buggy => pb::Mode::Buggy,
            Mode::Unstable => pb::Mode::Unstable,
            Mode::Safe => pb::Mode::Safe,
        }
    }
}

fn mode_from_wire(raw: i32) -> Result<Mode, DriverError> {
    match pb::Mode::try_from(raw) {
        Ok(pb::Mode::Buggy) => Ok(Mode::Buggy),
        Ok(pb::Mode::Unstable) => Ok(Mode::Unstable),
        Ok(pb::Mode::Safe) => Ok(Mode::Safe),
        _ => Err(DriverError::Invalid(format!("unknown mode {raw}"))),
    }
}

/// A load spec as sent to a worker.
pub fn plan_to_wire(spec: &LoadSpec) -> pb::LoadPlan {
    pb::LoadPlan {
        mode: pb::Mode::from(spec.mode).into(),
        users: spec.users,
        first_user: spec.first_user,
        connections: spec.connections,
        threads: spec.threads,
        duration_ms: spec.duration.map_or(0, millis),
        quantity: spec.quantity,
        timeout_ms: millis(spec.timeout),
        user_prefix: spec.user_prefix.clone(),
    }
}

/// A load spec as a worker runs it; zero connections or threads mean "choose".
pub fn plan_from_wire(plan: &pb::LoadPlan) -> Result<LoadSpec, DriverError> {
    if plan.users == 0 || plan.quantity == 0 || plan.timeout_ms == 0 {
        return Err(DriverError::Invalid(
            "a plan needs users, quantity and timeout above zero".into(),
        ));
    }
    Ok(LoadSpec {
        mode: mode_from_wire(plan.mode)?,
        users: plan.users,
        connections: match plan.connections {
            0 => LoadSpec::auto_connections(plan.users),
            n => n,
        },
        threads: match plan.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        },
        duration: (plan.duration_ms > 0).then(|| Duration::from_millis(plan.duration_ms)),
        quantity: plan.quantity,
        timeout: Duration::from_millis(plan.timeout_ms),
        user_prefix: plan.user_prefix.clone(),
        first_user: plan.first_user,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Stats as sent by a worker.
pub fn stats_to_wire(stats: &Stats) -> pb::LoadStats {
    let mut latency_hdr = Vec::new();
    V2Serializer::new()
        .serialize(&stats.latency, &mut latency_hdr)
        .expect("serializing a histogram into memory cannot fail");
    pb::LoadStats {
        attempts: stats.attempts,
        purchased: stats.purchased,
        units_purchased: stats.units_purchased,
        sold_out: stats.sold_out,
        bad_replies: stats.bad_replies,
        timeouts: stats.timeouts,
        statuses: stats.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        indeterminate: stats.indeterminate,
        indeterminate_units: stats.indeterminate_units,
        missing_order_ids: stats.missing_order_ids,
        order_hashes: stats.order_hashes.clone(),
        min_stock_seen: stats.min_stock_seen,
        latency_hdr,
        series_bucket_ms: stats.series.bucket_ms,
        series: stats.series.buckets.iter().map(bucket_to_wire).collect(),
    }
}

fn bucket_to_wire(bucket: &Bucket) -> pb::SeriesBucket {
    pb::SeriesBucket {
        attempts: bucket.attempts,
        purchased: bucket.purchased,
        sold_out: bucket.sold_out,
        bad_replies: bucket.bad_replies,
        timeouts: bucket.timeouts,
        statuses: bucket.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        latency_bins: bucket
            .latency
            .bins
            .iter()
            .map(|(i, _)| u32::from(*i))
            .collect(),
        latency_counts: bucket.latency.bins.iter().map(|(_, n)| *n).collect(),
    }
}

fn bucket_from_wire(wire: &pb::SeriesBucket) -> Result<Bucket, DriverError> {
    if wire.latency_bins.len() != wire.latency_counts.len() {
        return Err(DriverError::Invalid(
            "a series bucket's latency bins and counts differ in length".into(),
        ));
    }
    let bins = wire
        .latency_bins
        .iter()
        .zip(&wire.latency_counts)
        .map(|(i, n)| {
            u16::try_from(*i)
                .map(|i| (i, *n))
                .map_err(|_| DriverError::Invalid(format!("latency bin {i} out of range")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Bucket {
        attempts: wire.attempts,
        purchased: wire.purchased,
        sold_out: wire.sold_out,
        bad_replies: wire.bad_replies,
        timeouts: wire.timeouts,
        statuses: wire.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        latency: LatencyBins { bins },
    })
}

/// Stats as received from a worker.
pub fn stats_from_wire(wire: &pb::LoadStats) -> Result<Stats, DriverError> {
    let mut stats = Stats {
        attempts: wire.attempts,
        purchased: wire.purchased,
        units_purchased: wire.units_purchased,
        sold_out: wire.sold_out,
        bad_replies: wire.bad_replies,
        timeouts: wire.timeouts,
        statuses: wire.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        indeterminate: wire.indeterminate,
        indeterminate_units: wire.indeterminate_units,
        missing_order_ids: wire.missing_order_ids,
        order_hashes: wire.order_hashes.clone(),
        min_stock_seen: wire.min_stock_seen,
        series: Series {
            bucket_ms: wire.series_bucket_ms.max(1),
            buckets: wire
                .series
                .iter()
                .map(bucket_from_wire)
                .collect::<Result<_, _>>()?,
        },
        ..Stats::default()
    };
    if !wire.latency_hdr.is_empty() {
        let histogram: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut wire.latency_hdr.as_slice())
            .map_err(|e| {
                DriverError::Invalid(format!("bad latency histogram from a worker: {e:?}"))
            })?;
        stats
            .latency
            .add(&histogram)
            .map_err(|e| DriverError::Invalid(format!("latency histogram out of range: {e:?}")))?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome;

    #[test]
    fn stats_round_trip() {
        let mut stats = Stats::default();
        let purchased = Outcome::Purchased {
            order_id: "r1-1".into(),
            quantity: 1,
            stock_after: -2,
        };
        stats.record(purchased, 1, Duration::from_millis(12));
        stats.record(
            Outcome::Status(tonic::Code::Unavailable),
            1,
            Duration::from_micros(300),
        );
        stats.record(Outcome::Timeout, 1, Duration::from_secs(10));
        stats.record_at(
            Duration::from_millis(1500),
            Outcome::SoldOut { stock_after: 0 },
            1,
            Duration::from_millis(3),
        );
        let back = stats_from_wire(&stats_to_wire(&stats)).unwrap();
        assert_eq!(back.attempts, 4);
        assert_eq!(back.statuses, stats.statuses);
        assert_eq!(back.order_hashes, stats.order_hashes);
        assert_eq!(back.min_stock_seen, Some(-2));
        assert_eq!(back.latency, stats.latency);
        assert!(!stats.series.buckets.is_empty());
        assert_eq!(back.series, stats.series);
    }

    #[test]
    fn plan_round_trip_and_validation() {
        let spec = LoadSpec {
            mode: Mode::Unstable,
            users: 333,
            connections: 4,
            threads: 2,
            duration: Some(Duration::from_secs(3)),
            quantity: 2,
            timeout: Duration::from_secs(5),
            user_prefix: "p-".into(),
            first_user: 334,
        };
        let back = plan_from_wire(&plan_to_wire(&spec)).unwrap();
        assert_eq!(format!("{back:?}"), format!("{spec:?}"));
        let mut bad = plan_to_wire(&spec);
        bad.mode = 0;
        assert!(plan_from_wire(&bad).is_err());
        bad.mode = 1;
        bad.users = 0;
        assert!(plan_from_wire(&bad).is_err());
    }
}
