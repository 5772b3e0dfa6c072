//! The run's history in Jepsen's model: one compact record per attempt saying which user sent
//! it, its sequence number (together: its request id), the units it asked for, and what the
//! client learnt — `ok` (purchased, with a hash of the order id), `fail` (sold out, limit
//! reached, or a status after which nothing can have changed) or `info` (indeterminate: a
//! timeout or a status after which the purchase may or may not have been applied).
//!
//! Each attempt also keeps when it was sent and when its answer came, in microseconds after the
//! users' start on the clock of the process that sent it, so the audit can judge a refusal at
//! the moment it was made ([`crate::audit::undersell`]).
//!
//! A request retried (`--retries`) is one record: its answer over all its tries, and how many
//! tries it took (`tries`).
//!
//! A record is [`ATTEMPT_BYTES`] bytes, so the driver's memory grows by that much per attempt
//! and by nothing else; each load thread keeps its own history and they are merged once.

use crate::outcome::Outcome;
pub use crate::spec::ids::AttemptKey;

/// Bytes one attempt costs in the history.
pub const ATTEMPT_BYTES: usize = std::mem::size_of::<Attempt>();

/// What the client learnt from one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    /// OK + PURCHASED: the server says it placed the order.
    Purchased = 0,
    /// OK + SOLD_OUT.
    SoldOut = 1,
    /// OK + LIMIT_REACHED.
    LimitReached = 2,
    /// A status after which nothing can have changed (UNAVAILABLE, INVALID_ARGUMENT, ...).
    Rejected = 3,
    /// Unknown effect: a timeout, or a status such as INTERNAL or DEADLINE_EXCEEDED.
    Indeterminate = 4,
    /// OK with a reply that breaks the contract (no outcome, purchase without order id).
    BadReply = 5,
}

impl Answer {
    /// The history's wire form.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The inverse of [`Answer::code`].
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Answer::Purchased,
            1 => Answer::SoldOut,
            2 => Answer::LimitReached,
            3 => Answer::Rejected,
            4 => Answer::Indeterminate,
            5 => Answer::BadReply,
            _ => return None,
        })
    }

    /// The answer an outcome amounts to.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Purchased { order_id, .. } if order_id.is_empty() => Answer::BadReply,
            Outcome::Purchased { .. } => Answer::Purchased,
            Outcome::SoldOut { .. } => Answer::SoldOut,
            Outcome::LimitReached { .. } => Answer::LimitReached,
            Outcome::BadReply => Answer::BadReply,
            o if o.is_indeterminate() => Answer::Indeterminate,
            Outcome::Status(_) | Outcome::Timeout => Answer::Rejected,
        }
    }
}

/// One attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub key: AttemptKey,
    pub quantity: u32,
    pub answer: Answer,
    /// 64-bit FNV-1a hash of the order id of a purchase, else 0.
    pub order: u64,
    /// When it was sent, in µs after the users' start (0 when not known: the earliest
    /// possible, which is what the audit must assume).
    pub sent_us: u32,
    /// When its answer came, in µs after the users' start ([`UNKNOWN_TIME`] when not known:
    /// the latest possible).
    pub replied_us: u32,
    /// Tries of this request, the first included (1 without `--retries`; saturates at 255).
    /// Every try carried the attempt's request id; `answer` is what the request came to over
    /// all of them ([`crate::checkout::retry::Tried`]). Fits the record's padding: still 32
    /// bytes.
    pub tries: u8,
}

/// `replied_us` of an attempt whose answer time is not known (a history from a peer that
/// does not send times): later than anything, so no reading is taken to follow it.
pub const UNKNOWN_TIME: u32 = u32::MAX;

/// A time after the users' start in whole µs, saturating at [`UNKNOWN_TIME`] - 1 (71 minutes;
/// later attempts all count as sent at that instant, which only weakens what the audit
/// concludes from them).
pub fn micros(at: std::time::Duration) -> u32 {
    u32::try_from(at.as_micros()).map_or(UNKNOWN_TIME - 1, |us| us.min(UNKNOWN_TIME - 1))
}

/// Every attempt of a run (or of one load thread, before the merge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub attempts: Vec<Attempt>,
    /// Users whose attempts were not (all) reported, as `first..end` ranges of user numbers: the
    /// shares of distributed workers that were lost. Their orders in the book are theirs, not
    /// ghosts.
    pub unreported: Vec<std::ops::Range<u32>>,
}

impl History {
    pub fn push(&mut self, attempt: Attempt) {
        self.attempts.push(attempt);
    }

    pub fn merge(&mut self, other: History) {
        if self.attempts.is_empty() {
            self.attempts = other.attempts;
        } else {
            self.attempts.extend(other.attempts);
        }
        self.unreported.extend(other.unreported);
    }

    /// Whether `user` belongs to a share that was not reported.
    pub fn is_unreported(&self, user: u32) -> bool {
        self.unreported.iter().any(|r| r.contains(&user))
    }

    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_size() {
        for code in 0..6 {
            assert_eq!(Answer::from_code(code).map(Answer::code), Some(code));
        }
        assert_eq!(Answer::from_code(6), None);
        assert_eq!(ATTEMPT_BYTES, 32);
    }
}
