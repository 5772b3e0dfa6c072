//! Optimistic read-latency-write, retried: each attempt reads, spends the latency and writes
//! back `read - q` in isolation (SERIALIZABLE on PostgreSQL, a compare-and-swap in memory); an
//! attempt another purchase wrote under is a conflict that changed nothing and is retried after
//! a short random backoff, at most [`MAX_ATTEMPTS`] times in all. Correct across replicas; under
//! contention most attempts conflict, which the retry count shows.

use std::time::Duration;

use crate::error::CheckoutError;
use crate::latency::Latency;
use crate::store::{Attempt, Order, Store, StoreError};

use super::Outcome;

/// Attempts per purchase, the first included.
pub const MAX_ATTEMPTS: u32 = 10;

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Outcome, CheckoutError> {
    for attempt in 1..=MAX_ATTEMPTS {
        match store.try_serializable(order, latency).await {
            Ok(Attempt::Done(purchase)) => {
                return Ok(Outcome {
                    purchase,
                    retries: attempt - 1,
                });
            }
            // The database may also abort the attempt with a serialization failure or a
            // deadlock: the same conflict, seen at commit.
            Ok(Attempt::Conflict) | Err(StoreError::Conflict(_)) => {}
            Err(err) => return Err(err.into()),
        }
        tracing::trace!(
            attempt,
            user = order.user,
            "serializable conflict, retrying"
        );
        backoff(latency, attempt).await;
    }
    Err(CheckoutError::Contended {
        attempts: MAX_ATTEMPTS,
    })
}

/// A random pause of up to `attempt` × (latency + 1 ms), so that conflicting purchases spread
/// out instead of colliding again in lockstep.
async fn backoff(latency: Latency, attempt: u32) {
    let unit = latency.0.saturating_add(Duration::from_millis(1));
    let most = unit.saturating_mul(attempt);
    let pause = most.mul_f64(rand::random::<f64>());
    Latency(pause).pass().await;
}
