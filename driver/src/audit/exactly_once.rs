//! `exactly_once`: every request is applied at most once, however many times it was tried
//! (`--retries` sends every try of a request with its request id). It fails when the book holds
//! a request id more than once (a retry placed a second order), or holds an acknowledged
//! request under another order id than the one it was answered (a retry answered with a second
//! order). An acknowledged request missing from the book is `no_lost_orders`' finding.
//!
//! A request is judged by all its tries ([`crate::checkout::retry::Tried`]): a try answered
//! UNAVAILABLE whose request later succeeded is the retry working, not a phantom sale; a request
//! whose last word is a definite "no" with its order in the book stays a phantom
//! (`no_phantom_sales`).

use super::reconcile::Reconciliation;
use super::{Check, CheckId, Status};
use crate::engine::tries::TryCounts;

/// The check, from the reconciliation and the run's retry counts; `book_failed`: the book
/// exists but could not be read.
pub fn check(rec: &Reconciliation, tries: &TryCounts, book_failed: bool) -> Check {
    let retried = if tries.retried > 0 {
        format!(
            "; {} requests retried ({} tries in all, at most {} for one), {} of them purchased",
            tries.retried, tries.tries, tries.max_tries, tries.retried_purchased
        )
    } else {
        String::new()
    };
    if !rec.available {
        let reason = rec.reason.as_deref().unwrap_or("unavailable");
        let status = if book_failed {
            Status::Inconclusive
        } else {
            Status::Skipped
        };
        return Check::new(
            CheckId::ExactlyOnce,
            status,
            format!("no order book to count requests in: {reason}{retried}"),
        );
    }
    Check::holds(
        CheckId::ExactlyOnce,
        rec.duplicate_requests == 0 && rec.other_order_ids == 0,
        format!(
            "{} request ids in the book more than once, {} acknowledged requests booked under another order id{retried}",
            rec.duplicate_requests, rec.other_order_ids
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::reconcile::reconcile;
    use crate::checkout::book::{Book, BookEntry};
    use crate::engine::history::{Answer, Attempt, AttemptKey, History, UNKNOWN_TIME};

    fn request(user: u32, answer: Answer, order: u64, tries: u8) -> Attempt {
        Attempt {
            key: AttemptKey { user, seq: 0 },
            quantity: 1,
            answer,
            order,
            sent_us: 0,
            replied_us: UNKNOWN_TIME,
            tries,
        }
    }

    fn booked(user: u32, order: u64) -> BookEntry {
        BookEntry {
            order,
            user: Some(user),
            quantity: 1,
            request: Some(AttemptKey { user, seq: 0 }),
        }
    }

    fn judged(attempts: Vec<Attempt>, entries: Vec<BookEntry>) -> (Reconciliation, Check) {
        let history = History {
            attempts,
            unreported: Vec::new(),
        };
        let book = Book {
            entries,
            ..Book::default()
        };
        let rec = reconcile(&history, Some(&book), 0, 0);
        let mut tries = TryCounts::default();
        for a in &history.attempts {
            tries.record(
                u32::from(a.tries),
                a.answer == Answer::Purchased,
                false,
                false,
            );
        }
        let check = check(&rec, &tries, false);
        (rec, check)
    }

    #[test]
    fn unavailable_then_purchased_with_the_same_order_passes() {
        // User 0: UNAVAILABLE, then PURCHASED order 10 (one request, two tries); its one
        // order in the book. User 1: one try.
        let (rec, check) = judged(
            vec![
                request(0, Answer::Purchased, 10, 2),
                request(1, Answer::Purchased, 11, 1),
            ],
            vec![booked(0, 10), booked(1, 11)],
        );
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert!(
            check.detail.contains("1 requests retried (3 tries"),
            "{check:?}"
        );
        assert_eq!((rec.phantom, rec.lost), (0, 0));
    }

    #[test]
    fn a_retry_booked_twice_fails() {
        // The first try was applied but its reply lost; the retry placed a second order.
        let (rec, check) = judged(
            vec![request(0, Answer::Purchased, 11, 2)],
            vec![booked(0, 10), booked(0, 11)],
        );
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert_eq!(rec.duplicate_requests, 1);
    }

    #[test]
    fn a_retry_answered_with_another_order_id_fails() {
        // Answered order 11, booked as order 10: the request got two order ids.
        let (rec, check) = judged(
            vec![request(0, Answer::Purchased, 11, 2)],
            vec![booked(0, 10)],
        );
        assert_eq!(check.status, Status::Fail, "{check:?}");
        assert_eq!(rec.other_order_ids, 1);
    }

    #[test]
    fn a_definite_no_with_an_order_stays_a_phantom_not_an_exactly_once_failure() {
        let (rec, check) = judged(
            vec![request(0, Answer::Rejected, 0, 3)],
            vec![booked(0, 10)],
        );
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert_eq!(rec.phantom, 1);
    }

    #[test]
    fn without_a_book_it_is_skipped_or_inconclusive() {
        let rec = Reconciliation::default();
        let tries = TryCounts::default();
        assert_eq!(check(&rec, &tries, false).status, Status::Skipped);
        assert_eq!(check(&rec, &tries, true).status, Status::Inconclusive);
    }
}
