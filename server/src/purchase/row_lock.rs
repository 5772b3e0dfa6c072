//! The original's "DB row locking": lock the stock row, check, spend the latency, update,
//! unlock. Correct across replicas (the lock is the database's), serialised like the mutex.

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError};

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Purchase, StoreError> {
    store.purchase_locked(order, latency).await
}
