//! Order-by-order reconciliation of the client's history against the server's book, and the
//! checks that need per-attempt knowledge (undersell, per-customer limit).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::checkout::book::Book;
use crate::engine::history::{Answer, AttemptKey, History};

/// What comparing the history with the book found. Every count is zero when the book was
/// not available (`available == false`) except those that need no book.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// The server's book was read completely and compared order by order.
    pub available: bool,
    /// Why not, in words (`null` when available).
    pub reason: Option<String>,
    /// Orders and units in the book for this run.
    pub book_orders: u64,
    pub book_units: u64,
    /// Acknowledged purchases missing from the book, or there with another order id or
    /// quantity.
    pub lost: u64,
    /// Attempts answered sold out, limit reached or a definite error that are in the book.
    pub phantom: u64,
    /// Orders in the book that this run did not send.
    pub ghost: u64,
    /// Book entries of a request id already applied (one attempt, several orders).
    pub duplicate_requests: u64,
    /// Order ids that occur more than once (in the book, or among acknowledgements).
    pub duplicate_order_ids: u64,
    /// Acknowledged requests whose request id the book holds under another order id than the
    /// one they were answered (a retry answered with a second order).
    pub other_order_ids: u64,
    /// Indeterminate attempts the book shows applied / not applied.
    pub resolved_applied: u64,
    pub resolved_not_applied: u64,
    /// Indeterminate attempts nothing could resolve.
    pub unresolved: u64,
    /// Book entries whose customer or quantity is not the one its request asked for.
    pub mismatched_orders: u64,
    /// Book entries without a request id at all (the book cannot be matched to requests).
    pub without_request_id: u64,
    /// Sold-out answers given while the units asked for were left
    /// ([`crate::audit::undersell`]).
    pub undersold_attempts: u64,
    /// Users who got more units than the server's per-customer limit.
    pub per_user_violations: u64,
    /// Limit-reached answers to users below the limit ([`crate::audit::undersell`]).
    pub wrong_limit_refusals: u64,
}

