//! The simulated database round trip, in one place for every purchase path and every store.
//!
//! A path spends it where the application's own work would be: between the read and the write
//! of the naive paths, before the compare-and-decrement of the conditional path, and inside the
//! lock or transaction of the row-lock and serializable paths (which is why a store primitive
//! can take a [`Latency`] to spend).

use std::time::Duration;

/// How long a purchase's own work takes (the original demo's "database call").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency(pub Duration);

impl Latency {
    /// Waits the latency, as a purchase waits for its database. A zero latency does not wait
    /// at all: tokio rounds every sleep up to the next millisecond tick, which would cost ~1 ms
    /// per purchase at `--latency 0ms` (and hold the mutex strategy's lock that long).
    pub async fn pass(self) {
        if !self.0.is_zero() {
            tokio::time::sleep(self.0).await;
        }
    }
}
