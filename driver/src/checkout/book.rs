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

/// One order as a listing names it: the built-in `ListOrders` or a custom checkout's own
/// listing ([`crate::checkout::custom::CustomConnection::orders`]).
#[derive(Debug, Clone, Copy)]
pub struct ListedOrder<'a> {
    pub order_id: &'a str,
    pub user: &'a str,
    pub quantity: u32,
    pub request_id: &'a str,
}

impl BookEntry {
    /// The entry of `order`, reading its ids with the run's user `prefix`.
    pub fn new(prefix: &str, order: ListedOrder<'_>) -> Self {
        Self {
            request: parse_request_id(prefix, order.request_id),
            user: parse_user(prefix, order.user),
            quantity: order.quantity,
            order: fnv1a(order.order_id.as_bytes()),
        }
    }
}

/// The book of one round, in the order the server placed the orders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub round: u64,
    pub entries: Vec<BookEntry>,
    /// Orders listed with no request id at all: the book cannot be matched to requests.
    pub without_request_id: u64,
}

impl Book {
    /// Adds the orders of one batch of `ListOrders`, reading ids with the run's user prefix.
    pub fn extend(&mut self, prefix: &str, orders: &[pb::Order]) {
        for o in orders {
            self.push(
                prefix,
                ListedOrder {
                    order_id: &o.order_id,
                    user: &o.user_id,
                    quantity: o.quantity,
                    request_id: &o.request_id,
                },
            );
        }
    }

    /// Adds one order of a listing, reading its ids with the run's user `prefix`.
    pub fn push(&mut self, prefix: &str, order: ListedOrder<'_>) {
        if order.request_id.is_empty() {
            self.without_request_id += 1;
        }
        self.entries.push(BookEntry::new(prefix, order));
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
    /// The checkout keeps no book the audit can read (no `ListOrders`, no listing call in the
    /// spec, a listing without request ids, a book past its declared cap); the reason, in
    /// words. The checks that need a book are skipped.
    Unavailable(String),
    /// The checkout has a book but reading it failed (an error status, a timeout, another
    /// round's orders, a stream cut short, a malformed listing): the checks that need it
    /// cannot pass; the reason, in words.
    Failed(String),
}

impl BookState {
    /// The book when it is complete.
    pub fn complete(&self) -> Option<&Book> {
        match self {
            BookState::Complete(book) => Some(book),
            BookState::Unavailable(_) | BookState::Failed(_) => None,
        }
    }

    /// Why there is no book, when there is none.
    pub fn reason(&self) -> Option<&str> {
        match self {
            BookState::Complete(_) => None,
            BookState::Unavailable(why) | BookState::Failed(why) => Some(why),
        }
    }

    /// Reading a book that exists failed.
    pub fn failed(&self) -> bool {
        matches!(self, BookState::Failed(_))
    }
}
