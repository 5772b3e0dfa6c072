//! Conversions between the driver's own types and the `flashsale.v1` coordinator messages.

use std::time::Duration;

use flashsale::pb;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

use crate::checkout::book::{Book, BookEntry};
use crate::engine::bins::LatencyBins;
use crate::engine::counts::{Counts, Statuses};
use crate::engine::history::{Answer, Attempt, AttemptKey, History};
use crate::engine::series::{Bucket, MAX_BUCKETS, Series};
use crate::engine::stats::Stats;
use crate::error::DriverError;
use crate::spec::{
    LoadSpec, MAX_QUANTITY, MAX_QUANTITY_MIX, MAX_THREADS, Mode, Quantities, SpecError,
    validate_prefix,
};

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
        _ => Err(SpecError::UnknownMode(raw).into()),
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
        // Set by the client from the run's connection (a checkout of the team's own).
        checkout: String::new(),
    }
}

/// A load spec as a worker runs it; zero connections or threads mean "choose", zero clicks
/// means 1, no quantities means `quantity`. Checked with [`LoadSpec::validate`], the same
/// limits as the command line's, so a plan the CLI would refuse never reaches load threads.
pub fn plan_from_wire(plan: &pb::LoadPlan) -> Result<LoadSpec, DriverError> {
    let mode = mode_from_wire(plan.mode)?;
    // Refuse a huge prefix or quantity mix before copying it.
    validate_prefix(&plan.user_prefix)?;
    if plan.quantities.len() > MAX_QUANTITY_MIX {
        return Err(SpecError::Quantity(format!(
            "give 1 to {MAX_QUANTITY_MIX} quantities, got {}",
            plan.quantities.len()
        ))
        .into());
    }
    let spec = LoadSpec {
        mode,
        users: plan.users,
        connections: match plan.connections {
            0 => LoadSpec::auto_connections(plan.users),
            n => n,
        },
        threads: match plan.threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get() as u32)
                .min(MAX_THREADS),
            n => n,
        },
        duration: (plan.duration_ms > 0).then(|| Duration::from_millis(plan.duration_ms)),
        quantity: if plan.quantities.is_empty() {
            Quantities::new(vec![plan.quantity], MAX_QUANTITY)
        } else {
            Quantities::new(plan.quantities.clone(), MAX_QUANTITY)
        }
        .map_err(SpecError::Quantity)?,
        clicks: plan.clicks.max(1),
        round: plan.round,
        timeout: Duration::from_millis(plan.timeout_ms),
        user_prefix: plan.user_prefix.clone(),
        first_user: plan.first_user,
        retry: Default::default(),
        shape: crate::spec::Shape::default(),
    };
    spec.validate()?;
    Ok(spec)
}

