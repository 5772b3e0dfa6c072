//! The outcome counters of a set of requests, defined once: [`Counts`] is what a load thread's
//! [`Stats`](crate::engine::stats::Stats), every time bucket of the
//! [`Series`](crate::engine::series::Series), the report's outcomes and the wire's statistics
//! count, and [`AtomicCounts`] is its lock-free mirror that a connection updates while a
//! watcher snapshots it.
//!
//! Adding an outcome means: a variant of [`Outcome`] (and what it amounts to in the history's
//! `Answer`), a field in the `counts!` list below and a line in [`Counts::record`], then the
//! wire (`LoadStats`, `SeriesBucket`) and JSON (`report::Outcomes`) schemas.
//!
//! Merging never wraps: [`Counts::checked_merge`] refuses a sum that does not fit (a peer's
//! `purchased = 2^64 - N` must not make the merged counters small again).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::Code;

use crate::outcome::{Outcome, code_name};

/// Number of gRPC status codes (0 = OK ..= 16 = UNAUTHENTICATED).
const CODES: usize = 17;

/// A sum of counters would not fit in 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("counter `{0}` would overflow 64 bits")]
pub struct Overflow(pub &'static str);

/// A status code outside the gRPC range (or OK) where a non-OK status was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status code {0} is not a non-OK gRPC status")]
pub struct BadStatusCode(pub i32);

/// Requests per non-OK gRPC status code, a fixed array (no allocation when one is counted).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Statuses([u64; CODES]);

impl Statuses {
    /// Requests answered with `code`.
    pub fn get(&self, code: Code) -> u64 {
        self.0[code as usize]
    }

    /// Counts `n` more requests answered with `code`.
    fn add(&mut self, code: Code, n: u64) {
        self.0[code as usize] += n;
    }

    /// Non-zero counts as `(code number, requests)`, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|&(_, &n)| n > 0)
            .map(|(code, &n)| (code as i32, n))
    }

    /// Non-zero counts by canonical name, e.g. `UNAVAILABLE`.
    pub fn by_name(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.iter().map(|(code, n)| (code_name(code), n)).collect()
    }

    /// Every request with a non-OK status (saturating: a display figure).
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |sum, &n| sum.saturating_add(n))
    }

    /// Builds the counts from `(code number, requests)` pairs, as a peer sends them: every code
    /// must be a non-OK gRPC status, and repeated codes must add up without wrapping.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (i32, u64)>) -> Result<Self, StatusesError> {
        let mut statuses = Self::default();
        for (code, n) in pairs {
            let slot = usize::try_from(code)
                .ok()
                .filter(|&c| (1..CODES).contains(&c))
                .ok_or(BadStatusCode(code))?;
            statuses.0[slot] = statuses.0[slot]
                .checked_add(n)
                .ok_or(Overflow("statuses"))?;
        }
        Ok(statuses)
    }

    fn checked_sum(&self, other: &Self) -> Result<Self, Overflow> {
        let mut sum = *self;
        for (mine, theirs) in sum.0.iter_mut().zip(other.0) {
            *mine = mine.checked_add(theirs).ok_or(Overflow("statuses"))?;
        }
        Ok(sum)
    }

    fn saturating_sum(&self, other: &Self) -> Self {
        let mut sum = *self;
        for (mine, theirs) in sum.0.iter_mut().zip(other.0) {
            *mine = mine.saturating_add(theirs);
        }
        sum
    }
}

impl fmt::Debug for Statuses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(code, n)| (code_name(code), n)))
            .finish()
    }
}

