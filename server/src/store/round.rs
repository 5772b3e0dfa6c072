//! One round of the sale: its number, stock, strategy and order book. A `Reset` replaces the
//! whole round, so nothing of an ended round (stock, book, per-user totals, reservations) can
//! reach the next one; purchases still in flight hold the old round and are refused when they
//! try to act (see `MemoryStore::act`).
//!
//! Request ids: a purchase whose request id already placed an order in this round is answered
//! that order (same order id, the stock now, nothing taken): [`Round::replayed`], checked under
//! the user's lock of the book in the same step that takes the stock and records, so two tries
//! of one request never both place. A Reset forgets them with the round.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::book::{Book, UserBook};
use super::{Order, Receipt, Strategy};

/// The state of one round.
#[derive(Debug)]
pub(super) struct Round {
    pub number: u64,
    pub initial: i64,
    pub strategy: Strategy,
    pub stock: AtomicI64,
    pub book: Arc<Book>,
    /// The round's "row lock": held by the row-lock strategy across check, work and decrement.
    pub lock: tokio::sync::Mutex<()>,
}

impl Round {
    pub fn new(number: u64, stock: i64, strategy: Strategy, book_cap: u64) -> Self {
        Self {
            number,
            initial: stock,
            strategy,
            stock: AtomicI64::new(stock),
            book: Arc::new(Book::new(book_cap)),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The stock now.
    pub fn stock(&self) -> i64 {
        self.stock.load(Ordering::Acquire)
    }

    /// Takes the units whatever the stock is (the buggy "act"); returns the stock after.
    pub fn take(&self, quantity: u32) -> i64 {
        let q = i64::from(quantity);
        let before = self
            .stock
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(s.saturating_sub(q))
            })
            .unwrap_or_else(|s| s);
        before.saturating_sub(q)
    }

    /// Takes the units only if the stock covers them: `Ok(stock after)` or `Err(stock seen)`.
    pub fn take_if_available(&self, quantity: u32) -> Result<i64, i64> {
        let q = i64::from(quantity);
        self.stock
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s >= q).then(|| s - q)
            })
            .map(|before| before - q)
    }

    /// Sets the stock to `new` only if it is still `seen`.
    pub fn swap_stock(&self, seen: i64, new: i64) -> bool {
        self.stock
            .compare_exchange(seen, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The order `user`'s book already holds for `order`'s request id, if any: the receipt
    /// of a retry.
    pub fn replayed(&self, user: &UserBook<'_>, order: Order<'_>) -> Option<Receipt> {
        let seq = user.placed(order.request_id)?;
        Some(Receipt {
            order_id: order_id(self.number, seq),
            stock_after: self.stock(),
            round: self.number,
        })
    }

    /// Records an order whose units were taken off the stock, leaving `stock_after`, in the
    /// locked `user`'s book.
    pub fn place(
        &self,
        user: &mut UserBook<'_>,
        order: Order<'_>,
        stock_after: i64,
        add_units: bool,
    ) -> Receipt {
        let recorded = user.record(order.quantity, order.request_id, add_units);
        if recorded.first_overflow {
            tracing::warn!(
                round = self.number,
                book_cap = self.book.cap(),
                "order book full: further orders of this round are placed and counted, not listed"
            );
        }
        Receipt {
            order_id: order_id(self.number, recorded.seq),
            stock_after,
            round: self.number,
        }
    }
}

/// The id of order `seq` of round `round`.
fn order_id(round: u64, seq: u64) -> String {
    format!("r{round}-{seq}")
}
