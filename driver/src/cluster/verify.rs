//! Nothing a worker says is trusted: its report is checked against its share of the plan before
//! it is merged. [`verify`] returns every reason a report is impossible; a worker with any is
//! *faulty*: its statistics are dropped and its users count as unreported, like a lost worker's,
//! so a faulty worker can make a run incomplete or inconclusive but never turn a failure into a
//! pass. [`ShareBounds`] also gives the most a share can send ([`ShareBounds::max_report_bytes`]),
//! against which the coordinator counts a report's chunks as they arrive.
//!
//! The bounds, per share of `users` users with `clicks` concurrent purchases each (a *buyer* is
//! one user's click):
//! - a burst: each buyer tries once, so at most `users × clicks` attempts;
//! - a sustained run of `duration`: a buyer's attempts are sequential and none takes less than
//!   [`MIN_ATTEMPT`], so at most `users × clicks × (1 + min(duration, window) / MIN_ATTEMPT)`,
//!   where `window` is the time the coordinator itself measured from handing out the
//!   assignment to receiving the result;
//! - never more than [`MAX_SHARE_ATTEMPTS`].

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use flashsale::pb;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

use crate::engine::bins::LatencyBins;
use crate::engine::history::Answer;
use crate::engine::outcome::is_indeterminate_code;
use crate::engine::series::{MAX_BUCKETS, bucket_ms_for};
use crate::engine::stats::new_histogram;
use crate::spec::LoadSpec;

/// Shortest time one attempt can take (a gRPC round trip, even on loopback, takes longer).
pub const MIN_ATTEMPT: Duration = Duration::from_micros(20);
/// Most attempts one worker's report may hold, whatever the plan (1.2 GB of history).
pub const MAX_SHARE_ATTEMPTS: u64 = 50_000_000;
/// Bytes one attempt of the history costs at most, on the wire (5 + 5 + 5 + 1 varint bytes
/// and an 8-byte hash) and decoded (four `u32` and a `u64`).
pub const ATTEMPT_WIRE_BYTES: u64 = 24;
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
const WINDOW_SLACK: Duration = Duration::from_secs(2);

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
    fn per_buyer(&self, window: Duration) -> u64 {
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
fn max_bin() -> u16 {
    let mut bins = LatencyBins::default();
    bins.record(new_histogram().high());
    bins.bins[0].0
}

/// Why a report is impossible.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The result carries no statistics although it reports no error.
    NoStats,
    /// The history columns differ in length.
    Columns { users: usize, other: [usize; 4] },
    /// The history does not hold one entry per attempt.
    HistoryLength { history: usize, attempts: u64 },
    /// More attempts than the share's users could make.
    TooManyAttempts { attempts: u64, bound: u64 },
    /// An attempt by a user outside the share.
    UserOutside { user: u32 },
    /// A sequence number the user's clicks cannot produce, or one seen twice.
    Seq {
        user: u32,
        seq: u32,
        why: &'static str,
    },
    /// An attempt asked for other units than the plan's quantity mix gives it.
    Quantity {
        user: u32,
        seq: u32,
        quantity: u32,
        expected: u32,
    },
    /// An answer code that does not exist.
    Answer { code: u32 },
    /// An order hash on an attempt that bought nothing.
    OrderWithoutPurchase { user: u32, seq: u32 },
    /// The outcome counters do not sum to the attempts (or overflow).
    CountersSum { sum: Option<u64>, attempts: u64 },
    /// A counter disagrees with the history.
    Counter {
        name: &'static str,
        reported: u64,
        history: u64,
    },
    /// A status code that is not a non-OK gRPC code.
    Status { code: i32 },
    /// The time series is impossible.
    Series(String),
    /// The latency histogram is impossible.
    Histogram(String),
    /// The elapsed time is impossible.
    Elapsed(f64),
    /// Timeouts reported sooner than the deadline can expire.
    EarlyTimeouts { timeouts: u64, window_ms: u64 },
    /// More bytes of history and series than the share can produce.
    TooLarge { bytes: u64, bound: u64 },
}