/// Reconciles `history` against `book` (skipping its first `preexisting` orders, placed before
/// the run), with the server's `per_user_limit` (0: none).
pub fn reconcile(
    history: &History,
    book: Option<&Book>,
    preexisting: usize,
    per_user_limit: u32,
) -> Reconciliation {
    let mut r = Reconciliation::default();
    let attempts: HashMap<AttemptKey, usize> = history
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| (a.key, i))
        .collect();
    let mut applied: HashSet<AttemptKey> = HashSet::new();
    // Units per user: from the book when there is one, else from acknowledgements.
    let mut per_user: HashMap<u32, u64> = HashMap::new();

    // Acknowledgements that share an order id, whether or not the book lists it once.
    let mut acked: HashSet<u64> = HashSet::new();
    for attempt in history.attempts.iter() {
        if attempt.answer == Answer::Purchased && !acked.insert(attempt.order) {
            r.duplicate_order_ids += 1;
        }
    }

    match book {
        Some(book) => {
            r.available = true;
            r.without_request_id = book.without_request_id;
            let mut booked: HashSet<u64> = HashSet::new();
            for entry in book.entries.iter().skip(preexisting) {
                r.book_orders += 1;
                r.book_units += u64::from(entry.quantity);
                if !booked.insert(entry.order) {
                    r.duplicate_order_ids += 1;
                }
                let Some(key) = entry.request else {
                    r.ghost += 1;
                    continue;
                };
                let attempt = attempts.get(&key).map(|&i| &history.attempts[i]);
                if attempt.is_none() && !history.is_unreported(key.user) {
                    r.ghost += 1;
                    continue;
                }
                if !applied.insert(key) {
                    r.duplicate_requests += 1;
                    continue;
                }
                *per_user.entry(entry.user.unwrap_or(key.user)).or_default() +=
                    u64::from(entry.quantity);
                if entry.user != Some(key.user)
                    || attempt.is_some_and(|a| a.quantity != entry.quantity)
                {
                    r.mismatched_orders += 1;
                }
                match attempt {
                    // An attempt of a lost worker: applied, never reported.
                    None => r.resolved_applied += 1,
                    Some(a) => match a.answer {
                        Answer::Purchased => {
                            if a.order != entry.order || a.quantity != entry.quantity {
                                r.lost += 1;
                            }
                            if a.order != entry.order {
                                r.other_order_ids += 1;
                            }
                        }
                        Answer::SoldOut | Answer::LimitReached | Answer::Rejected => {
                            r.phantom += 1;
                        }
                        Answer::Indeterminate => r.resolved_applied += 1,
                        Answer::BadReply => {}
                    },
                }
            }
            for attempt in &history.attempts {
                match attempt.answer {
                    Answer::Purchased if !applied.contains(&attempt.key) => r.lost += 1,
                    Answer::Indeterminate if !applied.contains(&attempt.key) => {
                        r.resolved_not_applied += 1;
                    }
                    _ => {}
                }
            }
        }
        None => {
            for attempt in &history.attempts {
                match attempt.answer {
                    Answer::Purchased => {
                        *per_user.entry(attempt.key.user).or_default() +=
                            u64::from(attempt.quantity);
                    }
                    Answer::Indeterminate => r.unresolved += 1,
                    _ => {}
                }
            }
        }
    }

    let limit = u64::from(per_user_limit);
    if limit > 0 {
        r.per_user_violations = per_user.values().filter(|&&units| units > limit).count() as u64;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout::book::BookEntry;
    use crate::engine::history::Attempt;

    fn attempt(user: u32, seq: u32, quantity: u32, answer: Answer, order: u64) -> Attempt {
        Attempt {
            key: AttemptKey { user, seq },
            quantity,
            answer,
            order,
            sent_us: 0,
            replied_us: crate::engine::history::UNKNOWN_TIME,
            tries: 1,
        }
    }

    fn entry(user: u32, seq: u32, quantity: u32, order: u64) -> BookEntry {
        BookEntry {
            request: Some(AttemptKey { user, seq }),
            user: Some(user),
            quantity,
            order,
        }
    }

    fn history(attempts: Vec<Attempt>) -> History {
        History {
            attempts,
            unreported: Vec::new(),
        }
    }

    fn book(entries: Vec<BookEntry>) -> Book {
        Book {
            round: 1,
            entries,
            ..Book::default()
        }
    }

    #[test]
    fn clean_run_reconciles_with_indeterminates_resolved() {
        let h = history(vec![
            attempt(0, 0, 2, Answer::Purchased, 10),
            attempt(1, 0, 1, Answer::Indeterminate, 0),
            attempt(2, 0, 3, Answer::Indeterminate, 0),
            attempt(3, 0, 1, Answer::SoldOut, 0),
        ]);
        let b = book(vec![entry(0, 0, 2, 10), entry(1, 0, 1, 11)]);
        let r = reconcile(&h, Some(&b), 0, 0);
        assert_eq!((r.book_orders, r.book_units), (2, 3));
        assert_eq!((r.resolved_applied, r.resolved_not_applied), (1, 1));
        assert_eq!((r.lost, r.phantom, r.ghost, r.unresolved), (0, 0, 0, 0));
        assert_eq!(r.undersold_attempts, 0);
    }

    #[test]
    fn lost_phantom_ghost_and_duplicates() {
        let h = history(vec![
            attempt(0, 0, 1, Answer::Purchased, 10), // missing from the book: lost
            attempt(1, 0, 1, Answer::Purchased, 11), // other quantity in the book: lost
            attempt(2, 0, 1, Answer::SoldOut, 0),    // in the book: phantom
            attempt(3, 0, 1, Answer::Rejected, 0),   // in the book: phantom
            attempt(4, 0, 1, Answer::Purchased, 14), // applied twice
        ]);
        let mut ghost = entry(9, 9, 1, 99);
        ghost.request = None;
        let b = book(vec![
            entry(1, 0, 2, 11),
            entry(2, 0, 1, 12),
            entry(3, 0, 1, 13),
            entry(4, 0, 1, 14),
            entry(4, 0, 1, 15),
            ghost,
            entry(7, 3, 1, 16), // a request id of this run's form that it never sent
        ]);
        let r = reconcile(&h, Some(&b), 0, 0);
        assert_eq!(r.lost, 2);
        assert_eq!(r.phantom, 2);
        assert_eq!(r.ghost, 2);
        assert_eq!(r.duplicate_requests, 1);
        assert_eq!(r.duplicate_order_ids, 0);
    }

    #[test]
    fn orders_of_lost_workers_are_theirs_not_ghosts() {
        let mut h = history(vec![attempt(0, 0, 1, Answer::Purchased, 1)]);
        h.unreported.push(5..10);
        let b = book(vec![
            entry(0, 0, 1, 1),
            entry(7, 0, 2, 2),
            entry(12, 0, 1, 3),
        ]);
        let r = reconcile(&h, Some(&b), 0, 0);
        assert_eq!((r.ghost, r.resolved_applied, r.book_units), (1, 1, 4));
    }

    #[test]
    fn preexisting_orders_are_skipped_and_duplicate_order_ids_found() {
        let h = history(vec![
            attempt(0, 0, 1, Answer::Purchased, 10),
            attempt(1, 0, 1, Answer::Purchased, 10),
        ]);
        let mut old = entry(5, 5, 1, 1);
        old.request = None;
        let b = book(vec![old, entry(0, 0, 1, 10), entry(1, 0, 1, 10)]);
        let r = reconcile(&h, Some(&b), 1, 0);
        assert_eq!(r.ghost, 0);
        // Once in the book, once among the acknowledgements.
        assert_eq!(r.duplicate_order_ids, 2);
        let no_book = reconcile(&h, None, 0, 0);
        assert_eq!(no_book.duplicate_order_ids, 1);
        assert!(!no_book.available);
    }

    #[test]
    fn per_user_limit_violations() {
        let h = history(vec![
            attempt(0, 0, 1, Answer::Purchased, 1),
            attempt(0, 1, 1, Answer::Purchased, 2),
            attempt(1, 0, 1, Answer::Purchased, 3),
            attempt(1, 1, 1, Answer::LimitReached, 0), // user 1 holds 1 of 2: wrong
            attempt(0, 2, 1, Answer::LimitReached, 0), // user 0 holds 2 of 2: right
        ]);
        let b = book(vec![
            entry(0, 0, 1, 1),
            entry(0, 1, 1, 2),
            entry(1, 0, 1, 3),
        ]);
        assert_eq!(reconcile(&h, Some(&b), 0, 2).per_user_violations, 0);
        assert_eq!(reconcile(&h, Some(&b), 0, 1).per_user_violations, 1);
        // Without a book, acknowledged units are the lower bound.
        assert_eq!(reconcile(&h, None, 0, 1).per_user_violations, 1);
    }
}
