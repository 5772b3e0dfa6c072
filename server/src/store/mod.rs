//! What a store *is*: the stock of the current round, its order book and the per-user totals,
//! behind a trait of primitives ([`Store`]). How a purchase *uses* them lives in
//! `crate::purchase`, one file per path, so a store is written once and every path works on it:
//! in memory ([`MemoryStore`], one process) or in PostgreSQL (`postgres`, shared by replicas).

pub mod book;
mod memory;
mod memory_guarded;

pub mod postgres;
mod round;

use std::fmt;
use std::pin::Pin;

use flashsale::pb;
use tokio_stream::Stream;

pub use book::{Book, ListedOrder};
pub use memory::MemoryStore;
pub use postgres::{BatchFault, Batching, PgError, PgSettings, PgStore};

use crate::latency::Latency;

/// Most orders a round's book keeps by default. A flash sale places at most a few thousand
/// orders; 1M also holds a sustained benchmark run at tens of thousands of orders per second
/// for long enough to reconcile, while bounding the book to ~17 MB without request ids and
/// ~65 MB with UUID request ids (measured bytes per order: see `book`; at most ~150 MB with
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
    /// Check, simulated latency and decrement under one process-local lock (the original
    /// fix). Correct with one server process, but purchases serialise; with several replicas
    /// on one database it oversells (each replica's lock protects nothing in the others).
    Mutex,
    /// Simulated latency outside any critical section, then a compare-and-decrement that fails
    /// instead of going below zero (`UPDATE .. SET stock = stock - q WHERE stock >= q`).
    /// Also accepted as `conditional`, its name on PostgreSQL.
    #[value(alias = "conditional")]
    Atomic,
    /// Lock the stock (`SELECT .. FOR UPDATE`), spend the latency, update: correct across
    /// replicas, serialised like the mutex.
    RowLock,
    /// Read, latency, write back in an isolated attempt (SERIALIZABLE on PostgreSQL, a
    /// compare-and-swap in memory), retried a bounded number of times when another purchase
    /// wrote in between.
    Serializable,
    /// Purchases arriving within a short window (`--batch-window`, up to `--batch-size`) are
    /// applied together: on PostgreSQL by one conditional statement and one commit, in arrival
    /// order, each buyer answered with its own outcome (`postgres/batch.rs`); in memory each
    /// one by a compare-and-decrement. Correct across replicas.
    Batched,
}

