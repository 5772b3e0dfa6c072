//! The server's order book as the audit keeps it: per order, the attempt its request id names
//! (if it is one of this run's), the user it was credited to, its quantity and a hash of its
//! order id. About 32 bytes per order, whatever the ids' lengths.

use flashsale::pb;

use crate::spec::ids::fnv1a;
use crate::spec::ids::{AttemptKey, parse_request_id, parse_user};

/// One order of the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookEntry {
    /// The attempt that placed it, when its request id is one of this run's.
    pub request: Option<AttemptKey>,
    /// The user it was credited to, when that is one of this run's users.
    pub user: Option<u32>,
    pub quantity: u32,
    /// FNV-1a hash of the order id.
    pub order: u64,
}

/// The book of one round, in the order the server placed the orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub round: u64,
    pub entries: Vec<BookEntry>,
}

impl Book {
    /// Adds the orders of one batch of `ListOrders`, reading ids with the run's user prefix.
    pub fn extend(&mut self, prefix: &str, orders: &[pb::Order]) {
        self.entries.extend(orders.iter().map(|o| BookEntry {
            request: parse_request_id(prefix, &o.request_id),
            user: parse_user(prefix, &o.user_id),
            quantity: o.quantity,
            order: fnv1a(o.order_id.as_bytes()),
        }));
    }

    /// Units in the book.
    pub fn units(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.quantity)).sum()
    }
}

/// What the audit could learn of the server's book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookState {
    /// Every order of the round.
    Complete(Book),
    /// The server could not give it; the reason, in words.
    Unavailable(String),
}

impl BookState {
    /// The book when it is complete.
    pub fn complete(&self) -> Option<&Book> {
        match self {
            BookState::Complete(book) => Some(book),
            BookState::Unavailable(_) => None,
        }
    }
}
