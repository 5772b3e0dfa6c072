//! Conversions between the driver's own types and the `flashsale.v1` coordinator messages.

use std::time::Duration;

use flashsale::pb;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use crate::checkout::book::{Book, BookEntry};
use crate::engine::bins::LatencyBins;
use crate::engine::history::{Answer, Attempt, AttemptKey, History};
use crate::engine::series::{Bucket, Series};
use crate::engine::stats::Stats;
use crate::error::DriverError;
use crate::spec::{LoadSpec, MAX_CLICKS, MAX_QUANTITY, Mode, Quantities};

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
        quantity: spec.quantity.values()[0],
        quantities: spec.quantity.values().to_vec(),
        clicks: spec.clicks,
        round: spec.round,
        timeout_ms: millis(spec.timeout),
        user_prefix: spec.user_prefix.clone(),
    }
}

/// A load spec as a worker runs it; zero connections or threads mean "choose".
pub fn plan_from_wire(plan: &pb::LoadPlan) -> Result<LoadSpec, DriverError> {
    if plan.users == 0 || plan.timeout_ms == 0 {
        return Err(DriverError::Invalid(
            "a plan needs users and a timeout above zero".into(),
        ));
    }
    if plan.first_user.saturating_add(u64::from(plan.users)) > u64::from(u32::MAX) {
        return Err(DriverError::Invalid(format!(
            "user numbers {}..{} do not fit in 32 bits",
            plan.first_user,
            plan.first_user.saturating_add(u64::from(plan.users))
        )));
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
        quantity: if plan.quantities.is_empty() {
            Quantities::new(vec![plan.quantity], MAX_QUANTITY)
        } else {
            Quantities::new(plan.quantities.clone(), MAX_QUANTITY)
        }
        .map_err(|e| DriverError::Invalid(format!("bad quantities in a plan: {e}")))?,
        clicks: match plan.clicks {
            0 => 1,
            n if n <= MAX_CLICKS => n,
            n => {
                return Err(DriverError::Invalid(format!(
                    "a plan asks for {n} clicks per user; at most {MAX_CLICKS}"
                )));
            }
        },
        round: plan.round,
        timeout: Duration::from_millis(plan.timeout_ms),
        user_prefix: plan.user_prefix.clone(),
        first_user: plan.first_user,
    })
}

/// Longest worker name kept, in bytes.
pub const MAX_WORKER_NAME: usize = 64;

