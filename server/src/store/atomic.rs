//! Compare-and-decrement: the simulated database round trip is spent outside any critical
//! section, then the customer's units are reserved (refused past the per-user limit) and the
//! stock is decremented only if it still covers the order, in one atomic step (the in-memory
//! twin of `UPDATE stock SET n = n - q WHERE n >= q`); a failed decrement gives the
//! reservation back.

use super::latency::round_trip;
use super::{MemoryStore, Order, Purchase, StoreError};

impl MemoryStore {
    pub(super) async fn purchase_atomic(
        &self,
        round: u64,
        order: Order<'_>,
    ) -> Result<Purchase, StoreError> {
        round_trip(self.latency).await;
        let limit = self.limit();
        self.act(round, |current| {
            if !current.book.reserve(order.user, order.quantity, limit) {
                return Purchase::LimitReached {
                    stock: current.stock(),
                    round,
                };
            }
            match current.take_if_available(order.quantity) {
                Ok(stock_after) => Purchase::Purchased(current.place(order, stock_after, false)),
                Err(stock) => {
                    current.book.release(order.user, order.quantity, limit);
                    Purchase::SoldOut { stock, round }
                }
            }
        })
    }
}
