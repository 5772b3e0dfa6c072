//! The simulated database round trip, in one place for every purchase path.

use std::time::Duration;

/// Waits `latency`, as a purchase waits for its database. A zero latency does not wait at
/// all: tokio rounds every sleep up to the next millisecond tick, which would cost ~1 ms per
/// purchase at `--latency 0ms` (and hold the mutex strategy's lock that long).
pub async fn round_trip(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}
