//! The naive purchase of the original demo: check (read stock and the user's units), spend the
//! latency, then act with no guard at all. Nothing stops other calls from passing the same
//! checks in the meantime: oversell (and the per-user limit raced past). The act only lands in
//! the round the check saw.

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError, book};

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Purchase, StoreError> {
    let seen = store.peek(order).await?;
    if !book::within_limit(seen.user_units, order.quantity, seen.per_user_limit) {
        return Ok(Purchase::LimitReached {
            stock: seen.stock,
            round: seen.round,
        });
    }
    if seen.stock < i64::from(order.quantity) {
        return Ok(Purchase::SoldOut {
            stock: seen.stock,
            round: seen.round,
        });
    }
    latency.pass().await;
    let order = Order {
        round: seen.round,
        ..order
    };
    Ok(Purchase::Purchased(
        store.decrement_unchecked(order, &seen).await?,
    ))
}
