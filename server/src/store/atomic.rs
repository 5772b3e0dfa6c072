//! Compare-and-decrement: the simulated database round trip is spent outside any critical
//! section, then the stock is decremented only if it still covers the order, in one atomic
//! step (the in-memory twin of `UPDATE stock SET n = n - q WHERE n >= q`).

use super::{MemoryStore, Order, Purchase};
use std::sync::atomic::Ordering;

impl MemoryStore {
    pub(super) async fn purchase_atomic(&self, order: Order<'_>) -> Purchase {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let quantity = i64::from(order.quantity);
        match self
            .stock
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |stock| {
                (stock >= quantity).then_some(stock - quantity)
            }) {
            Ok(before) => Purchase::Purchased(self.receipt(order, before - quantity)),
            Err(stock) => Purchase::SoldOut { stock },
        }
    }
}
