//! How the virtual users retry a purchase, checked here for every way a plan is made: how many
//! times (`--retries`), on which answers (`--retry-on`), how long they back off in between
//! (`--retry-backoff`), the overall deadline of one request (`--deadline`) and the retry budget
//! (`--retry-budget`, gRPC's retry throttling). Every try of a request carries the same request
//! id. The client that applies it is `crate::checkout::retry`.

use std::time::Duration;

use tonic::Code;

/// Most retries of one request.
pub const MAX_RETRIES: u32 = 100;
/// Longest backoff between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest overall deadline of one request.
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);
/// Most tokens of the retry budget.
pub const MAX_BUDGET_TOKENS: u32 = 1_000_000;

/// The default of `--retry-on`.
pub const DEFAULT_RETRY_ON: &str = "unavailable,timeout";
/// The default of `--retry-backoff`: gRPC's usual initial and maximum backoff.
pub const DEFAULT_BACKOFF: &str = "50ms..2s";
/// The default of `--retry-budget`: gRPC's example throttling (10 tokens, 0.1 back per success).
pub const DEFAULT_BUDGET: &str = "10:0.1";
/// Each backoff is this many times the one before (before jitter), up to the maximum.
pub const BACKOFF_MULTIPLIER: u32 = 2;

/// Why retry settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("--retries must be at most {MAX_RETRIES}, got {0}")]
    Retries(u32),
    #[error(
        "--retry-on: `{0}` is neither a gRPC status name (unavailable, deadline_exceeded, internal, ...) nor `connect` or `timeout`"
    )]
    RetryOn(String),
    #[error("--retry-on: OK is an answer, not a failure to retry")]
    RetryOnOk,
    #[error("--retry-backoff: {0} (expected INITIAL..MAX such as 50ms..2s)")]
    Backoff(String),
    #[error("--deadline must be above zero and at most 1h, got {0:?}")]
    Deadline(Duration),
    #[error("--retry-budget: {0} (expected TOKENS:RATIO such as 10:0.1)")]
    Budget(String),
}

/// The answers that are retried: gRPC status codes, and the per-try deadline expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// Bit `c` set: status code `c` is retried.
    codes: u32,
    /// The per-try deadline expired with no answer (`timeout`).
    pub timeout: bool,
}

impl RetryOn {
    /// Parses a list such as `unavailable,deadline_exceeded,timeout`. `connect` is a failed or
    /// lost connection, which every client here reports as UNAVAILABLE: the same class.
    pub fn parse(raw: &str) -> Result<Self, RetryError> {
        let mut on = RetryOn {
            codes: 0,
            timeout: false,
        };
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let name = item.to_ascii_lowercase().replace('-', "_");
            match name.as_str() {
                "timeout" => on.timeout = true,
                "connect" => on.codes |= 1 << Code::Unavailable as u32,
                "ok" => return Err(RetryError::RetryOnOk),
                _ => {
                    let code = flashsale::status::by_name(&name.to_ascii_uppercase())
                        .ok_or_else(|| RetryError::RetryOn(item.to_string()))?;
                    on.codes |= 1 << code as u32;
                }
            }
        }
        Ok(on)
    }

    /// Whether status `code` is retried.
    pub fn code(&self, code: Code) -> bool {
        (code as u32) < 32 && self.codes & (1 << code as u32) != 0
    }

    /// The list back, as `--retry-on` takes it.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (1..=16)
            .map(Code::from)
            .filter(|c| self.code(*c))
            .map(|c| crate::outcome::code_name(c as i32).to_ascii_lowercase())
            .collect();
        if self.timeout {
            names.push("timeout".into());
        }
        names
    }
}

impl Default for RetryOn {
    fn default() -> Self {
        // The default list always parses.
        Self::parse(DEFAULT_RETRY_ON).unwrap_or(RetryOn {
            codes: 1 << Code::Unavailable as u32,
            timeout: true,
        })
    }
}

/// Exponential backoff: before try `n + 1` (n ≥ 1) the client waits a uniformly random time in
/// `[0, min(max, initial × 2^(n-1))]` (gRPC's "full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// Parses `INITIAL..MAX`, e.g. `50ms..2s` (a single duration: no growth).
    pub fn parse(raw: &str) -> Result<Self, RetryError> {
        let duration = |s: &str| {
            humantime::parse_duration(s.trim())
                .map_err(|e| RetryError::Backoff(format!("{s}: {e}")))
        };
        let (initial, max) = match raw.split_once("..") {
            Some((a, b)) => (duration(a)?, duration(b)?),
            None => {
                let d = duration(raw)?;
                (d, d)
            }
        };
        if initial.is_zero() || initial > max || max > MAX_BACKOFF {
            return Err(RetryError::Backoff(format!(
                "need 0 < INITIAL <= MAX <= 60s, got {initial:?}..{max:?}"
            )));
        }
        Ok(Backoff { initial, max })
    }

    /// The most the client waits before try `try_no + 1` (`try_no` ≥ 1 tries done).
    pub fn ceiling(&self, try_no: u32) -> Duration {
        let doublings = try_no.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(BACKOFF_MULTIPLIER.saturating_pow(doublings))
            .min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

/// gRPC's retry throttling: a bucket of `tokens` tokens, full at the start; every try answered
/// with a retried status takes one, every other answer gives back `ratio`; retries are allowed
/// only while more than half the tokens are left. With the default 10:0.1 retries stop once
/// more than about 1 try in 11 (0.1 / 1.1) keeps failing, and resume as answers come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub tokens: u32,
    pub ratio: f64,
}

