//! The rules a report must keep, one function per part of it (counters, history, series,
//! histogram); each adds the [`Fault`]s it finds.

use std::collections::HashSet;
use std::time::Duration;

use flashsale::pb;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

use super::Fault;
use super::bounds::{ShareBounds, WINDOW_SLACK, max_bin, max_histogram_bytes};
use crate::engine::history::Answer;
use crate::engine::series::{MAX_BUCKETS, bucket_ms_for};
use crate::engine::stats::new_histogram;
use crate::outcome::is_indeterminate_code;
use crate::spec::LoadSpec;

/// purchased + sold out + limit reached + bad replies + statuses + timeouts == attempts, in
/// checked arithmetic.
pub(super) fn counters_sum(stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
    let sum = [
        stats.purchased,
        stats.sold_out,
        stats.limit_reached,
        stats.bad_replies,
        stats.timeouts,
    ]
    .into_iter()
    .chain(stats.statuses.values().copied())
    .try_fold(0u64, u64::checked_add);
    if sum != Some(stats.attempts) {
        faults.push(Fault::CountersSum {
            sum,
            attempts: stats.attempts,
        });
    }
}

/// Indeterminate attempts are the timeouts and the indeterminate statuses.
pub(super) fn counters_vs_statuses(stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
    let from_statuses = stats
        .statuses
        .iter()
        .filter(|&(&code, _)| is_indeterminate_code(tonic::Code::from(code)))
        .map(|(_, &n)| n)
        .chain([stats.timeouts])
        .try_fold(0u64, u64::checked_add);
    if from_statuses != Some(stats.indeterminate) {
        faults.push(Fault::Counter {
            name: "indeterminate",
            reported: stats.indeterminate,
            history: from_statuses.unwrap_or(u64::MAX),
        });
    }
}

/// What the history adds up to.
#[derive(Default)]
struct Tally {
    by_answer: [u64; 6],
    units: [u64; 6],
}

pub(super) fn history(
    share: &LoadSpec,
    bounds: &ShareBounds,
    window: Duration,
    stats: &pb::LoadStats,
    faults: &mut Vec<Fault>,
) {
    let n = stats.history_user.len();
    let other = [
        stats.history_seq.len(),
        stats.history_quantity.len(),
        stats.history_answer.len(),
        stats.history_order.len(),
        stats.history_sent_us.len(),
        stats.history_replied_us.len(),
    ];
    if other.iter().any(|&len| len != n) {
        faults.push(Fault::Columns { users: n, other });
        return;
    }
    if n as u64 != stats.attempts {
        faults.push(Fault::HistoryLength {
            history: n,
            attempts: stats.attempts,
        });
    }
    let first = share.first_user;
    let end = first.saturating_add(u64::from(share.users));
    let clicks = share.clicks.max(1);
    let seq_end =
        u64::from(clicks).saturating_mul(bounds.per_buyer(window.saturating_add(WINDOW_SLACK)));
    let mut seen: HashSet<(u32, u32)> = HashSet::with_capacity(n.min(1 << 20));
    let mut tally = Tally::default();
    // One fault of each kind is enough to name the worker faulty.
    let mut first_fault = [false; 6];
    let mut once = |kind: usize, fault: Fault, faults: &mut Vec<Fault>| {
        if !first_fault[kind] {
            first_fault[kind] = true;
            faults.push(fault);
        }
    };
    for i in 0..n {
        let (user, seq) = (stats.history_user[i], stats.history_seq[i]);
        let quantity = stats.history_quantity[i];
        if !(first..end).contains(&u64::from(user)) {
            once(0, Fault::UserOutside { user }, faults);
        }
        if u64::from(seq) >= seq_end {
            let why = "more attempts than the user could make";
            once(1, Fault::Seq { user, seq, why }, faults);
        } else if !seen.insert((user, seq)) {
            let why = "reported twice";
            once(1, Fault::Seq { user, seq, why }, faults);
        }
        let expected = share.quantity.pick(user, seq);
        if quantity != expected {
            let fault = Fault::Quantity {
                user,
                seq,
                quantity,
                expected,
            };
            once(2, fault, faults);
        }
        let (sent, replied) = (stats.history_sent_us[i], stats.history_replied_us[i]);
        if replied != crate::engine::history::UNKNOWN_TIME && sent > replied {
            let fault = Fault::Times {
                user,
                seq,
                sent,
                replied,
            };
            once(5, fault, faults);
        }
        let code = stats.history_answer[i];
        match Answer::from_code(code) {
            None => once(3, Fault::Answer { code }, faults),
            Some(answer) => {
                let a = answer.code() as usize;
                tally.by_answer[a] += 1;
                tally.units[a] = tally.units[a].saturating_add(u64::from(quantity));
                if answer != Answer::Purchased && stats.history_order[i] != 0 {
                    once(4, Fault::OrderWithoutPurchase { user, seq }, faults);
                }
            }
        }
    }
    if n as u64 != stats.attempts || first_fault[3] {
        // The counters cannot be compared with a history of another length or unknown answers.
        return;
    }
    let [
        purchased,
        sold_out,
        limit_reached,
        rejected,
        indeterminate,
        bad,
    ] = tally.by_answer;
    let units = tally.units;
    let mut expect = |name, reported: u64, history: u64| {
        if reported != history {
            faults.push(Fault::Counter {
                name,
                reported,
                history,
            });
        }
    };
    // A purchase without an order id counts as purchased and as a bad reply in the history.
    expect(
        "purchased",
        stats.purchased,
        purchased.saturating_add(stats.missing_order_ids),
    );
    expect(
        "bad_replies",
        stats.bad_replies.saturating_add(stats.missing_order_ids),
        bad,
    );
    expect("sold_out", stats.sold_out, sold_out);
    expect("limit_reached", stats.limit_reached, limit_reached);
    expect(
        "statuses and timeouts",
        stats
            .statuses
            .values()
            .copied()
            .chain([stats.timeouts])
            .try_fold(0u64, u64::checked_add)
            .unwrap_or(u64::MAX),
        rejected.saturating_add(indeterminate),
    );
    expect("indeterminate", stats.indeterminate, indeterminate);
    expect(
        "units_requested",
        stats.units_requested,
        units.iter().fold(0u64, |a, &u| a.saturating_add(u)),
    );
    expect(
        "indeterminate_units",
        stats.indeterminate_units,
        units[Answer::Indeterminate as usize],
    );
    let bought = units[Answer::Purchased as usize];
    let most = bought.saturating_add(units[Answer::BadReply as usize]);
    if stats.units_purchased < bought || stats.units_purchased > most {
        expect("units_purchased", stats.units_purchased, bought);
    }
}

