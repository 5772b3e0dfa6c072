//! The in-memory store: the current [`Round`] behind an epoch lock, and the policy (per-user
//! limit, book cap). The guarded primitives (compare-and-decrement, row lock, optimistic
//! attempt) are in `memory_guarded.rs`.
//!
//! Rounds and Reset: every purchase *acts* (takes stock, reserves units, records the order)
//! inside [`MemoryStore::act`], under a read lock of the current round, after checking that
//! the round it was checked against is still the current one. A Reset swaps the round under
//! the write lock. So an act either completes in its round before the Reset, or sees the new
//! round and changes nothing (`StoreError::RoundEnded`, ABORTED). Readers do not exclude each
//! other and hold the lock only for the synchronous act, never across the simulated latency:
//! purchases of one round still overlap, and the buggy path still races on the stock.
//!
//! Request ids are deduplicated per round, as on PostgreSQL: a purchase whose request id
//! already placed an order of this round is answered that order (PURCHASED, the same order id,
//! the stock now) and takes nothing, on every path (buggy included: its check of the request
//! id is atomic with its act, only the stock check races). The index lives in the round's book
//! (`book/shard.rs`: 6–12 bytes per order with a request id, on top of the id's own bytes in
//! the book) and goes with the round on Reset. Orders past the book cap are counted, not kept,
//! so their request ids are not remembered either.

use std::sync::{Arc, PoisonError, RwLock};

use super::book::Listing;
use super::round::Round;
use super::{
    Attempt, Current, Order, OrderPage, OrderStream, Peek, Policy, Purchase, Receipt, Snapshot,
    Store, StoreError, Strategy,
};
use crate::config::ServerConfig;
use crate::latency::Latency;

/// Stock, order book and safe-path strategy of one server process.
#[derive(Debug)]
pub struct MemoryStore {
    current: RwLock<Arc<Round>>,
    /// The per-user limit and book cap of every round.
    policy: Policy,
}

impl MemoryStore {
    /// A store holding `stock` units in round 1, with `policy`'s per-user limit and book cap.
    pub fn new(stock: i64, strategy: Strategy, policy: Policy) -> Self {
        Self {
            current: RwLock::new(Arc::new(Round::new(1, stock, strategy, policy.book_cap))),
            policy,
        }
    }

    /// The store a server with `config` starts with.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self::new(config.stock, config.strategy, config.policy())
    }

    /// The strategy the safe path uses now.
    pub fn strategy(&self) -> Strategy {
        self.current().strategy
    }

    /// The per-user limit now (0: none).
    pub(super) fn limit(&self) -> u32 {
        self.policy.per_user_limit
    }

    /// The current round.
    pub(super) fn current(&self) -> Arc<Round> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The current round, if `requested` names it (0: whatever is current).
    pub(super) fn pin(&self, requested: u64) -> Result<Arc<Round>, StoreError> {
        let round = self.current();
        check_round(requested, round.number)?;
        Ok(round)
    }

    /// The current round for a purchase pinned to round `round` (0: any), or `RoundEnded` if
    /// a Reset has replaced it since the purchase saw it.
    pub(super) fn pin_acting(&self, round: u64) -> Result<Arc<Round>, StoreError> {
        let current = self.current();
        if round != 0 && round != current.number {
            return Err(StoreError::RoundEnded {
                round,
                current: current.number,
            });
        }
        Ok(current)
    }

    /// Runs `act` on the current round if it is still round `round` (0: any), with Reset held
    /// off until it returns. `act` must not block.
    pub(super) fn act<T>(
        &self,
        round: u64,
        act: impl FnOnce(&Round) -> T,
    ) -> Result<T, StoreError> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        if round != 0 && round != current.number {
            return Err(StoreError::RoundEnded {
                round,
                current: current.number,
            });
        }
        Ok(act(&current))
    }

    fn snapshot_of(&self, round: &Round) -> Snapshot {
        Snapshot {
            stock: round.stock(),
            initial_stock: round.initial,
            orders: round.book.orders(),
            units_sold: round.book.units(),
            round: round.number,
            strategy: round.strategy,
            per_user_limit: self.limit(),
            book_cap: round.book.cap(),
            book_overflow: round.book.overflow(),
        }
    }
}

/// `requested` (0: any) against the current round number.
fn check_round(requested: u64, current: u64) -> Result<(), StoreError> {
    if requested != 0 && requested != current {
        return Err(StoreError::RoundMismatch { requested, current });
    }
    Ok(())
}

#[tonic::async_trait]
impl Store for MemoryStore {
    async fn current(&self, requested: u64) -> Result<Current, StoreError> {
        let round = self.pin(requested)?;
        Ok(Current {
            round: round.number,
            strategy: round.strategy,
        })
    }

    async fn peek(&self, order: Order<'_>) -> Result<Peek, StoreError> {
        let round = self.pin(order.round)?;
        let per_user_limit = self.limit();
        Ok(Peek {
            round: round.number,
            stock: round.stock(),
            user_units: if per_user_limit == 0 {
                0
            } else {
                round.book.units_of(order.user)
            },
            per_user_limit,
        })
    }

    async fn decrement_unchecked(
        &self,
        order: Order<'_>,
        seen: &Peek,
    ) -> Result<Receipt, StoreError> {
        let track = self.limit() != 0;
        // The buggy act stays unguarded against other purchases (that is its point), but not
        // against a retry of itself: the request id is checked in the same step that takes.
        self.act(seen.round, |round| {
            let mut user = round.book.lock(order.user);
            if let Some(receipt) = round.replayed(&user, order) {
                return receipt;
            }
            let stock_after = round.take(order.quantity);
            round.place(&mut user, order, stock_after, track)
        })
    }

    async fn replayed(&self, order: Order<'_>) -> Result<Option<Receipt>, StoreError> {
        if order.request_id.is_empty() {
            return Ok(None);
        }
        let round = self.current();
        if order.round != 0 && order.round != round.number {
            return Ok(None);
        }
        Ok(round.replayed(&round.book.lock(order.user), order))
    }

    async fn compare_and_decrement(&self, order: Order<'_>) -> Result<Purchase, StoreError> {
        self.conditional(order)
    }

    async fn purchase_locked(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, StoreError> {
        self.locked(order, work).await
    }

    async fn try_serializable(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, StoreError> {
        self.optimistic(order, work).await
    }

    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError> {
        let round = {
            let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            let next = Round::new(
                current.number.saturating_add(1),
                stock,
                strategy.unwrap_or(current.strategy),
                self.policy.book_cap,
            );
            *current = Arc::new(next);
            current.clone()
        };
        Ok(self.snapshot_of(&round))
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot_of(&self.current()))
    }

    async fn list_orders(&self, round: u64, batch: usize) -> Result<OrderStream, StoreError> {
        // The write lock waits for acts in progress and holds new ones off while each shard's
        // length is read: the snapshot is exactly the orders placed before this point.
        let (number, book, ends) = {
            let current = self.current.write().unwrap_or_else(PoisonError::into_inner);
            check_round(round, current.number)?;
            (current.number, current.book.clone(), current.book.lens())
        };
        let pages = Listing::new(book, ends, batch).map(move |orders| {
            Ok(OrderPage {
                round: number,
                orders,
            })
        });
        Ok(Box::pin(tokio_stream::iter(pages)))
    }
}