impl Fault {
    /// A short stable name of the rule the report broke.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NoStats => "no_stats",
            Fault::Columns { .. } => "columns",
            Fault::HistoryLength { .. } => "history_length",
            Fault::TooManyAttempts { .. } => "too_many_attempts",
            Fault::UserOutside { .. } => "user_outside",
            Fault::Seq { .. } => "seq",
            Fault::Quantity { .. } => "quantity",
            Fault::Answer { .. } => "answer",
            Fault::OrderWithoutPurchase { .. } => "order_without_purchase",
            Fault::CountersSum { .. } => "counters_sum",
            Fault::Counter { .. } => "counter",
            Fault::Status { .. } => "status",
            Fault::Series(_) => "series",
            Fault::Histogram(_) => "histogram",
            Fault::Elapsed(_) => "elapsed",
            Fault::EarlyTimeouts { .. } => "early_timeouts",
            Fault::TooLarge { .. } => "too_large",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::NoStats => write!(f, "a result without statistics"),
            Fault::Columns { users, other } => write!(
                f,
                "history columns differ in length ({users} users, {other:?} in the others)"
            ),
            Fault::HistoryLength { history, attempts } => {
                write!(f, "a history of {history} attempts for {attempts} attempts")
            }
            Fault::TooManyAttempts { attempts, bound } => {
                write!(f, "{attempts} attempts; its users can make at most {bound}")
            }
            Fault::UserOutside { user } => write!(f, "an attempt by user {user}, not in its share"),
            Fault::Seq { user, seq, why } => {
                write!(f, "attempt {seq} of user {user}: {why}")
            }
            Fault::Quantity {
                user,
                seq,
                quantity,
                expected,
            } => write!(
                f,
                "attempt {seq} of user {user} asked for {quantity} units; the plan gives it {expected}"
            ),
            Fault::Answer { code } => write!(f, "unknown answer code {code}"),
            Fault::OrderWithoutPurchase { user, seq } => write!(
                f,
                "attempt {seq} of user {user} has an order but bought nothing"
            ),
            Fault::CountersSum {
                sum: Some(sum),
                attempts,
            } => write!(f, "outcome counters sum to {sum}, not {attempts} attempts"),
            Fault::CountersSum {
                sum: None,
                attempts,
            } => write!(
                f,
                "outcome counters overflow 64 bits for {attempts} attempts"
            ),
            Fault::Counter {
                name,
                reported,
                history,
            } => write!(f, "{name} is {reported}; its history says {history}"),
            Fault::Status { code } => write!(f, "status code {code} is not a gRPC error code"),
            Fault::Series(why) => write!(f, "time series: {why}"),
            Fault::Histogram(why) => write!(f, "latency histogram: {why}"),
            Fault::Elapsed(s) => write!(f, "elapsed time {s} s is impossible"),
            Fault::EarlyTimeouts {
                timeouts,
                window_ms,
            } => write!(
                f,
                "{timeouts} timeouts reported {window_ms} ms after the assignment, before any deadline could expire"
            ),
            Fault::TooLarge { bytes, bound } => write!(
                f,
                "{bytes} bytes of history and series; its share can produce at most {bound}"
            ),
        }
    }
}

/// Checks `result`, a worker's report of `share` received `window` after its assignment was
/// sent (as the coordinator measured it). Empty when nothing is wrong. A result that reports
/// an error and carries no statistics is not checked (it is a failed worker, not a faulty one).
pub fn verify(share: &LoadSpec, window: Duration, result: &pb::WorkerResult) -> Vec<Fault> {
    let Some(stats) = &result.stats else {
        return if result.error.is_empty() {
            vec![Fault::NoStats]
        } else {
            Vec::new()
        };
    };
    let mut faults = Vec::new();
    let bounds = ShareBounds::new(share);
    let attempts = stats.attempts;
    let bound = bounds.max_attempts(window.saturating_add(WINDOW_SLACK));
    if attempts > bound {
        faults.push(Fault::TooManyAttempts { attempts, bound });
    }
    if !result.elapsed_s.is_finite()
        || result.elapsed_s < 0.0
        || result.elapsed_s > window.saturating_add(WINDOW_SLACK).as_secs_f64()
    {
        faults.push(Fault::Elapsed(result.elapsed_s));
    }
    if stats.timeouts > 0 && window.saturating_add(WINDOW_SLACK) < share.timeout {
        faults.push(Fault::EarlyTimeouts {
            timeouts: stats.timeouts,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        });
    }
    let status_faults: Vec<Fault> = stats
        .statuses
        .keys()
        .chain(stats.series.iter().flat_map(|b| b.statuses.keys()))
        .filter(|&&code| !(1..=16).contains(&code))
        .map(|&code| Fault::Status { code })
        .collect();
    let statuses_ok = status_faults.is_empty();
    faults.extend(dedup(status_faults));
    counters_sum(stats, &mut faults);
    history(share, &bounds, window, stats, &mut faults);
    if statuses_ok {
        counters_vs_statuses(stats, &mut faults);
    }
    series(share, window, stats, &mut faults);
    histogram(share, stats, &mut faults);
    faults
}

fn dedup(mut faults: Vec<Fault>) -> Vec<Fault> {
    let mut seen = Vec::new();
    faults.retain(|f| {
        let new = !seen.contains(f);
        if new {
            seen.push(f.clone());
        }
        new
    });
    faults
}

