//! Replacing a lost connection for all the users that share it (as tonic's channel
//! reconnects), with exponential backoff and jitter (issue #25): a target that accepts
//! connections and sends GOAWAY at once, or refuses them, is dialled again after
//! [`FIRST_BACKOFF`], then twice as long each time up to [`MAX_BACKOFF`] (each delay drawn
//! between half and all of it), until a connection carries a reply. A connection that carried
//! one is replaced at once.
//!
//! A call that finds the connection gone while a redial must wait waits at most its
//! `patience` (half its deadline, so that waiting never turns into a timeout) and at most
//! [`MAX_CALL_WAIT`], then fails as UNAVAILABLE: nothing was sent. Refused attempts so keep
//! finishing several times a second, which is what the run's reachability watch
//! (`run::reachability`, every 250 ms) reads to notice a target that is gone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tonic::Code;

use super::conn;
use super::state::Handle;

/// The delay before the first redial of a connection that carried no reply.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay between two dials.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest a call waits for the backoff before it fails as UNAVAILABLE.
pub const MAX_CALL_WAIT: Duration = Duration::from_millis(200);

/// What the users of one connection share to replace it once it is gone.
pub struct Redial {
    pub authority: String,
    pub connect_timeout: Duration,
    current: tokio::sync::Mutex<Current>,
    /// Calls retried because the server never processed their stream (REFUSED_STREAM, or
    /// above a GOAWAY's last stream id).
    pub retried: AtomicU64,
    /// Connections dialled after the first.
    pub redials: AtomicU64,
}

struct Current {
    generation: u64,
    conn: Handle,
    /// Consecutive connections (or failed dials) that carried no reply.
    failures: u32,
    /// Whether `conn`, found gone, was counted in `failures` yet.
    counted: bool,
    last_dial: Instant,
    /// When the next dial may start (the last dial and a delay drawn once per failure).
    not_before: Instant,
}

impl Redial {
    /// The users' shared state around their first connection `conn`.
    pub fn new(authority: &str, connect_timeout: Duration, conn: Handle) -> Self {
        Self {
            authority: authority.to_string(),
            connect_timeout,
            current: tokio::sync::Mutex::new(Current {
                generation: 0,
                conn,
                failures: 0,
                counted: false,
                last_dial: Instant::now(),
                not_before: Instant::now(),
            }),
            retried: AtomicU64::new(0),
            redials: AtomicU64::new(0),
        }
    }

    /// The connection that replaces `generation`, found gone: the current one if another user
    /// replaced it already, else a new one dialled once the backoff allows, waiting at most
    /// `patience` (and [`MAX_CALL_WAIT`]) for it. UNAVAILABLE when none can be had.
    pub async fn replace(
        &self,
        generation: u64,
        patience: Duration,
    ) -> Result<(u64, Handle), Code> {
        let give_up = Instant::now() + patience.min(MAX_CALL_WAIT);
        loop {
            let mut current = self.current.lock().await;
            if current.generation != generation {
                return Ok((current.generation, current.conn.clone()));
            }
            if !current.counted {
                let replied = current.conn.lock().stats.replied;
                current.failures = if replied {
                    0
                } else {
                    current.failures.saturating_add(1)
                };
                current.counted = true;
                current.not_before = current.last_dial + delay(current.failures);
            }
            let not_before = current.not_before;
            if Instant::now() < not_before {
                drop(current);
                if not_before > give_up {
                    tokio::time::sleep_until(give_up).await;
                    return Err(Code::Unavailable);
                }
                tokio::time::sleep_until(not_before).await;
                continue;
            }
            current.last_dial = Instant::now();
            self.redials.fetch_add(1, Ordering::Relaxed);
            match conn::dial(&self.authority, self.connect_timeout).await {
                Ok(conn) => {
                    current.generation = current.generation.wrapping_add(1);
                    current.conn = conn;
                    current.counted = false;
                    return Ok((current.generation, current.conn.clone()));
                }
                Err(err) => {
                    current.failures = current.failures.saturating_add(1);
                    current.not_before = current.last_dial + delay(current.failures);
                    tracing::debug!(
                        %err,
                        failures = current.failures,
                        "lean connection: redial failed"
                    );
                    return Err(Code::Unavailable);
                }
            }
        }
    }
}

/// The delay after `failures` connections in a row carried no reply: none after none, then
/// [`FIRST_BACKOFF`] doubling up to [`MAX_BACKOFF`], drawn between half and all of it.
pub fn delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let full = ceiling(failures);
    rand::rng().random_range(full / 2..=full)
}

/// The upper bound of [`delay`] after `failures` (at least one) failures.
fn ceiling(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_with_jitter_up_to_the_cap() {
        assert_eq!(delay(0), Duration::ZERO);
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (7, 5000), (u32::MAX, 5000)] {
            let full = Duration::from_millis(full);
            assert_eq!(ceiling(failures), full);
            for _ in 0..20 {
                let d = delay(failures);
                assert!(d >= full / 2 && d <= full, "{failures}: {d:?}");
            }
        }
    }
}
