//! The stock counter and the round's order book behind one small trait, so the checkout
//! service does not care whether they live in memory (today) or in a database shared by
//! several replicas.

mod atomic;
pub mod book;
mod latency;
mod memory;
mod mutex;
mod round;

use std::fmt;
use std::pin::Pin;

use flashsale::pb;
use tokio_stream::Stream;

pub use book::{Book, ListedOrder};
pub use latency::round_trip;
pub use memory::MemoryStore;

/// Most orders a round's book keeps by default. A flash sale places at most a few thousand
/// orders; 1M also holds a sustained benchmark run at tens of thousands of orders per second
/// for long enough to reconcile, while bounding the book to ~17 MB without request ids and
/// ~56 MB with UUID request ids (measured bytes per order: see `book`; at most ~150 MB with
/// 128-byte request ids).
pub const DEFAULT_BOOK_CAP: u64 = 1_000_000;

/// One order as the store sees it: already validated.
#[derive(Debug, Clone, Copy)]
pub struct Order<'a> {
    pub user: &'a str,
    pub quantity: u32,
    /// The client's id of this attempt; empty: none.
    pub request_id: &'a str,
    /// The round the order is for; 0: the current one.
    pub round: u64,
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub order_id: String,
    /// Stock right after this order's decrement.
    pub stock_after: i64,
    /// The round the order was placed in.
    pub round: u64,
}

/// What a purchase attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    Purchased(Receipt),
    /// Not enough stock; nothing changed. `stock` is what the store saw.
    SoldOut {
        stock: i64,
        round: u64,
    },
    /// The order would take the customer past the per-user limit; nothing changed.
    LimitReached {
        stock: i64,
        round: u64,
    },
}

impl Purchase {
    /// The round the purchase was decided in.
    pub fn round(&self) -> u64 {
        match self {
            Purchase::Purchased(receipt) => receipt.round,
            Purchase::SoldOut { round, .. } | Purchase::LimitReached { round, .. } => *round,
        }
    }
}

/// The check half of the naive purchase: what the store holds now, with no reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub round: u64,
    pub stock: i64,
    /// Units the order's user has bought in this round (0 when no limit applies).
    pub user_units: u64,
    pub per_user_limit: u32,
}

/// The store's rules, set from the server's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most units one user may buy per round; 0: no limit.
    pub per_user_limit: u32,
    /// Most orders a round's book keeps (at most `u32::MAX`).
    pub book_cap: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            per_user_limit: 0,
            book_cap: DEFAULT_BOOK_CAP,
        }
    }
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
    pub per_user_limit: u32,
    pub book_cap: u64,
    /// Orders placed after the book was full: counted, not listed.
    pub book_overflow: u64,
}

/// A slice of a round's book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub round: u64,
    pub orders: Vec<ListedOrder>,
}

/// A snapshot of a round's book, page by page, built as it is polled.
pub type OrderStream = Pin<Box<dyn Stream<Item = Result<OrderPage, StoreError>> + Send>>;

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

/// A store that cannot answer, or an order for another round than the current one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stock store unavailable: {0}")]
    Unavailable(String),
    #[error("request for round {requested}, but round {current} is the current round")]
    RoundMismatch { requested: u64, current: u64 },
    #[error(
        "round {round} ended while this purchase was in flight (a reset started round \
         {current}); nothing was bought"
    )]
    RoundEnded { round: u64, current: u64 },
}

/// Stock and order-book operations used by the checkout paths.
///
/// The naive path is deliberately split in two calls (`peek`, then `decrement_unchecked`)
/// so that the service can wait between them without any mutual exclusion, exactly as the
/// original demo did.
///
/// Rounds: an `Order` for a round other than the current one (`round` 0: any) is refused with
/// `RoundMismatch` and changes nothing; an order whose round ends (Reset) before it acts is
/// refused with `RoundEnded` and changes nothing in any round.
#[tonic::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The check half of the naive path: the round, its stock and the user's units now.
    async fn peek(&self, order: Order<'_>) -> Result<Peek, StoreError>;
    /// Takes `order.quantity` off the stock whatever it is, adds it to the user's units
    /// whatever the limit, and records the order.
    async fn decrement_unchecked(&self, order: Order<'_>) -> Result<Receipt, StoreError>;
    /// Buys atomically with the current strategy: never sells below zero, never past the
    /// per-user limit. The limit is checked first: a customer at the limit hears
    /// `LimitReached` whatever the stock, and a refused order never touches the stock.
    async fn purchase(&self, order: Order<'_>) -> Result<Purchase, StoreError>;
    /// Starts a new round with `stock` units, an empty book and no per-user totals;
    /// `strategy`, when given, becomes the safe path's strategy.
    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError>;
    /// The current round's state.
    async fn snapshot(&self) -> Result<Snapshot, StoreError>;
    /// A snapshot of round `round`'s book (0: the current round), in sequence order, in pages
    /// of at most `batch` orders. Only the current round can be listed.
    async fn list_orders(&self, round: u64, batch: usize) -> Result<OrderStream, StoreError>;
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