impl Strategy {
    /// The flag value: "mutex", "atomic", "row-lock", "serializable" or "batched".
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Mutex => "mutex",
            Strategy::Atomic => "atomic",
            Strategy::RowLock => "row-lock",
            Strategy::Serializable => "serializable",
            Strategy::Batched => "batched",
        }
    }

    /// The flag value back to the strategy (the stores keep it as text).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Strategy::Mutex,
            Strategy::Atomic,
            Strategy::RowLock,
            Strategy::Serializable,
            Strategy::Batched,
        ]
        .into_iter()
        .find(|s| s.name() == name || (name == "conditional" && *s == Strategy::Atomic))
    }

    /// A `safe_strategy` field of the contract: `Ok(None)` for UNSPECIFIED, `Err(raw)` for a
    /// value the contract does not define.
    pub fn from_wire(raw: i32) -> Result<Option<Self>, i32> {
        match pb::SafeStrategy::try_from(raw) {
            Ok(pb::SafeStrategy::Unspecified) => Ok(None),
            Ok(pb::SafeStrategy::Mutex) => Ok(Some(Strategy::Mutex)),
            Ok(pb::SafeStrategy::Atomic) => Ok(Some(Strategy::Atomic)),
            Ok(pb::SafeStrategy::RowLock) => Ok(Some(Strategy::RowLock)),
            Ok(pb::SafeStrategy::Serializable) => Ok(Some(Strategy::Serializable)),
            Ok(pb::SafeStrategy::Batched) => Ok(Some(Strategy::Batched)),
            Err(_) => Err(raw),
        }
    }

    /// The contract's value for `strategy`; `None` is UNSPECIFIED (a Reset then uses the
    /// server's configured strategy: [`crate::CheckoutService`]).
    pub fn to_wire(strategy: Option<Self>) -> i32 {
        let wire = match strategy {
            None => pb::SafeStrategy::Unspecified,
            Some(Strategy::Mutex) => pb::SafeStrategy::Mutex,
            Some(Strategy::Atomic) => pb::SafeStrategy::Atomic,
            Some(Strategy::RowLock) => pb::SafeStrategy::RowLock,
            Some(Strategy::Serializable) => pb::SafeStrategy::Serializable,
            Some(Strategy::Batched) => pb::SafeStrategy::Batched,
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
    /// Nothing was written: the store could not be reached, or failed before anything that
    /// could commit a change was sent (UNAVAILABLE: a retry is safe).
    #[error("stock store unavailable: {0}")]
    Unavailable(String),
    /// The store lost contact while a purchase's commit was in flight and could not learn
    /// afterwards whether it happened (PostgreSQL, `postgres/in_doubt.rs`): it may or may not
    /// have been applied. Answered UNKNOWN, which clients and audits treat as indeterminate.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    #[error("request for round {requested}, but round {current} is the current round")]
    RoundMismatch { requested: u64, current: u64 },
    #[error(
        "round {round} ended while this purchase was in flight (a reset started round \
         {current}); nothing was bought"
    )]
    RoundEnded { round: u64, current: u64 },
    /// The database gave up on this transaction (a serialization failure or a deadlock);
    /// nothing changed and a retry may succeed.
    #[error("transaction aborted by the database: {0}")]
    Conflict(String),
    /// The call cannot run on the sale as it is set up (e.g. a naive path on a round whose
    /// stock is split over shards); nothing changed, retrying will not help.
    #[error("{0}")]
    Unsupported(String),
    /// The purchase's deadline passed before the store applied it (a batch that had not run
    /// yet): nothing was written.
    #[error("deadline exceeded before the purchase was applied: {0}; nothing was bought")]
    DeadlineExceeded(String),
}

/// The current round and the strategy its safe path uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    pub round: u64,
    pub strategy: Strategy,
}

/// One isolated read-latency-write attempt (the serializable path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Decided: bought, sold out or at the limit.
    Done(Purchase),
    /// Another purchase wrote what this one read; nothing changed, try again.
    Conflict,
}