pub(super) fn series(
    share: &LoadSpec,
    window: Duration,
    stats: &pb::LoadStats,
    faults: &mut Vec<Fault>,
) {
    let buckets = &stats.series;
    let mut why = |text: String| faults.push(Fault::Series(text));
    if buckets.len() > MAX_BUCKETS {
        why(format!("{} buckets; at most {MAX_BUCKETS}", buckets.len()));
        return;
    }
    let base = bucket_ms_for(share.duration);
    let width = stats.series_bucket_ms;
    if !buckets.is_empty()
        && (width < base || !width.is_multiple_of(base) || !(width / base).is_power_of_two())
    {
        why(format!(
            "a bucket width of {width} ms is not {base} ms doubled"
        ));
        return;
    }
    let span_ms = (buckets.len() as u64)
        .saturating_sub(1)
        .saturating_mul(width);
    let window_ms =
        u64::try_from(window.saturating_add(WINDOW_SLACK).as_millis()).unwrap_or(u64::MAX);
    if span_ms > window_ms {
        why(format!(
            "buckets reach {span_ms} ms after the start, the result came after {window_ms} ms"
        ));
    }
    let top = max_bin();
    let mut total = 0u64;
    for (i, b) in buckets.iter().enumerate() {
        let outcomes = [
            b.purchased,
            b.sold_out,
            b.limit_reached,
            b.bad_replies,
            b.timeouts,
        ]
        .into_iter()
        .chain(b.statuses.values().copied())
        .try_fold(0u64, u64::checked_add);
        if outcomes != Some(b.attempts) {
            why(format!(
                "bucket {i}: outcomes {outcomes:?} for {} attempts",
                b.attempts
            ));
            return;
        }
        if b.latency_bins.len() != b.latency_counts.len() {
            why(format!(
                "bucket {i}: latency bins and counts differ in length"
            ));
            return;
        }
        if b.latency_bins.windows(2).any(|w| w[0] >= w[1])
            || b.latency_bins.iter().any(|&bin| bin > u32::from(top))
            || b.latency_counts.contains(&0)
        {
            why(format!(
                "bucket {i}: latency bins out of order or outside 0..={top}"
            ));
            return;
        }
        let latencies = b
            .latency_counts
            .iter()
            .try_fold(0u64, |a, &n| a.checked_add(n));
        if latencies != Some(b.attempts) {
            why(format!(
                "bucket {i}: {latencies:?} latencies for {} attempts",
                b.attempts
            ));
            return;
        }
        total = total.saturating_add(b.attempts);
    }
    if total != stats.attempts {
        why(format!(
            "buckets hold {total} attempts, the counters {}",
            stats.attempts
        ));
    }
}

pub(super) fn histogram(share: &LoadSpec, stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
    let mut why = |text: String| faults.push(Fault::Histogram(text));
    let bytes = &stats.latency_hdr;
    if bytes.is_empty() {
        if stats.attempts > 0 {
            why(format!("empty for {} attempts", stats.attempts));
        }
        return;
    }
    if bytes.len() as u64 > max_histogram_bytes() {
        why(format!(
            "{} bytes; at most {}",
            bytes.len(),
            max_histogram_bytes()
        ));
        return;
    }
    // The V2 header names the histogram's bounds, which size what deserializing allocates:
    // only ours are accepted.
    let ours = new_histogram();
    let header = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    let digits = bytes
        .get(12..16)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    if header(16) != Some(ours.low())
        || header(24) != Some(ours.high())
        || digits != Some(u32::from(ours.sigfig()))
    {
        why("bounds other than 1 µs to 10 min at 3 digits".into());
        return;
    }
    let decoded: Histogram<u64> = match Deserializer::new().deserialize(&mut bytes.as_slice()) {
        Ok(h) => h,
        Err(e) => {
            why(format!("does not decode: {e:?}"));
            return;
        }
    };
    if decoded.len() != stats.attempts {
        why(format!(
            "{} latencies for {} attempts",
            decoded.len(),
            stats.attempts
        ));
    }
    if decoded.max() > ours.high() {
        why(format!("a latency of {} µs past its bounds", decoded.max()));
    }
    // A timeout is recorded at its deadline or later.
    let deadline_us = u64::try_from(share.timeout.as_micros())
        .unwrap_or(u64::MAX)
        .min(ours.high());
    let at_deadline = decoded.count_between(decoded.lowest_equivalent(deadline_us), ours.high());
    if at_deadline < stats.timeouts {
        why(format!(
            "{} timeouts, but only {at_deadline} latencies reach the {} ms deadline",
            stats.timeouts,
            share.timeout.as_millis()
        ));
    }
}