/// The checkout of the team's own a plan carries, if any (see [`CustomApi::from_source`]).
pub fn checkout_from_wire(
    plan: &pb::LoadPlan,
) -> Result<Option<std::sync::Arc<crate::spec::custom::CustomApi>>, DriverError> {
    if plan.checkout.is_empty() {
        return Ok(None);
    }
    let api = crate::spec::custom::CustomApi::from_source(&plan.checkout)?;
    Ok(Some(std::sync::Arc::new(api)))
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

/// A `pb::LoadStats` or `pb::SeriesBucket` (`$ty`) holding `counts` (both messages name the
/// counters as [`Counts`] does) and the message's own `{ other fields }`.
macro_rules! wire_counts {
    ($ty:path, $counts:expr, { $($rest:tt)* }) => {{
        let c: &Counts = $counts;
        $ty {
            attempts: c.attempts,
            purchased: c.purchased,
            units_purchased: c.units_purchased,
            sold_out: c.sold_out,
            limit_reached: c.limit_reached,
            units_requested: c.units_requested,
            bad_replies: c.bad_replies,
            timeouts: c.timeouts,
            indeterminate: c.indeterminate,
            indeterminate_units: c.indeterminate_units,
            missing_order_ids: c.missing_order_ids,
            statuses: c.statuses.iter().collect(),
            $($rest)*
        }
    }};
}

/// The counters of a `pb::LoadStats` or `pb::SeriesBucket` as a peer sent them (returns early
/// with the error when its status codes are not valid).
macro_rules! counts_from_wire {
    ($wire:expr) => {{
        let wire = $wire;
        Counts {
            attempts: wire.attempts,
            purchased: wire.purchased,
            units_purchased: wire.units_purchased,
            sold_out: wire.sold_out,
            limit_reached: wire.limit_reached,
            units_requested: wire.units_requested,
            bad_replies: wire.bad_replies,
            timeouts: wire.timeouts,
            indeterminate: wire.indeterminate,
            indeterminate_units: wire.indeterminate_units,
            missing_order_ids: wire.missing_order_ids,
            statuses: statuses_from_wire(&wire.statuses)?,
        }
    }};
}

/// Stats as sent by a worker.
pub fn stats_to_wire(stats: &Stats) -> pb::LoadStats {
    let attempts = &stats.history.attempts;
    let mut latency_hdr = Vec::new();
    V2Serializer::new()
        .serialize(&stats.latency, &mut latency_hdr)
        .expect("serializing a histogram into memory cannot fail");
    wire_counts!(pb::LoadStats, &stats.counts, {
        min_stock_seen: stats.min_stock_seen,
        latency_hdr,
        series_bucket_ms: stats.series.bucket_ms,
        series: stats.series.buckets.iter().map(bucket_to_wire).collect(),
        history_user: attempts.iter().map(|a| a.key.user).collect(),
        history_seq: attempts.iter().map(|a| a.key.seq).collect(),
        history_quantity: attempts.iter().map(|a| a.quantity).collect(),
        history_answer: attempts.iter().map(|a| a.answer.code()).collect(),
        history_order: attempts.iter().map(|a| a.order).collect(),
        history_sent_us: attempts.iter().map(|a| a.sent_us).collect(),
        history_replied_us: attempts.iter().map(|a| a.replied_us).collect(),
    })
}

/// Status counts as a peer sent them: non-OK gRPC codes only, no wrapping.
fn statuses_from_wire(wire: &std::collections::HashMap<i32, u64>) -> Result<Statuses, DriverError> {
    Statuses::from_pairs(wire.iter().map(|(k, v)| (*k, *v)))
        .map_err(|e| DriverError::MalformedStats(e.to_string()))
}

fn history_from_wire(wire: &pb::LoadStats) -> Result<History, DriverError> {
    let n = wire.history_user.len();
    let columns = [
        wire.history_seq.len(),
        wire.history_quantity.len(),
        wire.history_answer.len(),
        wire.history_order.len(),
        wire.history_sent_us.len(),
        wire.history_replied_us.len(),
    ];
    if columns.iter().any(|&len| len != n) || n as u64 != wire.attempts {
        return Err(DriverError::MalformedStats(format!(
            "a history of {n} attempts ({columns:?} in the other columns) for {} attempts",
            wire.attempts
        )));
    }
    let attempts = (0..n)
        .map(|i| {
            let answer = Answer::from_code(wire.history_answer[i]).ok_or_else(|| {
                DriverError::MalformedStats(format!("unknown answer {}", wire.history_answer[i]))
            })?;
            Ok(Attempt {
                key: AttemptKey {
                    user: wire.history_user[i],
                    seq: wire.history_seq[i],
                },
                quantity: wire.history_quantity[i],
                answer,
                order: wire.history_order[i],
                sent_us: wire.history_sent_us[i],
                replied_us: wire.history_replied_us[i],
                // Workers do not retry (a distributed run with --retries is refused).
                tries: 1,
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
        without_request_id: book.without_request_id,
    }
}

/// A book as the client receives it.
pub fn book_from_wire(round: u64, wire: &pb::BookColumns) -> Result<Book, DriverError> {
    let n = wire.request.len();
    if wire.user.len() != n || wire.quantity.len() != n || wire.order.len() != n {
        return Err(DriverError::MalformedBook(
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
                    DriverError::MalformedBook(format!("user number {u} out of range"))
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
    Ok(Book {
        round,
        entries,
        without_request_id: wire.without_request_id,
    })
}

fn bucket_to_wire(bucket: &Bucket) -> pb::SeriesBucket {
    wire_counts!(pb::SeriesBucket, &bucket.counts, {
        latency_bins: bucket
            .latency
            .bins
            .iter()
            .map(|(i, _)| u32::from(*i))
            .collect(),
        latency_counts: bucket.latency.bins.iter().map(|(_, n)| *n).collect(),
    })
}

fn bucket_from_wire(wire: &pb::SeriesBucket) -> Result<Bucket, DriverError> {
    if wire.latency_bins.len() != wire.latency_counts.len() {
        return Err(DriverError::MalformedStats(
            "a series bucket's latency bins and counts differ in length".into(),
        ));
    }
    let pairs = wire
        .latency_bins
        .iter()
        .zip(&wire.latency_counts)
        .map(|(i, n)| {
            u16::try_from(*i)
                .map(|i| (i, *n))
                .map_err(|_| DriverError::MalformedStats(format!("latency bin {i} out of range")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let latency = LatencyBins::from_pairs(pairs).ok_or_else(|| {
        DriverError::MalformedStats("a bucket's latency bins are out of range or overflow".into())
    })?;
    Ok(Bucket {
        counts: counts_from_wire!(wire),
        latency,
    })
}

/// Stats as received from a worker (or, merged, from the coordinator). Decoding checks that
/// the message is well-formed (columns of equal length, known codes, at most [`MAX_BUCKETS`]
/// time buckets, sums that fit); whether its numbers are plausible for the plan is the
/// coordinator's verification.
pub fn stats_from_wire(wire: &pb::LoadStats) -> Result<Stats, DriverError> {
    if wire.series.len() > MAX_BUCKETS {
        return Err(DriverError::MalformedStats(format!(
            "{} time buckets; a series has at most {MAX_BUCKETS}",
            wire.series.len()
        )));
    }
    let series = Series {
        bucket_ms: wire.series_bucket_ms.max(1),
        buckets: wire
            .series
            .iter()
            .map(bucket_from_wire)
            .collect::<Result<_, _>>()?,
    };
    series
        .totals()
        .map_err(|e| DriverError::MalformedStats(format!("the time series: {e}")))?;
    let mut stats = Stats {
        counts: counts_from_wire!(wire),
        history: history_from_wire(wire)?,
        min_stock_seen: wire.min_stock_seen,
        series,
        ..Stats::default()
    };
    if !wire.latency_hdr.is_empty() {
        let histogram: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut wire.latency_hdr.as_slice())
            .map_err(|e| DriverError::MalformedStats(format!("latency histogram: {e:?}")))?;
        stats.latency.add(&histogram).map_err(|e| {
            DriverError::MalformedStats(format!("latency histogram out of range: {e:?}"))
        })?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    #[test]
    fn stats_round_trip() {
        let mut stats = Stats::default();
        let purchased = Outcome::Purchased {
            order_id: "r1-1".into(),
            quantity: 1,
            stock_after: Some(-2),
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
            Outcome::SoldOut {
                stock_after: Some(0),
            },
            Duration::from_millis(3),
        );
        let wire = stats_to_wire(&stats);
        let back = stats_from_wire(&wire).unwrap();
        assert_eq!(back.counts, stats.counts);
        assert_eq!(back.counts.attempts, 4);
        assert_eq!(back.history, stats.history);
        assert_eq!(back.counts.units_requested, 5);
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
    fn counts_from_a_peer_are_checked_not_trusted() {
        let mut stats = Stats::with_bucket_ms(10);
        let ms = Duration::from_millis(1);
        for (i, outcome) in [
            Outcome::LimitReached {
                stock_after: Some(3),
            },
            Outcome::Status(tonic::Code::Internal),
            Outcome::Purchased {
                order_id: String::new(),
                quantity: 2,
                stock_after: Some(1),
            },
        ]
        .into_iter()
        .enumerate()
        {
            let k = AttemptKey {
                user: i as u32,
                seq: 0,
            };
            stats.record_at(ms, k, 2, outcome, ms);
        }
        let wire = stats_to_wire(&stats);
        // Every counter of every time bucket survives the trip.
        let back = stats_from_wire(&wire).unwrap();
        assert_eq!(back.series, stats.series);
        let bucket = &back.series.buckets[0].counts;
        assert_eq!(
            (
                bucket.limit_reached,
                bucket.missing_order_ids,
                bucket.indeterminate_units
            ),
            (1, 1, 2)
        );

        let refused = |wire: &pb::LoadStats| match stats_from_wire(wire) {
            Err(DriverError::MalformedStats(why)) => why,
            other => panic!("accepted or wrong error: {other:?}"),
        };
        let mut bad = wire.clone();
        bad.statuses.insert(0, 5);
        assert!(refused(&bad).contains("status code 0"));
        let mut bad = wire.clone();
        bad.series[0].statuses.insert(99, 1);
        assert!(refused(&bad).contains("status code 99"));
        let mut bad = wire.clone();
        bad.series = vec![pb::SeriesBucket::default(); MAX_BUCKETS + 1];
        assert!(refused(&bad).contains("time buckets"));
        let mut bad = wire.clone();
        bad.series.push(pb::SeriesBucket {
            attempts: u64::MAX,
            ..pb::SeriesBucket::default()
        });
        assert!(refused(&bad).contains("overflow"), "{}", refused(&bad));
        let mut bad = wire;
        bad.series[0].latency_bins = vec![5, 5];
        bad.series[0].latency_counts = vec![u64::MAX, 1];
        assert!(refused(&bad).contains("latency bins"));
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
            without_request_id: 1,
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
            retry: Default::default(),
            shape: crate::spec::Shape::default(),
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
        bad.clicks = crate::spec::MAX_CLICKS + 1;
        assert!(plan_from_wire(&bad).is_err());
        let mut bad = plan_to_wire(&spec);
        bad.timeout_ms = u64::MAX;
        assert!(matches!(
            plan_from_wire(&bad),
            Err(DriverError::Spec(SpecError::Timeout(_)))
        ));
        let mut bad = plan_to_wire(&spec);
        bad.user_prefix = "x".repeat(1 << 20);
        assert!(matches!(
            plan_from_wire(&bad),
            Err(DriverError::Spec(SpecError::PrefixTooLong(_)))
        ));
        let mut bad = plan_to_wire(&spec);
        bad.duration_ms = u64::MAX;
        assert!(plan_from_wire(&bad).is_err());
        bad.duration_ms = 0;
        bad.quantities = vec![1; 1 << 20];
        assert!(plan_from_wire(&bad).is_err());
    }
}
