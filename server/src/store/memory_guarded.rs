//! The memory store's guarded primitives: compare-and-decrement (the in-memory twin of
//! `UPDATE .. SET stock = stock - q WHERE stock >= q`), the row lock (the round's lock held
//! across check, work and decrement) and the optimistic attempt (read, work, compare-and-swap
//! of the value read: the in-memory twin of a SERIALIZABLE transaction).
//!
//! Each one first looks the request id up ([`Round::replayed`](super::round::Round)) and, in
//! its atomic step, again under the user's lock of the book: a retry of a placed request is
//! answered its order, takes nothing and never places a second one.

use super::book::within_limit;
use super::{Attempt, MemoryStore, Order, Purchase, StoreError};
use crate::latency::Latency;

impl MemoryStore {
    /// Reserves the customer's units (refused past the limit), then takes the stock only if it
    /// still covers the order, in one atomic step; a failed take gives the reservation back.
    pub(super) fn conditional(&self, order: Order<'_>) -> Result<Purchase, StoreError> {
        let limit = self.limit();
        self.act(order.round, |current| {
            let round = current.number;
            let mut user = current.book.lock(order.user);
            if let Some(receipt) = current.replayed(&user, order) {
                return Purchase::Purchased(receipt);
            }
            if !user.reserve(order.quantity, limit) {
                return Purchase::LimitReached {
                    stock: current.stock(),
                    round,
                };
            }
            match current.take_if_available(order.quantity) {
                Ok(stock_after) => {
                    Purchase::Purchased(current.place(&mut user, order, stock_after, false))
                }
                Err(stock) => {
                    user.release(order.quantity, limit);
                    Purchase::SoldOut { stock, round }
                }
            }
        })
    }

    /// Check, work and decrement under the round's lock: never oversells nor passes the
    /// per-user limit; purchases serialise, at most one per `work`.
    pub(super) async fn locked(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, StoreError> {
        let round = self.pin_acting(order.round)?;
        let _guard = round.lock.lock().await;
        if let Some(receipt) = round.replayed(&round.book.lock(order.user), order) {
            return Ok(Purchase::Purchased(receipt));
        }
        let limit = self.limit();
        let stock = round.stock();
        // Limit first, then stock: see `Store::compare_and_decrement`.
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
        work.pass().await;
        self.act(round.number, |current| {
            let mut user = current.book.lock(order.user);
            if let Some(receipt) = current.replayed(&user, order) {
                return Purchase::Purchased(receipt);
            }
            let stock_after = current.take(order.quantity);
            Purchase::Purchased(current.place(&mut user, order, stock_after, limit != 0))
        })
    }

    /// Reads stock and units, spends `work`, then swaps the stock from the value read to
    /// `read - q` (and reserves the units within the limit); anything written in between
    /// makes it a conflict that changed nothing.
    pub(super) async fn optimistic(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, StoreError> {
        let round = self.pin_acting(order.round)?;
        if let Some(receipt) = round.replayed(&round.book.lock(order.user), order) {
            return Ok(Attempt::Done(Purchase::Purchased(receipt)));
        }
        let limit = self.limit();
        let stock = round.stock();
        if limit != 0 && !within_limit(round.book.units_of(order.user), order.quantity, limit) {
            return Ok(Attempt::Done(Purchase::LimitReached {
                stock,
                round: round.number,
            }));
        }
        let q = i64::from(order.quantity);
        if stock < q {
            return Ok(Attempt::Done(Purchase::SoldOut {
                stock,
                round: round.number,
            }));
        }
        work.pass().await;
        self.act(round.number, |current| {
            let mut user = current.book.lock(order.user);
            if let Some(receipt) = current.replayed(&user, order) {
                return Attempt::Done(Purchase::Purchased(receipt));
            }
            if !user.reserve(order.quantity, limit) {
                return Attempt::Conflict;
            }
            match current.swap_stock(stock, stock - q) {
                true => Attempt::Done(Purchase::Purchased(current.place(
                    &mut user,
                    order,
                    stock - q,
                    false,
                ))),
                false => {
                    user.release(order.quantity, limit);
                    Attempt::Conflict
                }
            }
        })
    }
}