/// purchased + sold out + limit reached + bad replies + statuses + timeouts == attempts, in
/// checked arithmetic.
fn counters_sum(stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
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
fn counters_vs_statuses(stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
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

fn history(
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
    let mut first_fault = [false; 5];
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

fn series(share: &LoadSpec, window: Duration, stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
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

fn histogram(share: &LoadSpec, stats: &pb::LoadStats, faults: &mut Vec<Fault>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::stats_to_wire;
    use crate::engine::history::AttemptKey;
    use crate::engine::outcome::Outcome;
    use crate::engine::stats::Stats;
    use crate::spec::{Mode, Quantities};
    use tonic::Code;

    const TIMEOUT: Duration = Duration::from_secs(10);
    const WINDOW: Duration = Duration::from_secs(20);

    fn share(mix: &str) -> LoadSpec {
        LoadSpec {
            mode: Mode::Buggy,
            users: 10,
            connections: 1,
            threads: 1,
            duration: None,
            quantity: Quantities::parse(mix).unwrap(),
            clicks: 2,
            round: 1,
            timeout: TIMEOUT,
            user_prefix: "p-".into(),
            first_user: 100,
        }
    }

    /// What a correct worker reports for `share`: every buyer tries once, with every kind of
    /// outcome among them.
    fn honest(share: &LoadSpec) -> pb::WorkerResult {
        let mut stats = Stats::with_bucket_ms(bucket_ms_for(share.duration));
        let mut i = 0u64;
        for user in 100..110u32 {
            for seq in 0..share.clicks {
                let quantity = share.quantity.pick(user, seq);
                let (outcome, latency) = match i % 8 {
                    0 => (
                        Outcome::Purchased {
                            order_id: format!("o{i}"),
                            quantity,
                            stock_after: 5,
                        },
                        Duration::from_millis(3),
                    ),
                    1 => (
                        Outcome::Purchased {
                            order_id: String::new(),
                            quantity,
                            stock_after: 4,
                        },
                        Duration::from_millis(3),
                    ),
                    2 => (
                        Outcome::SoldOut { stock_after: 0 },
                        Duration::from_millis(1),
                    ),
                    3 => (
                        Outcome::LimitReached { stock_after: 0 },
                        Duration::from_millis(1),
                    ),
                    4 => (Outcome::BadReply, Duration::from_millis(2)),
                    5 => (
                        Outcome::Status(Code::Unavailable),
                        Duration::from_micros(400),
                    ),
                    6 => (Outcome::Status(Code::Internal), Duration::from_millis(7)),
                    _ => (Outcome::Timeout, TIMEOUT),
                };
                // End instants within the first 60 ms (the checks cannot relate them to
                // latencies), so a short window breaks only the rule about timeouts.
                let at = Duration::from_millis(i * 3);
                stats.record_at(at, AttemptKey { user, seq }, quantity, outcome, latency);
                i += 1;
            }
        }
        pb::WorkerResult {
            run_id: 1,
            error: String::new(),
            stats: Some(stats_to_wire(&stats)),
            elapsed_s: 10.5,
            connections: 1,
            threads: 1,
        }
    }

    fn kinds(faults: &[Fault]) -> Vec<&'static str> {
        let mut kinds: Vec<_> = faults.iter().map(Fault::kind).collect();
        kinds.dedup();
        kinds
    }

    /// `change` applied to an honest report of `share("1,2,3")` breaks exactly the rule `kind`
    /// when checked against `plan`.
    fn only(kind: &str, plan: &LoadSpec, window: Duration, change: impl Fn(&mut pb::WorkerResult)) {
        let mut result = honest(&share(if plan.quantity.values() == [1] {
            "1"
        } else {
            "1,2,3"
        }));
        change(&mut result);
        let faults = verify(plan, window, &result);
        assert_eq!(kinds(&faults), [kind], "{faults:#?}");
        assert!(!faults[0].to_string().is_empty());
    }

    fn stats(result: &mut pb::WorkerResult) -> &mut pb::LoadStats {
        result.stats.as_mut().unwrap()
    }

    #[test]
    fn an_honest_report_passes() {
        for mix in ["1", "1,2,3"] {
            let plan = share(mix);
            assert_eq!(verify(&plan, WINDOW, &honest(&plan)), []);
        }
        let failed = pb::WorkerResult {
            error: "cannot reach the target".into(),
            ..Default::default()
        };
        assert_eq!(verify(&share("1"), WINDOW, &failed), []);
    }

    #[test]
    fn each_rule_rejects_its_own_lie() {
        let plan = share("1,2,3");
        only("no_stats", &plan, WINDOW, |r| r.stats = None);
        only("columns", &plan, WINDOW, |r| {
            stats(r).history_order.pop();
        });
        only("history_length", &plan, WINDOW, |r| {
            let s = stats(r);
            s.history_user.pop();
            s.history_seq.pop();
            s.history_quantity.pop();
            s.history_answer.pop();
            s.history_order.pop();
        });
        let mut moved = plan.clone();
        moved.first_user = 101;
        only("user_outside", &moved, WINDOW, |_| {});
        let mut other_mix = plan.clone();
        other_mix.quantity = Quantities::parse("3,2,1").unwrap();
        only("quantity", &other_mix, WINDOW, |_| {});
        only("answer", &plan, WINDOW, |r| stats(r).history_answer[2] = 9);
        only("order_without_purchase", &plan, WINDOW, |r| {
            // Attempt 2 was sold out.
            stats(r).history_order[2] = 0xdead;
        });
        only("counter", &plan, WINDOW, |r| {
            let s = stats(r);
            s.sold_out += 1;
            s.limit_reached -= 1;
        });
        only("counter", &plan, WINDOW, |r| stats(r).units_requested += 1);
        only("counter", &plan, WINDOW, |r| {
            let s = stats(r);
            s.indeterminate += 1;
            s.indeterminate_units += 1;
        });
        only("status", &plan, WINDOW, |r| {
            let s = stats(r);
            let unavailable = Code::Unavailable as i32;
            let n = s.statuses.remove(&unavailable).unwrap();
            s.statuses.insert(99, n);
        });
        only("series", &plan, WINDOW, |r| {
            stats(r)
                .series
                .extend((0..10_000).map(|_| pb::SeriesBucket::default()));
        });
        only("series", &plan, WINDOW, |r| {
            stats(r).series[0].attempts += 1
        });
        only("series", &plan, WINDOW, |r| stats(r).series_bucket_ms = 15);
        only("series", &plan, WINDOW, |r| {
            stats(r).series[0].latency_bins[0] = 60_000;
        });
        only("histogram", &plan, WINDOW, |r| {
            let mut other = Histogram::<u64>::new_with_bounds(1, u64::MAX / 2, 5).unwrap();
            other.record(5).unwrap();
            let mut bytes = Vec::new();
            use hdrhistogram::serialization::Serializer as _;
            hdrhistogram::serialization::V2Serializer::new()
                .serialize(&other, &mut bytes)
                .unwrap();
            stats(r).latency_hdr = bytes;
        });
        only("histogram", &plan, WINDOW, |r| stats(r).latency_hdr.clear());
        only("elapsed", &plan, WINDOW, |r| r.elapsed_s = f64::NAN);
        only("elapsed", &plan, WINDOW, |r| r.elapsed_s = 1e9);
        only("early_timeouts", &plan, Duration::from_secs(1), |r| {
            r.elapsed_s = 0.5;
        });
    }

    #[test]
    fn seq_rules() {
        // One quantity, so moving an attempt to another seq changes nothing else.
        let plan = share("1");
        only("seq", &plan, WINDOW, |r| stats(r).history_seq[1] = 0);
        let mut burst_of_one = plan.clone();
        burst_of_one.clicks = 1;
        let faults = verify(&burst_of_one, WINDOW, &honest(&plan));
        assert_eq!(kinds(&faults), ["too_many_attempts", "seq"], "{faults:#?}");
    }

    #[test]
    fn wrapped_counters_are_caught_not_wrapped() {
        let plan = share("1");
        let mut result = honest(&plan);
        stats(&mut result).purchased = u64::MAX - 3;
        let faults = verify(&plan, WINDOW, &result);
        assert!(faults.contains(&Fault::CountersSum {
            sum: None,
            attempts: 20
        }));
        assert!(kinds(&faults).contains(&"counter"));
    }

    #[test]
    fn sustained_bounds_follow_the_window() {
        let mut plan = share("1");
        plan.duration = Some(Duration::from_secs(10));
        let bounds = ShareBounds::new(&plan);
        // 20 buyers, each at most one attempt per 20 µs plus one.
        assert_eq!(bounds.max_attempts(Duration::from_millis(1)), 20 * 51);
        assert_eq!(
            bounds.max_attempts(Duration::from_secs(60)),
            20 * (500_000 + 1)
        );
        plan.users = 1_000_000;
        plan.clicks = 1;
        plan.duration = Some(Duration::from_secs(3600));
        assert_eq!(
            ShareBounds::new(&plan).max_attempts_ever(),
            MAX_SHARE_ATTEMPTS
        );
    }

    #[test]
    fn report_bytes_bound_a_burst() {
        let plan = share("1");
        let bytes = ShareBounds::new(&plan).max_report_bytes();
        let honest = prost::Message::encoded_len(&honest(&plan));
        assert!(honest as u64 <= bytes, "{honest} > {bytes}");
        // 20 attempts: dominated by a full series and the histogram, well under a MiB.
        assert!(bytes < 1 << 20, "{bytes}");
    }
}
