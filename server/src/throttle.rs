//! Rate-limited logging: at most one line per interval per kind of event, with the number of
//! events folded into it, so a flood of refused connections or failed accepts never floods the
//! log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default interval between two log lines of one kind.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Counts events of one kind and says when one may be logged.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Records one event. `Some(n)` when it should be logged now, `n` being the events of this
    /// kind since the last line (this one included); `None` when it is folded into a later one.
    pub fn hit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.suppressed += 1;
        match state.last {
            Some(last) if now.duration_since(last) < self.interval => None,
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(LOG_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.hit(), Some(1));
        for _ in 0..1000 {
            assert_eq!(throttle.hit(), None);
        }
        let fast = Throttle::new(Duration::ZERO);
        assert_eq!(fast.hit(), Some(1));
        assert_eq!(fast.hit(), Some(1));
    }
}
