//! Compare-and-decrement (`atomic`, named `conditional` on PostgreSQL): the latency is spent
//! outside any critical section, then the store reserves the user's units and takes the stock
//! only if it covers the order, in one atomic step (`UPDATE .. SET stock = stock - q WHERE
//! stock >= q`). Correct across replicas; purchases overlap.
//!
//! The step also checks that the strategy is still `atomic` ([`Store::take_if_atomic`]), so the
//! safe path may run it on a guess, without reading the strategy first: `None` means the guess
//! was wrong (a Reset switched the strategy, maybe through another replica) and nothing changed.

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError};

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Option<Purchase>, StoreError> {
    latency.pass().await;
    store.take_if_atomic(order).await
}