/// A worker's name as the coordinator keeps and prints it: control characters (terminal
/// escapes among them) replaced by `?`, cut to [`MAX_WORKER_NAME`] bytes on a character
/// boundary.
pub fn worker_name(raw: &str) -> String {
    let mut name = String::with_capacity(raw.len().min(MAX_WORKER_NAME));
    for c in raw.chars() {
        let c = if c.is_control() { '?' } else { c };
        if name.len() + c.len_utf8() > MAX_WORKER_NAME {
            break;
        }
        name.push(c);
    }
    name
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Stats as sent by a worker.
pub fn stats_to_wire(stats: &Stats) -> pb::LoadStats {
    let attempts = &stats.history.attempts;
    let mut latency_hdr = Vec::new();
    V2Serializer::new()
        .serialize(&stats.latency, &mut latency_hdr)
        .expect("serializing a histogram into memory cannot fail");
    pb::LoadStats {
        attempts: stats.attempts,
        purchased: stats.purchased,
        units_purchased: stats.units_purchased,
        sold_out: stats.sold_out,
        limit_reached: stats.limit_reached,
        units_requested: stats.units_requested,
        bad_replies: stats.bad_replies,
        timeouts: stats.timeouts,
        statuses: stats.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        indeterminate: stats.indeterminate,
        indeterminate_units: stats.indeterminate_units,
        missing_order_ids: stats.missing_order_ids,
        min_stock_seen: stats.min_stock_seen,
        latency_hdr,
        series_bucket_ms: stats.series.bucket_ms,
        series: stats.series.buckets.iter().map(bucket_to_wire).collect(),
        history_user: attempts.iter().map(|a| a.key.user).collect(),
        history_seq: attempts.iter().map(|a| a.key.seq).collect(),
        history_quantity: attempts.iter().map(|a| a.quantity).collect(),
        history_answer: attempts.iter().map(|a| a.answer.code()).collect(),
        history_order: attempts.iter().map(|a| a.order).collect(),
    }
}

fn history_from_wire(wire: &pb::LoadStats) -> Result<History, DriverError> {
    let n = wire.history_user.len();
    let columns = [
        wire.history_seq.len(),
        wire.history_quantity.len(),
        wire.history_answer.len(),
        wire.history_order.len(),
    ];
    if columns.iter().any(|&len| len != n) || n as u64 != wire.attempts {
        return Err(DriverError::Invalid(format!(
            "a history of {n} attempts ({columns:?} in the other columns) for {} attempts",
            wire.attempts
        )));
    }
    let attempts = (0..n)
        .map(|i| {
            let answer = Answer::from_code(wire.history_answer[i]).ok_or_else(|| {
                DriverError::Invalid(format!("unknown answer {}", wire.history_answer[i]))
            })?;
            Ok(Attempt {
                key: AttemptKey {
                    user: wire.history_user[i],
                    seq: wire.history_seq[i],
                },
                quantity: wire.history_quantity[i],
                answer,
                order: wire.history_order[i],
            })
        })
        .collect::<Result<_, DriverError>>()?;
    Ok(History {
        attempts,
        ..History::default()
    })
}

/// A book as the coordinator sends it to the client.
pub fn book_to_wire(book: &Book) -> pb::BookColumns {
    let e = &book.entries;
    pb::BookColumns {
        request: e
            .iter()
            .map(|e| {
                e.request
                    .map_or(0, |k| ((u64::from(k.user) << 32) | u64::from(k.seq)) + 1)
            })
            .collect(),
        user: e
            .iter()
            .map(|e| e.user.map_or(0, |u| u64::from(u) + 1))
            .collect(),
        quantity: e.iter().map(|e| e.quantity).collect(),
        order: e.iter().map(|e| e.order).collect(),
    }
}

/// A book as the client receives it.
pub fn book_from_wire(round: u64, wire: &pb::BookColumns) -> Result<Book, DriverError> {
    let n = wire.request.len();
    if wire.user.len() != n || wire.quantity.len() != n || wire.order.len() != n {
        return Err(DriverError::Invalid(
            "the book's columns differ in length".into(),
        ));
    }
    let entries = (0..n)
        .map(|i| {
            let request = wire.request[i].checked_sub(1).map(|r| AttemptKey {
                user: (r >> 32) as u32,
                seq: r as u32,
            });
            let user = match wire.user[i].checked_sub(1) {
                None => None,
                Some(u) => Some(u32::try_from(u).map_err(|_| {
                    DriverError::Invalid(format!("user number {u} out of range in the book"))
                })?),
            };
            Ok(BookEntry {
                request,
                user,
                quantity: wire.quantity[i],
                order: wire.order[i],
            })
        })
        .collect::<Result<_, DriverError>>()?;
    Ok(Book { round, entries })
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
        limit_reached: wire.limit_reached,
        units_requested: wire.units_requested,
        bad_replies: wire.bad_replies,
        timeouts: wire.timeouts,
        statuses: wire.statuses.iter().map(|(k, v)| (*k, *v)).collect(),
        indeterminate: wire.indeterminate,
        indeterminate_units: wire.indeterminate_units,
        missing_order_ids: wire.missing_order_ids,
        history: history_from_wire(wire)?,
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
    use crate::engine::outcome::Outcome;

    #[test]
    fn stats_round_trip() {
        let mut stats = Stats::default();
        let purchased = Outcome::Purchased {
            order_id: "r1-1".into(),
            quantity: 1,
            stock_after: -2,
        };
        let k = |user| AttemptKey { user, seq: 7 };
        stats.record(k(1), 1, purchased, Duration::from_millis(12));
        stats.record(
            k(2),
            1,
            Outcome::Status(tonic::Code::Unavailable),
            Duration::from_micros(300),
        );
        stats.record(k(3), 1, Outcome::Timeout, Duration::from_secs(10));
        stats.record_at(
            Duration::from_millis(1500),
            k(4),
            2,
            Outcome::SoldOut { stock_after: 0 },
            Duration::from_millis(3),
        );
        let wire = stats_to_wire(&stats);
        let back = stats_from_wire(&wire).unwrap();
        assert_eq!(back.attempts, 4);
        assert_eq!(back.statuses, stats.statuses);
        assert_eq!(back.history, stats.history);
        assert_eq!(back.units_requested, 5);
        let mut short = wire.clone();
        short.history_seq.pop();
        assert!(stats_from_wire(&short).is_err());
        let mut inflated = wire;
        inflated.attempts += 1;
        assert!(stats_from_wire(&inflated).is_err());
        assert_eq!(back.min_stock_seen, Some(-2));
        assert_eq!(back.latency, stats.latency);
        assert!(!stats.series.buckets.is_empty());
        assert_eq!(back.series, stats.series);
    }

    #[test]
    fn worker_names_are_bounded_and_printable() {
        assert_eq!(worker_name("w1"), "w1");
        assert_eq!(worker_name("a\u{1b}[2Jb\n\u{7}"), "a?[2Jb??");
        assert_eq!(worker_name(&"x".repeat(100)).len(), MAX_WORKER_NAME);
        // A multi-byte character that would straddle the limit is dropped whole.
        let long = format!("{}é", "y".repeat(63));
        assert_eq!(worker_name(&long), "y".repeat(63));
        assert!(worker_name(&"é".repeat(40)).len() <= MAX_WORKER_NAME);
    }

    #[test]
    fn book_round_trip() {
        let book = Book {
            round: 4,
            entries: vec![
                BookEntry {
                    request: Some(AttemptKey {
                        user: u32::MAX,
                        seq: 0,
                    }),
                    user: Some(0),
                    quantity: 3,
                    order: 77,
                },
                BookEntry {
                    request: None,
                    user: None,
                    quantity: 1,
                    order: 0,
                },
            ],
        };
        assert_eq!(book_from_wire(4, &book_to_wire(&book)).unwrap(), book);
        let mut bad = book_to_wire(&book);
        bad.order.pop();
        assert!(book_from_wire(4, &bad).is_err());
    }

    #[test]
    fn plan_round_trip_and_validation() {
        let spec = LoadSpec {
            mode: Mode::Unstable,
            users: 333,
            connections: 4,
            threads: 2,
            duration: Some(Duration::from_secs(3)),
            quantity: Quantities::parse("1,2").unwrap(),
            clicks: 2,
            round: 9,
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
        let mut bad = plan_to_wire(&spec);
        bad.first_user = u64::from(u32::MAX);
        assert!(plan_from_wire(&bad).is_err());
        let mut bad = plan_to_wire(&spec);
        bad.quantities = vec![0];
        assert!(plan_from_wire(&bad).is_err());
        bad.quantities = vec![];
        bad.quantity = 3;
        assert_eq!(
            plan_from_wire(&bad).unwrap().quantity,
            Quantities::single(3)
        );
        bad.clicks = MAX_CLICKS + 1;
        assert!(plan_from_wire(&bad).is_err());
    }
}
