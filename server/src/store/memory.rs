//! The in-memory store: an atomic stock counter, the round's bookkeeping and the ledger.
//! The safe purchase dispatches to the strategy chosen for the round (`mutex.rs`, `atomic.rs`).

use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use super::{Ledger, Order, Purchase, Receipt, Snapshot, Store, StoreError, Strategy};

/// Stock, ledger and safe-path strategy of one server process.
#[derive(Debug)]
pub struct MemoryStore {
    pub(super) stock: AtomicI64,
    initial: AtomicI64,
    round: AtomicU64,
    strategy: AtomicU8,
    /// Simulated database round trip spent by the safe strategies.
    pub(super) latency: Duration,
    /// Held by the mutex strategy across check, latency and decrement.
    pub(super) lock: tokio::sync::Mutex<()>,
    pub(super) ledger: Ledger,
}

impl MemoryStore {
    /// A store holding `stock` units in round 1.
    pub fn new(stock: i64, strategy: Strategy, latency: Duration) -> Self {
        Self {
            stock: AtomicI64::new(stock),
            initial: AtomicI64::new(stock),
            round: AtomicU64::new(1),
            strategy: AtomicU8::new(encode(strategy)),
            latency,
            lock: tokio::sync::Mutex::new(()),
            ledger: Ledger::default(),
        }
    }

    /// The ledger of the current round.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The strategy the safe path uses now.
    pub fn strategy(&self) -> Strategy {
        decode(self.strategy.load(Ordering::Relaxed))
    }

    /// Takes the units and records the order: the "act" of every path.
    pub(super) fn take(&self, order: Order<'_>) -> Receipt {
        let stock_after = self
            .stock
            .fetch_sub(i64::from(order.quantity), Ordering::AcqRel)
            - i64::from(order.quantity);
        self.receipt(order, stock_after)
    }

    /// Records an order whose units were already taken off the stock.
    pub(super) fn receipt(&self, order: Order<'_>, stock_after: i64) -> Receipt {
        let seq = self.ledger.record(order.user, order.quantity);
        let round = self.round.load(Ordering::Relaxed);
        Receipt {
            order_id: format!("r{round}-{seq}"),
            stock_after,
        }
    }

    fn snapshot_now(&self) -> Snapshot {
        Snapshot {
            stock: self.stock.load(Ordering::Acquire),
            initial_stock: self.initial.load(Ordering::Relaxed),
            orders: self.ledger.orders(),
            units_sold: self.ledger.units(),
            round: self.round.load(Ordering::Relaxed),
            strategy: self.strategy(),
        }
    }
}

#[tonic::async_trait]
impl Store for MemoryStore {
    async fn read_stock(&self) -> Result<i64, StoreError> {
        Ok(self.stock.load(Ordering::Acquire))
    }

    async fn decrement_unchecked(&self, order: Order<'_>) -> Result<Receipt, StoreError> {
        Ok(self.take(order))
    }

    async fn purchase(&self, order: Order<'_>) -> Result<Purchase, StoreError> {
        Ok(match self.strategy() {
            Strategy::Mutex => self.purchase_mutex(order).await,
            Strategy::Atomic => self.purchase_atomic(order).await,
        })
    }

    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError> {
        // Taking the mutex strategy's lock lets an in-flight locked purchase finish first.
        let _guard = self.lock.lock().await;
        if let Some(strategy) = strategy {
            self.strategy.store(encode(strategy), Ordering::Relaxed);
        }
        self.ledger.clear();
        self.initial.store(stock, Ordering::Relaxed);
        self.stock.store(stock, Ordering::Release);
        self.round.fetch_add(1, Ordering::Relaxed);
        Ok(self.snapshot_now())
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot_now())
    }
}

fn encode(strategy: Strategy) -> u8 {
    match strategy {
        Strategy::Mutex => 0,
        Strategy::Atomic => 1,
    }
}

fn decode(raw: u8) -> Strategy {
    if raw == 0 {
        Strategy::Mutex
    } else {
        Strategy::Atomic
    }
}