impl Budget {
    /// Parses `TOKENS:RATIO`, e.g. `10:0.1`.
    pub fn parse(raw: &str) -> Result<Self, RetryError> {
        let (tokens, ratio) = raw
            .split_once(':')
            .ok_or_else(|| RetryError::Budget(raw.to_string()))?;
        let tokens: u32 = tokens
            .trim()
            .parse()
            .map_err(|_| RetryError::Budget(format!("tokens `{tokens}`")))?;
        let ratio: f64 = ratio
            .trim()
            .parse()
            .map_err(|_| RetryError::Budget(format!("ratio `{ratio}`")))?;
        if tokens == 0 || tokens > MAX_BUDGET_TOKENS || !(ratio > 0.0 && ratio <= 1.0) {
            return Err(RetryError::Budget(format!(
                "need 1 <= TOKENS <= {MAX_BUDGET_TOKENS} and 0 < RATIO <= 1, got {raw}"
            )));
        }
        Ok(Budget { tokens, ratio })
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            tokens: 10,
            ratio: 0.1,
        }
    }
}

/// A run's retry policy. The default retries nothing: one try per request, as without it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Retry {
    /// Tries after the first (0: none).
    pub retries: u32,
    pub on: RetryOn,
    pub backoff: Backoff,
    /// Overall deadline of one request, all its tries and backoffs included (`None`: tries ×
    /// the per-try timeout + the backoffs' ceilings).
    pub deadline: Option<Duration>,
    pub budget: Budget,
}

impl Retry {
    /// Checks the numbers a plan may carry.
    pub fn validate(&self) -> Result<(), RetryError> {
        if self.retries > MAX_RETRIES {
            return Err(RetryError::Retries(self.retries));
        }
        if let Some(d) = self.deadline
            && (d.is_zero() || d > MAX_DEADLINE)
        {
            return Err(RetryError::Deadline(d));
        }
        Ok(())
    }

    /// The overall deadline of a request whose tries each have `timeout`.
    pub fn deadline_for(&self, timeout: Duration) -> Duration {
        self.deadline.unwrap_or_else(|| {
            let tries = self.retries.saturating_add(1);
            let backoffs = (1..tries)
                .map(|n| self.backoff.ceiling(n))
                .fold(Duration::ZERO, Duration::saturating_add);
            timeout.saturating_mul(tries).saturating_add(backoffs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flags() {
        let on = RetryOn::parse("unavailable, DEADLINE_EXCEEDED,internal,timeout").unwrap();
        assert!(on.code(Code::Unavailable) && on.code(Code::DeadlineExceeded));
        assert!(on.code(Code::Internal) && on.timeout && !on.code(Code::Aborted));
        assert_eq!(
            on.names(),
            ["deadline_exceeded", "internal", "unavailable", "timeout"]
        );
        assert!(RetryOn::parse("connect").unwrap().code(Code::Unavailable));
        assert_eq!(RetryOn::default().names(), ["unavailable", "timeout"]);
        assert!(matches!(
            RetryOn::parse("nope"),
            Err(RetryError::RetryOn(_))
        ));
        assert_eq!(RetryOn::parse("ok"), Err(RetryError::RetryOnOk));

        let b = Backoff::parse("50ms..2s").unwrap();
        assert_eq!(
            (b.initial, b.max),
            (Duration::from_millis(50), Duration::from_secs(2))
        );
        assert_eq!(b.ceiling(1), Duration::from_millis(50));
        assert_eq!(b.ceiling(3), Duration::from_millis(200));
        assert_eq!(b.ceiling(40), Duration::from_secs(2));
        assert_eq!(
            Backoff::parse("1s").unwrap().ceiling(5),
            Duration::from_secs(1)
        );
        for bad in ["0s..1s", "2s..1s", "1s..2m", "x..1s", ""] {
            assert!(Backoff::parse(bad).is_err(), "{bad}");
        }

        assert_eq!(Budget::parse("10:0.1").unwrap(), Budget::default());
        for bad in ["10", "0:0.1", "10:0", "10:1.5", "10:nan", "x:0.1"] {
            assert!(Budget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_deadline_covers_every_try_and_backoff() {
        let retry = Retry {
            retries: 3,
            ..Retry::default()
        };
        // 4 tries of 1 s, backoffs of at most 50 + 100 + 200 ms.
        assert_eq!(
            retry.deadline_for(Duration::from_secs(1)),
            Duration::from_millis(4350)
        );
        assert_eq!(
            Retry::default().deadline_for(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(retry.validate().is_ok());
        let too_many = Retry {
            retries: 101,
            ..Retry::default()
        };
        assert_eq!(too_many.validate(), Err(RetryError::Retries(101)));
        let zero = Retry {
            deadline: Some(Duration::ZERO),
            ..Retry::default()
        };
        assert!(zero.validate().is_err());
    }
}