/// The primitives every purchase path is built from (`crate::purchase`).
///
/// Each primitive that places an order takes the stock, records the order (the book) and, while
/// a per-user limit applies, the user's units, as one atomic step of the store: a database can
/// only keep those consistent inside one transaction, so they are not separate calls.
///
/// Rounds: an `Order` for a round other than the current one (`round` 0: any) is refused with
/// `RoundMismatch` and changes nothing; an order whose round ends (Reset) before it acts is
/// refused with `RoundEnded` and changes nothing in any round. The paths pin `order.round` to
/// the round [`Store::current`] or [`Store::peek`] saw.
#[tonic::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current round and its strategy; `RoundMismatch` if `requested` (0: any) is not it.
    async fn current(&self, requested: u64) -> Result<Current, StoreError>;
    /// Reads the round, its stock and the user's units (the "check" of check-then-act).
    async fn peek(&self, order: Order<'_>) -> Result<Peek, StoreError>;
    /// The "act" of check-then-act, with no check: takes `order.quantity` off the stock,
    /// adds it to the user's units whatever the limit, and records the order. A store of rows
    /// writes back what the caller read (`seen.stock - q`: lost updates, as an application that
    /// computes the new value itself); the memory store subtracts from its live counter (the
    /// stock goes negative). Either way the book gets every order: oversell.
    async fn decrement_unchecked(
        &self,
        order: Order<'_>,
        seen: &Peek,
    ) -> Result<Receipt, StoreError>;
    /// The order a retry of `order` would be answered: the order its request id already placed
    /// in round `order.round` (0: the current one), if the store remembers request ids cheaply
    /// (the memory store). Every path asks first, so a retry of a placed request is answered its
    /// order even once the stock or the limit would refuse a new one. The default: `None` (a
    /// database store finds replays in the statement that places: `postgres`). Its placing
    /// primitives must check again atomically; this is only the early answer.
    async fn replayed(&self, order: Order<'_>) -> Result<Option<Receipt>, StoreError> {
        let _ = order;
        Ok(None)
    }
    /// Compare-and-decrement: the user's limit checked first, then the stock taken only if it
    /// covers the order, and the order recorded, atomically.
    async fn compare_and_decrement(&self, order: Order<'_>) -> Result<Purchase, StoreError>;
    /// The safe path's compare-and-decrement *if the current strategy is `Atomic`*, with the
    /// check of the strategy and of the round in the same atomic step: the round `order.round`
    /// (0: the current one; another than the current one: `RoundMismatch`), then as
    /// [`Store::compare_and_decrement`]. `Ok(None)`: the current strategy is another one and
    /// nothing changed. This lets the safe path skip reading the strategy before every purchase
    /// while it stays `Atomic` (a database store answers it in one round trip); the default reads
    /// it first.
    async fn take_if_atomic(&self, order: Order<'_>) -> Result<Option<Purchase>, StoreError> {
        let current = self.current(order.round).await?;
        if current.strategy != Strategy::Atomic {
            return Ok(None);
        }
        let order = Order {
            round: current.round,
            ..order
        };
        self.compare_and_decrement(order).await.map(Some)
    }
    /// The safe path's purchase *if the current strategy is `Batched`*: applied with the other
    /// purchases arriving within the batch window (a database store: one statement, one
    /// commit), as [`Store::take_if_atomic`] otherwise (`Ok(None)`: another strategy, nothing
    /// changed). A purchase whose `deadline` passes before it is applied is refused with
    /// `DeadlineExceeded` and changes nothing. The default buys it alone with
    /// [`Store::compare_and_decrement`].
    async fn purchase_batched(
        &self,
        order: Order<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<Purchase>, StoreError> {
        let current = self.current(order.round).await?;
        if current.strategy != Strategy::Batched {
            return Ok(None);
        }
        if deadline.is_some_and(|deadline| deadline <= tokio::time::Instant::now()) {
            return Err(StoreError::DeadlineExceeded(
                "before the purchase ran".into(),
            ));
        }
        let order = Order {
            round: current.round,
            ..order
        };
        self.compare_and_decrement(order).await.map(Some)
    }
    /// Locks the stock (a row lock), checks limit and stock, spends `work`, takes the stock
    /// and records the order, then unlocks: purchases of a round serialise, across replicas too.
    async fn purchase_locked(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, StoreError>;
    /// One optimistic attempt: reads, checks limit and stock, spends `work`, then writes
    /// `read - q` only if nothing was written in between (`Attempt::Conflict` otherwise).
    async fn try_serializable(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, StoreError>;
    /// Starts a new round with `stock` units, an empty book and no per-user totals;
    /// `strategy`, when given, becomes the safe path's strategy. Atomic.
    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError>;
    /// The current round's state, read from one consistent snapshot.
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
        for strategy in [
            None,
            Some(Strategy::Mutex),
            Some(Strategy::Atomic),
            Some(Strategy::RowLock),
            Some(Strategy::Serializable),
            Some(Strategy::Batched),
        ] {
            assert_eq!(
                Strategy::from_wire(Strategy::to_wire(strategy)),
                Ok(strategy)
            );
        }
        for strategy in [
            Strategy::Mutex,
            Strategy::Atomic,
            Strategy::RowLock,
            Strategy::Serializable,
            Strategy::Batched,
        ] {
            assert_eq!(Strategy::from_name(strategy.name()), Some(strategy));
        }
        assert_eq!(Strategy::from_name("conditional"), Some(Strategy::Atomic));
        assert_eq!(Strategy::from_name("nope"), None);
        assert_eq!(Strategy::from_wire(9), Err(9));
        assert_eq!(Strategy::Mutex.to_string(), "mutex");
    }
}
