//! The phases of a shutdown, shared between the serve loop and every call in flight.
//!
//! `Serving` → `Draining` (a signal came: no new connections, health NOT_SERVING, health
//! watches end) → `Closing` (the grace period is over: every call or stream still open is
//! ended with `UNAVAILABLE`).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// Where a shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Serving,
    Draining,
    Closing,
}

/// Broadcasts the shutdown phase.
#[derive(Debug, Clone)]
pub struct Drain {
    tx: Arc<watch::Sender<Phase>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Phase::Serving)),
        }
    }

    /// Moves forward to `phase` (never back).
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|now| {
            let later = phase > *now;
            if later {
                *now = phase;
            }
            later
        });
    }

    pub fn phase(&self) -> Phase {
        *self.tx.borrow()
    }

    /// Resolves once `phase` is reached.
    pub fn reached(&self, phase: Phase) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|now| *now >= phase).await;
        }
    }
}
