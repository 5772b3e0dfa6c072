//! The stock counter and the order ledger behind one small trait, so the checkout service does
//! not care whether they live in memory (today) or in a database shared by several replicas.

mod atomic;
mod ledger;
mod memory;
mod mutex;

use std::fmt;

use flashsale::pb;

pub use ledger::{Ledger, LedgerEntry};
pub use memory::MemoryStore;

/// One order as the store sees it: already validated.
#[derive(Debug, Clone, Copy)]
pub struct Order<'a> {
    pub user: &'a str,
    pub quantity: u32,
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub order_id: String,
    /// Stock right after this order's decrement.
    pub stock_after: i64,
}

/// What a purchase attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    Purchased(Receipt),
    /// Not enough stock; nothing changed. `stock` is what the store saw.
    SoldOut {
        stock: i64,
    },
}

/// The state of the current round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub stock: i64,
    pub initial_stock: i64,
    pub orders: u64,
    pub units_sold: u64,
    pub round: u64,
    pub strategy: Strategy,
}

/// How the safe purchase path keeps the stock from going negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Strategy {
    /// Check, simulated latency and decrement under one lock (the original fix). Correct, but
    /// purchases serialise: at most one per simulated database round trip.
    Mutex,
    /// Simulated latency outside any critical section, then a compare-and-decrement that fails
    /// instead of going below zero (`UPDATE .. SET stock = stock - q WHERE stock >= q`).
    Atomic,
}

impl Strategy {
    /// The flag value: "mutex" or "atomic".
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Mutex => "mutex",
            Strategy::Atomic => "atomic",
        }
    }

    /// A `safe_strategy` field of the contract: `Ok(None)` for UNSPECIFIED, `Err(raw)` for a
    /// value the contract does not define.
    pub fn from_wire(raw: i32) -> Result<Option<Self>, i32> {
        match pb::SafeStrategy::try_from(raw) {
            Ok(pb::SafeStrategy::Unspecified) => Ok(None),
            Ok(pb::SafeStrategy::Mutex) => Ok(Some(Strategy::Mutex)),
            Ok(pb::SafeStrategy::Atomic) => Ok(Some(Strategy::Atomic)),
            Err(_) => Err(raw),
        }
    }

    /// The contract's value for `strategy`; `None` is UNSPECIFIED ("keep the current one").
    pub fn to_wire(strategy: Option<Self>) -> i32 {
        let wire = match strategy {
            None => pb::SafeStrategy::Unspecified,
            Some(Strategy::Mutex) => pb::SafeStrategy::Mutex,
            Some(Strategy::Atomic) => pb::SafeStrategy::Atomic,
        };
        wire.into()
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A store that cannot answer. The in-memory store never fails; a database-backed one will.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stock store unavailable: {0}")]
    Unavailable(String),
}

/// Stock and ledger operations used by the checkout paths.
///
/// The naive path is deliberately split in two calls (`read_stock`, then `decrement_unchecked`)
/// so that the service can wait between them without any mutual exclusion, exactly as the
/// original demo did.
#[tonic::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The stock as it is now, with no reservation.
    async fn read_stock(&self) -> Result<i64, StoreError>;
    /// Takes `order.quantity` off the stock whatever it is and records the order.
    async fn decrement_unchecked(&self, order: Order<'_>) -> Result<Receipt, StoreError>;
    /// Buys atomically with the current strategy: never sells below zero.
    async fn purchase(&self, order: Order<'_>) -> Result<Purchase, StoreError>;
    /// Starts a new round with `stock` units and an empty ledger; `strategy`, when given,
    /// becomes the safe path's strategy.
    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError>;
    /// The current round's state.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::Strategy;

    #[test]
    fn wire_round_trip() {
        for strategy in [None, Some(Strategy::Mutex), Some(Strategy::Atomic)] {
            assert_eq!(
                Strategy::from_wire(Strategy::to_wire(strategy)),
                Ok(strategy)
            );
        }
        assert_eq!(Strategy::from_wire(9), Err(9));
        assert_eq!(Strategy::Mutex.to_string(), "mutex");
    }
}
