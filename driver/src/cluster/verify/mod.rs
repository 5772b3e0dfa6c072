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

mod bounds;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use flashsale::pb;

use crate::spec::LoadSpec;
use bounds::WINDOW_SLACK;
use rules::{counters_sum, counters_vs_statuses, histogram, history, series};

pub use bounds::{
    ATTEMPT_WIRE_BYTES, MAX_SHARE_ATTEMPTS, MIN_ATTEMPT, ShareBounds, bucket_bytes,
    max_histogram_bytes,
};

/// Why a report is impossible.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The result carries no statistics although it reports no error.
    NoStats,
    /// The history columns differ in length.
    Columns { users: usize, other: [usize; 6] },
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
    /// An attempt answered before it was sent.
    Times {
        user: u32,
        seq: u32,
        sent: u32,
        replied: u32,
    },
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
            Fault::Times { .. } => "times",
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
            Fault::Times {
                user,
                seq,
                sent,
                replied,
            } => write!(
                f,
                "attempt {seq} of user {user} was answered at {replied} µs, before it was sent at {sent} µs"
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
