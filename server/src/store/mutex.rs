//! The original fix: check, simulated database latency and decrement under one lock (per
//! round). Never oversells nor passes the per-user limit; purchases serialise, so throughput
//! is capped at one per round trip.

use std::sync::Arc;

use super::book::within_limit;
use super::latency::round_trip;
use super::round::Round;
use super::{MemoryStore, Order, Purchase, StoreError};

impl MemoryStore {
    pub(super) async fn purchase_mutex(
        &self,
        round: Arc<Round>,
        order: Order<'_>,
    ) -> Result<Purchase, StoreError> {
        let _guard = round.lock.lock().await;
        let limit = self.limit();
        let stock = round.stock();
        // Limit first, then stock: see `Store::purchase`.
        if limit != 0 && !within_limit(round.book.units_of(order.user), order.quantity, limit) {
            return Ok(Purchase::LimitReached {
                stock,
                round: round.number,
            });
        }
        if stock < i64::from(order.quantity) {
            return Ok(Purchase::SoldOut {
                stock,
                round: round.number,
            });
        }
        round_trip(self.latency).await;
        self.act(round.number, |current| {
            let stock_after = current.take(order.quantity);
            Purchase::Purchased(current.place(order, stock_after, limit != 0))
        })
    }
}
