//! The original fix: check, simulated database latency and decrement under one lock.
//! Never oversells; purchases serialise, so throughput is capped at one per round trip.

use super::{MemoryStore, Order, Purchase};
use std::sync::atomic::Ordering;

impl MemoryStore {
    pub(super) async fn purchase_mutex(&self, order: Order<'_>) -> Purchase {
        let _guard = self.lock.lock().await;
        let stock = self.stock.load(Ordering::Acquire);
        if stock < i64::from(order.quantity) {
            return Purchase::SoldOut { stock };
        }
        // tokio rounds every sleep up to the next millisecond tick: skip a zero one, or the
        // lock would be held ~1 ms per purchase at --latency 0ms.
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Purchase::Purchased(self.take(order))
    }
}