/// Why statuses from a peer were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusesError {
    #[error(transparent)]
    BadCode(#[from] BadStatusCode),
    #[error(transparent)]
    Overflow(#[from] Overflow),
}

/// Defines [`Counts`] and [`AtomicCounts`] from one list of scalar counters, so the two and
/// their merge, sum and snapshot cannot drift apart.
macro_rules! counts {
    ($($(#[doc = $doc:literal])* $field:ident,)*) => {
        /// What a set of requests came to, counted.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counts {
            $($(#[doc = $doc])* pub $field: u64,)*
            /// Requests per non-OK status code.
            pub statuses: Statuses,
        }

        /// The lock-free mirror of [`Counts`]: relaxed atomics written by one connection's task
        /// (their only writer) and read by a watcher, starting on a cache line of their own.
        #[derive(Debug, Default)]
        #[repr(align(64))]
        pub struct AtomicCounts {
            $($field: AtomicU64,)*
            statuses: [AtomicU64; CODES],
        }

        impl Counts {
            /// `self + other`, or which counter would overflow.
            pub fn checked_sum(&self, other: &Counts) -> Result<Counts, Overflow> {
                Ok(Counts {
                    $($field: self.$field
                        .checked_add(other.$field)
                        .ok_or(Overflow(stringify!($field)))?,)*
                    statuses: self.statuses.checked_sum(&other.statuses)?,
                })
            }

            /// `self + other`, each counter stopping at `u64::MAX` (for display figures).
            pub fn saturating_sum(&self, other: &Counts) -> Counts {
                Counts {
                    $($field: self.$field.saturating_add(other.$field),)*
                    statuses: self.statuses.saturating_sum(&other.statuses),
                }
            }
        }

        impl AtomicCounts {
            /// Adds `delta` (one request's counts: most fields are zero and skipped) with a
            /// relaxed load and store per counter: no read-modify-write, as there is one writer.
            fn add(&self, delta: &Counts) {
                $(if delta.$field != 0 {
                    bump(&self.$field, delta.$field);
                })*
                for (slot, &n) in self.statuses.iter().zip(&delta.statuses.0) {
                    if n != 0 {
                        bump(slot, n);
                    }
                }
            }

            /// The counters at this moment (each read on its own: a watcher's view).
            pub fn snapshot(&self) -> Counts {
                let mut statuses = Statuses::default();
                for (n, slot) in statuses.0.iter_mut().zip(&self.statuses) {
                    *n = slot.load(Ordering::Relaxed);
                }
                Counts {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                    statuses,
                }
            }
        }
    };
}

counts! {
    /// Requests sent (and finished, whatever they came to).
    attempts,
    /// Status OK, outcome PURCHASED.
    purchased,
    /// Units those purchases bought.
    units_purchased,
    /// Status OK, outcome SOLD_OUT.
    sold_out,
    /// Status OK, outcome LIMIT_REACHED.
    limit_reached,
    /// Status OK with a reply that breaks the contract.
    bad_replies,
    /// No answer within the client's deadline.
    timeouts,
    /// Units all the attempts asked for.
    units_requested,
    /// Requests whose effect is unknown (timeouts and indeterminate statuses).
    indeterminate,
    /// Units those requests asked for.
    indeterminate_units,
    /// Purchases acknowledged without an order id.
    missing_order_ids,
}

impl Counts {
    /// Counts one request that asked for `quantity` units and came to `outcome`. Never
    /// allocates; local counts of one process's own requests cannot reach 2^64.
    pub fn record(&mut self, outcome: &Outcome, quantity: u32) {
        let units = u64::from(quantity);
        self.attempts += 1;
        self.units_requested += units;
        if outcome.is_indeterminate() {
            self.indeterminate += 1;
            self.indeterminate_units += units;
        }
        match outcome {
            Outcome::Purchased {
                order_id, quantity, ..
            } => {
                self.purchased += 1;
                self.units_purchased += u64::from(*quantity);
                if order_id.is_empty() {
                    self.missing_order_ids += 1;
                }
            }
            Outcome::SoldOut { .. } => self.sold_out += 1,
            Outcome::LimitReached { .. } => self.limit_reached += 1,
            Outcome::BadReply => self.bad_replies += 1,
            Outcome::Status(code) => self.statuses.add(*code, 1),
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    /// Adds `other` into `self`; on overflow `self` is left unchanged.
    pub fn checked_merge(&mut self, other: &Counts) -> Result<(), Overflow> {
        *self = self.checked_sum(other)?;
        Ok(())
    }

    /// Requests that ended in a non-OK status or a timeout.
    pub fn errors(&self) -> u64 {
        self.statuses.total().saturating_add(self.timeouts)
    }

    /// Turned away for lack of stock or by the per-user limit.
    pub fn refused(&self) -> u64 {
        self.sold_out.saturating_add(self.limit_reached)
    }

    /// Attempts that ran past the client's deadline. A DEADLINE_EXCEEDED or CANCELLED that
    /// came as the deadline ran out is counted here too: it became a timeout when it was
    /// recorded ([`Outcome::judged`]); one the server sent well before is an error status.
    pub fn deadline_expiries(&self) -> u64 {
        self.timeouts
    }

    /// Share of attempts answered with an error status, deadline expiries excluded (an
    /// overloaded server is measured by `timeout_rate` and latency thresholds instead).
    pub fn error_rate(&self) -> f64 {
        share(self.statuses.total(), self.attempts)
    }

    /// Share of attempts that ran past their deadline.
    pub fn timeout_rate(&self) -> f64 {
        share(self.deadline_expiries(), self.attempts)
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `counter += n` for the counter's only writer (a relaxed load and store: plain moves on x86,
/// no locked instruction). Were there two writers, counts could be lost, never memory.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl AtomicCounts {
    /// [`Counts::record`] into the atomics: lock-free, no allocation, touching only the
    /// counters the outcome changes. One writer at a time: the connection task that owns
    /// these counters (a watcher only reads them).
    pub fn record(&self, outcome: &Outcome, quantity: u32) {
        let mut delta = Counts::default();
        delta.record(outcome, quantity);
        self.add(&delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchased(id: &str, quantity: u32) -> Outcome {
        Outcome::Purchased {
            order_id: id.into(),
            quantity,
            stock_after: Some(0),
        }
    }

    fn sample() -> Vec<(Outcome, u32)> {
        vec![
            (purchased("o1", 2), 2),
            (purchased("", 1), 1),
            (
                Outcome::SoldOut {
                    stock_after: Some(0),
                },
                3,
            ),
            (
                Outcome::LimitReached {
                    stock_after: Some(4),
                },
                1,
            ),
            (Outcome::BadReply, 1),
            (Outcome::Timeout, 5),
            (Outcome::Status(Code::Unavailable), 1),
            (Outcome::Status(Code::DeadlineExceeded), 2),
            (Outcome::Status(Code::Internal), 1),
        ]
    }

    #[test]
    fn records_every_outcome() {
        let mut c = Counts::default();
        for (outcome, q) in sample() {
            c.record(&outcome, q);
        }
        assert_eq!(c.attempts, 9);
        assert_eq!(c.units_requested, 17);
        assert_eq!((c.purchased, c.units_purchased), (2, 3));
        assert_eq!(c.missing_order_ids, 1);
        assert_eq!((c.sold_out, c.limit_reached, c.refused()), (1, 1, 2));
        assert_eq!(c.bad_replies, 1);
        assert_eq!(c.timeouts, 1);
        // Timeout (5 units), DEADLINE_EXCEEDED (2), INTERNAL (1); UNAVAILABLE is a refusal.
        assert_eq!((c.indeterminate, c.indeterminate_units), (3, 8));
        assert_eq!(c.errors(), 4);
        assert_eq!(c.deadline_expiries(), 1);
        assert!((c.error_rate() - 3.0 / 9.0).abs() < 1e-9);
        assert!((c.timeout_rate() - 1.0 / 9.0).abs() < 1e-9);
        let names: Vec<_> = c.statuses.by_name().into_iter().collect();
        assert_eq!(
            names,
            [
                ("DEADLINE_EXCEEDED", 1),
                ("INTERNAL", 1),
                ("UNAVAILABLE", 1)
            ]
        );
    }

    #[test]
    fn the_atomic_mirror_snapshots_what_counts_records() {
        let (mut plain, atomic) = (Counts::default(), AtomicCounts::default());
        for (outcome, q) in sample() {
            plain.record(&outcome, q);
            atomic.record(&outcome, q);
        }
        assert_eq!(atomic.snapshot(), plain);
    }

    #[test]
    fn merges_add_and_never_wrap() {
        let mut a = Counts::default();
        a.record(&purchased("o1", 2), 2);
        let mut b = a;
        b.record(&Outcome::Status(Code::Unavailable), 1);
        a.checked_merge(&b).unwrap();
        assert_eq!((a.attempts, a.purchased, a.units_purchased), (3, 2, 4));
        assert_eq!(a.statuses.get(Code::Unavailable), 1);

        // A peer claiming 2^64 - 1 purchases cannot make the sum small again.
        let before = a;
        let huge = Counts {
            purchased: u64::MAX - 1,
            ..Counts::default()
        };
        assert_eq!(a.checked_merge(&huge), Err(Overflow("purchased")));
        assert_eq!(a, before, "a refused merge leaves the counts unchanged");
        let statuses = Counts {
            statuses: Statuses::from_pairs([(Code::Unavailable as i32, u64::MAX)]).unwrap(),
            ..Counts::default()
        };
        assert_eq!(a.checked_merge(&statuses), Err(Overflow("statuses")));
        assert_eq!(a.saturating_sum(&huge).purchased, u64::MAX);
    }

    #[test]
    fn statuses_from_a_peer_are_checked() {
        assert_eq!(
            Statuses::from_pairs([(0, 1)]),
            Err(BadStatusCode(0).into()),
            "OK is not an error status"
        );
        assert_eq!(
            Statuses::from_pairs([(17, 1)]),
            Err(BadStatusCode(17).into())
        );
        assert_eq!(
            Statuses::from_pairs([(-1, 1)]),
            Err(BadStatusCode(-1).into())
        );
        let ok = Statuses::from_pairs([(14, 2), (4, 1)]).unwrap();
        assert_eq!(ok.iter().collect::<Vec<_>>(), [(4, 1), (14, 2)]);
        assert_eq!(ok.total(), 3);
    }
}
