//! A client that retries like real ones ([`crate::spec::retry::Retry`]): a request is tried
//! until it gets an answer that is not retried (`--retry-on`), it has been retried
//! `--retries` times, its overall deadline would pass, or the retry budget says no. Every try
//! carries the same request id (the caller's [`Attempt`], cloned), so a checkout that
//! deduplicates answers a retry of a placed purchase with its order. Between tries the client
//! waits a random time up to the backoff's ceiling (full jitter); each try has the per-try
//! deadline, cut to what is left of the overall one.
//!
//! The budget ([`Throttle`], gRPC's retry throttling) is per connection, as gRPC's is per
//! channel: a checkout that is down is not hammered by every user's retries at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::{Attempt, Purchaser};
use crate::outcome::Outcome;
use crate::spec::Mode;
use crate::spec::retry::{Budget, Retry, RetryOn};

/// Thousandths of a token: the budget's unit.
const MILLI: u64 = 1000;

/// gRPC's retry throttling: tokens taken by retried answers, given back by the others.
#[derive(Debug)]
pub struct Throttle {
    /// Tokens now, in thousandths.
    milli: AtomicU64,
    max: u64,
    back: u64,
}

impl Throttle {
    pub fn new(budget: Budget) -> Self {
        let max = u64::from(budget.tokens).saturating_mul(MILLI);
        Self {
            milli: AtomicU64::new(max),
            max,
            // RATIO is within (0, 1]: at most one token back.
            back: (budget.ratio * MILLI as f64)
                .round()
                .clamp(1.0, MILLI as f64) as u64,
        }
    }

    /// A try answered with a status that is retried: one token less.
    pub fn failed(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(MILLI))
            });
    }

    /// Any other answer: `ratio` of a token back, up to the full bucket.
    pub fn answered(&self) {
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(self.back).min(self.max))
            });
    }

    /// Whether a retry may be sent now: more than half the tokens are left.
    pub fn allows(&self) -> bool {
        self.milli.load(Ordering::Relaxed) > self.max / 2
    }
}

/// What a request came to after all its tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// What the request came to: the last try's answer (judged: a deadline status at the
    /// deadline is a timeout), except that a definite "nothing written" error after a try
    /// with an unknown effect leaves the request unknown (that earlier try's answer): the
    /// request may have been applied by it.
    pub outcome: Outcome,
    /// Tries sent, the first included (at least 1).
    pub tries: u32,
    /// The last answer was one to retry (out of retries, of time or of budget).
    pub exhausted: bool,
    /// The budget refused the retry.
    pub throttled: bool,
}

/// Whether `outcome` is one `on` retries.
pub fn is_retried(on: &RetryOn, outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Timeout => on.timeout,
        Outcome::Status(code) => on.code(*code),
        _ => false,
    }
}

/// Buys `attempt` on `purchaser` in `mode` with per-try deadline `timeout`, retried as `retry`
/// says within `throttle`'s budget. Without retries: one try, `attempt` moved, not cloned.
pub async fn purchase(
    purchaser: &mut Purchaser,
    mode: Mode,
    attempt: Attempt,
    timeout: Duration,
    (retry, throttle): (&Retry, &Throttle),
) -> Tried {
    if retry.retries == 0 {
        let sent = Instant::now();
        let outcome = purchaser.purchase(mode, attempt, timeout).await;
        return Tried {
            outcome: outcome.judged(sent.elapsed(), timeout),
            tries: 1,
            exhausted: false,
            throttled: false,
        };
    }
    tries(retry, throttle, timeout, async |per_try| {
        purchaser.purchase(mode, attempt.clone(), per_try).await
    })
    .await
}

/// The retry loop around `try_once(per-try deadline)`.
pub async fn tries(
    retry: &Retry,
    throttle: &Throttle,
    timeout: Duration,
    mut try_once: impl AsyncFnMut(Duration) -> Outcome,
) -> Tried {
    // No deadline past what an `Instant` can hold (a plan that skipped validation): none.
    let deadline = Instant::now().checked_add(retry.deadline_for(timeout));
    let left = |now: Instant| deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
    let mut tries = 0u32;
    // The first try whose effect is unknown, if any.
    let mut unknown: Option<Outcome> = None;
    loop {
        let per_try = if retry.retries == 0 {
            timeout
        } else {
            timeout.min(left(Instant::now()))
        };
        tries = tries.saturating_add(1);
        let sent = Instant::now();
        let outcome = try_once(per_try).await.judged(sent.elapsed(), per_try);
        let retried = retry.retries > 0 && is_retried(&retry.on, &outcome);
        let end = |outcome: Outcome, unknown: Option<Outcome>, throttled: bool| {
            let outcome = match (unknown, &outcome) {
                (Some(earlier), Outcome::Status(_)) if !outcome.is_indeterminate() => earlier,
                _ => outcome,
            };
            Tried {
                outcome,
                tries,
                exhausted: retried,
                throttled,
            }
        };
        if retry.retries == 0 {
            return end(outcome, None, false);
        }
        if retried {
            throttle.failed();
        } else {
            throttle.answered();
        }
        if !retried || tries > retry.retries {
            return end(outcome, unknown, false);
        }
        if !throttle.allows() {
            return end(outcome, unknown, true);
        }
        let pause = retry.backoff.ceiling(tries).mul_f64(rand::random::<f64>());
        // No time left for another try after the pause: this answer stands.
        if pause >= left(Instant::now()) {
            return end(outcome, unknown, false);
        }
        if unknown.is_none() && outcome.is_indeterminate() {
            unknown = Some(outcome);
        }
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests;
