//! How the retries of a run went (`--retries`): tries sent, requests retried, what those ended
//! in, and retries the budget refused. Each load thread counts its own; merged once.

use serde::Serialize;

/// Counts of the retry layer ([`crate::checkout::retry`]); all zero without `--retries`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TryCounts {
    /// Tries sent, first tries included (equal to the requests when nothing was retried).
    pub tries: u64,
    /// Requests tried more than once.
    pub retried: u64,
    /// Of those, requests that ended PURCHASED (the retry worked).
    pub retried_purchased: u64,
    /// Requests whose last answer was one to retry, not retried: out of retries or of time.
    pub gave_up: u64,
    /// Requests whose retry the budget refused (`--retry-budget`).
    pub throttled: u64,
    /// Most tries of one request.
    pub max_tries: u32,
}

impl TryCounts {
    /// One request that took `tries` tries and ended `purchased`; `exhausted`: its last answer
    /// was one to retry; `throttled`: the budget refused its retry.
    pub fn record(&mut self, tries: u32, purchased: bool, exhausted: bool, throttled: bool) {
        self.tries = self.tries.saturating_add(u64::from(tries));
        if tries > 1 {
            self.retried += 1;
            self.retried_purchased += u64::from(purchased);
        }
        self.gave_up += u64::from(exhausted && !throttled);
        self.throttled += u64::from(throttled);
        self.max_tries = self.max_tries.max(tries);
    }

    /// Adds `other` into `self` (saturating: these are reported, never audited).
    pub fn merge(&mut self, other: &TryCounts) {
        self.tries = self.tries.saturating_add(other.tries);
        self.retried = self.retried.saturating_add(other.retried);
        self.retried_purchased = self
            .retried_purchased
            .saturating_add(other.retried_purchased);
        self.gave_up = self.gave_up.saturating_add(other.gave_up);
        self.throttled = self.throttled.saturating_add(other.throttled);
        self.max_tries = self.max_tries.max(other.max_tries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_merges() {
        let mut a = TryCounts::default();
        a.record(1, true, false, false);
        a.record(3, true, false, false);
        a.record(6, false, true, false);
        a.record(2, false, true, true);
        let mut b = TryCounts::default();
        b.record(4, false, false, false);
        a.merge(&b);
        assert_eq!(
            a,
            TryCounts {
                tries: 16,
                retried: 4,
                retried_purchased: 1,
                gave_up: 1,
                throttled: 1,
                max_tries: 6,
            }
        );
    }
}
