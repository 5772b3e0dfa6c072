//! Compare-and-decrement (`atomic`, named `conditional` on PostgreSQL): the latency is spent
//! outside any critical section, then the store reserves the user's units and takes the stock
//! only if it covers the order, in one atomic step (`UPDATE .. SET stock = stock - q WHERE
//! stock >= q`). Correct across replicas; purchases overlap.

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError};

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Purchase, StoreError> {
    latency.pass().await;
    store.compare_and_decrement(order).await
}
