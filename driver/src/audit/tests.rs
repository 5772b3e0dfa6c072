//! The checks on synthetic histories: each fault family against the check that must name it.

use std::time::Duration;

use flashsale::pb;

use super::*;
use crate::checkout::book::{Book, BookEntry, BookState};
use crate::engine::history::AttemptKey;
use crate::engine::stats::Stats;
use crate::outcome::Outcome;
use crate::spec::policy::{Policy, parse_threshold};

fn stock(stock: i64, orders: u64, units: u64) -> pb::StockReply {
    pb::StockReply {
        stock,
        initial_stock: 10,
        orders,
        units_sold: units,
        round: 1,
        ..Default::default()
    }
}

fn key(user: u32) -> AttemptKey {
    AttemptKey { user, seq: 0 }
}

/// A history builder: attempts by user number, and the book the server would list.
#[derive(Default)]
struct Run {
    stats: Stats,
    book: Vec<BookEntry>,
    next_order: u64,
}

impl Run {
    fn buy(&mut self, user: u32, quantity: u32) -> &mut Self {
        self.next_order += 1;
        let order_id = format!("o{}", self.next_order);
        self.book.push(BookEntry {
            request: Some(key(user)),
            user: Some(user),
            quantity,
            order: crate::spec::ids::fnv1a(order_id.as_bytes()),
        });
        // No stock in the replies: the fixtures' stocks are not a real sale's sequence.
        let outcome = Outcome::Purchased {
            order_id,
            quantity,
            stock_after: None,
        };
        self.stats.record(key(user), quantity, outcome, ms());
        self
    }

    fn answer(&mut self, user: u32, quantity: u32, outcome: Outcome) -> &mut Self {
        self.stats.record(key(user), quantity, outcome, ms());
        self
    }

    fn audit(&self, before: pb::StockReply, after: pb::StockReply, book: bool) -> Audit {
        self.audit_with(before, after, book, &Policy::default())
    }

    fn audit_with(
        &self,
        before: pb::StockReply,
        after: pb::StockReply,
        book: bool,
        policy: &Policy,
    ) -> Audit {
        let book = if book {
            BookState::Complete(Book {
                round: 1,
                entries: self.book.clone(),
                ..Book::default()
            })
        } else {
            BookState::Unavailable("no ListOrders".into())
        };
        Audit::new(
            &self.stats,
            &Evidence {
                before: &before,
                after: &after,
                book: &book,
                unsettled: None,
                moved: None,
                quiet: Duration::from_secs(3),
                policy,
                counters: true,
                readings: &[],
                slack_us: 0,
            },
        )
    }
}

fn ms() -> Duration {
    Duration::from_millis(1)
}

fn failed(audit: &Audit) -> Vec<&str> {
    audit.with_status(Status::Fail)
}

fn sold_out() -> Outcome {
    Outcome::SoldOut { stock_after: None }
}

#[test]
fn clean_sell_out_passes() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 2).answer(2, 1, sold_out());
    let audit = run.audit(stock(3, 0, 0), stock(0, 2, 3), true);
    assert_eq!(audit.verdict, Verdict::Pass, "{:#?}", audit.checks);
    assert!(audit.reconciliation.available);
}

#[test]
fn added_checks_can_only_worsen_the_verdict() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 2).answer(2, 1, sold_out());
    let mut audit = run.audit(stock(3, 0, 0), stock(0, 2, 3), true);
    audit.add_checks([Check::new(
        CheckId::ProbeOverStock,
        Status::Skipped,
        String::new(),
    )]);
    assert_eq!(audit.verdict, Verdict::Pass);
    audit.add_checks([Check::new(
        CheckId::ProbeExactStock,
        Status::Inconclusive,
        String::new(),
    )]);
    assert_eq!(audit.verdict, Verdict::Inconclusive);
    audit.add_checks([Check::new(CheckId::ProbeLimit, Status::Fail, String::new())]);
    assert_eq!(audit.verdict, Verdict::Fail);
    assert_eq!(failed(&audit), ["probe_limit"]);
}

#[test]
fn oversell_fails() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1).buy(2, 1);
    let audit = run.audit(stock(2, 0, 0), stock(-1, 3, 3), true);
    assert_eq!(failed(&audit), ["no_oversell", "stock_not_negative"]);
    assert_eq!(audit.oversold_units, 1);
}

#[test]
fn dead_checkout_fails_availability() {
    let mut run = Run::default();
    for u in 0..10 {
        run.answer(u, 1, Outcome::Status(tonic::Code::Unavailable));
    }
    run.book.clear();
    let audit = run.audit(stock(5, 0, 0), stock(5, 0, 0), true);
    assert_eq!(failed(&audit), ["availability"]);
    assert!(
        audit.checks[0].detail.contains("UNAVAILABLE 10"),
        "{}",
        audit.checks[0].detail
    );
}

#[test]
fn sold_out_as_an_error_fails_availability() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1);
    for u in 2..10 {
        run.answer(u, 1, Outcome::Status(tonic::Code::ResourceExhausted));
    }
    let audit = run.audit(stock(2, 0, 0), stock(0, 2, 2), true);
    assert_eq!(failed(&audit), ["availability"]);
}

#[test]
fn undersell_and_never_selling_fail() {
    let mut run = Run::default();
    run.buy(0, 1);
    for u in 1..10 {
        run.answer(u, 1, sold_out());
    }
    let audit = run.audit(stock(5, 0, 0), stock(4, 1, 1), true);
    assert_eq!(failed(&audit), ["no_undersell"]);
    assert_eq!(audit.reconciliation.undersold_attempts, 9);
    // Never sells at all: availability too.
    let mut never = Run::default();
    for u in 0..10 {
        never.answer(u, 1, sold_out());
    }
    let audit = never.audit(stock(5, 0, 0), stock(5, 0, 0), true);
    assert_eq!(failed(&audit), ["availability", "no_undersell"]);
}

#[test]
fn ack_without_decrement_fails_conservation_even_under_timeouts() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1).buy(2, 1);
    for u in 3..6 {
        run.answer(u, 1, Outcome::Timeout);
    }
    // Three orders booked, the stock only dropped by two.
    let audit = run.audit(stock(10, 0, 0), stock(8, 3, 3), true);
    assert_eq!(failed(&audit), ["conservation"]);
    // Without the book the acknowledged units alone exceed the drop.
    let audit = run.audit(stock(10, 0, 0), stock(8, 3, 3), false);
    assert_eq!(failed(&audit), ["conservation"]);
    // A drop the timeouts could explain leaves the range audit unable to tell: never a pass.
    let audit = run.audit(stock(10, 0, 0), stock(6, 4, 4), false);
    assert!(failed(&audit).is_empty(), "{:?}", failed(&audit));
    assert_eq!(audit.verdict, Verdict::Inconclusive);
    assert_eq!(
        audit.with_status(Status::Inconclusive),
        ["no_oversell", "all_resolved"]
    );
}

#[test]
fn phantom_lost_ghost_and_double_records_fail() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1).answer(2, 1, sold_out());
    // Sold out answered, yet booked.
    run.book.push(BookEntry {
        request: Some(key(2)),
        user: Some(2),
        quantity: 1,
        order: 99,
    });
    let audit = run.audit(stock(3, 0, 0), stock(0, 3, 3), true);
    assert_eq!(failed(&audit), ["no_phantom_sales"]);

    let mut lost = Run::default();
    lost.buy(0, 1).buy(1, 1);
    lost.book.pop();
    let audit = lost.audit(stock(10, 0, 0), stock(8, 1, 1), true);
    assert_eq!(failed(&audit), ["conservation", "no_lost_orders"]);

    let mut ghost = Run::default();
    ghost.buy(0, 1);
    ghost.book.push(BookEntry {
        request: None,
        user: None,
        quantity: 1,
        order: 5,
    });
    let audit = ghost.audit(stock(10, 0, 0), stock(8, 2, 2), true);
    assert_eq!(failed(&audit), ["no_ghost_orders"]);

    let mut double = Run::default();
    double.buy(0, 1).buy(1, 1);
    let mut twice = double.book[1];
    twice.order = 1234;
    double.book.push(twice);
    let audit = double.audit(stock(10, 0, 0), stock(8, 3, 3), true);
    assert_eq!(failed(&audit), ["conservation", "exactly_once"]);
}

#[test]
fn books_must_balance_with_the_counters() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1);
    let audit = run.audit(stock(10, 0, 0), stock(8, 2, 5), true);
    assert_eq!(failed(&audit), ["books_balance"]);
    let mut after = stock(8, 2, 2);
    after.round = 2;
    let audit = run.audit(stock(10, 0, 0), after, true);
    assert!(failed(&audit).contains(&"books_balance"));
    assert!(!audit.reconciliation.available);
}

#[test]
fn huge_stock_is_inconclusive_not_a_pass() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1);
    let audit = run.audit(stock(1_000_000, 0, 0), stock(999_998, 2, 2), true);
    assert_eq!(audit.verdict, Verdict::Inconclusive);
    assert_eq!(audit.with_status(Status::Inconclusive), ["no_oversell"]);
}

#[test]
fn indeterminate_attempts_are_resolved_by_the_book() {
    let mut run = Run::default();
    run.buy(0, 1).answer(1, 1, Outcome::Timeout);
    run.book.push(BookEntry {
        request: Some(key(1)),
        user: Some(1),
        quantity: 1,
        order: 7,
    });
    run.answer(2, 1, Outcome::Status(tonic::Code::Internal));
    let policy = Policy {
        max_error_rate: 0.5,
        ..Policy::default()
    };
    let audit = run.audit_with(stock(2, 0, 0), stock(0, 2, 2), true, &policy);
    assert_eq!(audit.verdict, Verdict::Pass, "{:#?}", audit.checks);
    let r = &audit.reconciliation;
    assert_eq!((r.resolved_applied, r.resolved_not_applied), (1, 1));
}

#[test]
fn per_user_limit_violations_fail() {
    let mut run = Run::default();
    run.buy(0, 1);
    run.stats.record(
        AttemptKey { user: 0, seq: 1 },
        1,
        Outcome::Purchased {
            order_id: "x".into(),
            quantity: 1,
            stock_after: Some(0),
        },
        ms(),
    );
    run.book.push(BookEntry {
        request: Some(AttemptKey { user: 0, seq: 1 }),
        user: Some(0),
        quantity: 1,
        order: crate::spec::ids::fnv1a(b"x"),
    });
    let mut after = stock(0, 2, 2);
    after.per_user_limit = 1;
    let audit = run.audit(stock(2, 0, 0), after, true);
    assert_eq!(failed(&audit), ["per_user_limit"]);
    after.per_user_limit = 0;
    let audit = run.audit(stock(2, 0, 0), after, true);
    assert!(
        audit
            .checks
            .iter()
            .any(|c| c.name == "per_user_limit" && c.status == Status::Skipped)
    );
}

#[test]
fn thresholds_and_error_rate_policy() {
    let mut run = Run::default();
    run.buy(0, 1)
        .answer(1, 1, sold_out())
        .answer(2, 1, Outcome::Status(tonic::Code::Unavailable));
    let mut policy = Policy {
        thresholds: vec![
            parse_threshold("p99<=1s").unwrap(),
            parse_threshold("max<1us").unwrap(),
        ],
        ..Policy::default()
    };
    let audit = run.audit_with(stock(1, 0, 0), stock(0, 1, 1), true, &policy);
    assert_eq!(failed(&audit), ["availability", "threshold max<1us"]);
    policy.max_error_rate = 0.5;
    policy.thresholds.pop();
    let audit = run.audit_with(stock(1, 0, 0), stock(0, 1, 1), true, &policy);
    assert_eq!(audit.verdict, Verdict::Pass, "{:#?}", audit.checks);
}

#[test]
fn unsettled_server_is_inconclusive() {
    let mut run = Run::default();
    run.buy(0, 1).answer(1, 1, sold_out());
    let book = BookState::Complete(Book {
        round: 1,
        entries: run.book.clone(),
        ..Book::default()
    });
    let policy = Policy::default();
    let (before, after) = (stock(1, 0, 0), stock(0, 1, 1));
    let audit = Audit::new(
        &run.stats,
        &Evidence {
            before: &before,
            after: &after,
            book: &book,
            unsettled: Some("still moving".into()),
            moved: None,
            quiet: Duration::from_secs(3),
            policy: &policy,
            counters: true,
            readings: &[],
            slack_us: 0,
        },
    );
    assert_eq!(audit.with_status(Status::Inconclusive), ["settled"]);
    assert_eq!(audit.verdict, Verdict::Inconclusive);
}

fn lost(run: &Run, before: &pb::StockReply, last_stock: Option<i64>) -> Audit {
    Audit::without_final_state(
        &run.stats,
        &LostTarget {
            before,
            why: "GetStock failed: connection refused".into(),
            last_stock,
            policy: &Policy::default(),
        },
    )
}

fn status_of<'a>(audit: &'a Audit, name: &str) -> &'a Check {
    audit.checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn a_lost_target_leaves_the_final_state_checks_inconclusive() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1).answer(2, 1, sold_out());
    // The stock polled during the run would make every range check pass: it must not.
    let audit = lost(&run, &stock(2, 0, 0), Some(0));
    assert_eq!(audit.verdict, Verdict::Inconclusive, "{:#?}", audit.checks);
    for name in [
        "no_oversell",
        "stock_not_negative",
        "conservation",
        "books_balance",
        "no_undersell",
        "settled",
        "final_state",
    ] {
        let check = status_of(&audit, name);
        assert_ne!(check.status, Status::Pass, "{check:?}");
    }
    assert!(
        status_of(&audit, "final_state")
            .detail
            .contains("connection refused")
    );
    assert!(!audit.conservation.holds && !audit.ledger.holds);
    assert_eq!(
        audit.final_stock, 0,
        "the last stock polled, as the check says"
    );
}

#[test]
fn a_lost_target_still_fails_what_the_replies_prove() {
    // Acknowledged units beyond the stock: an oversell, whatever the final state.
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1).buy(2, 1);
    let audit = lost(&run, &stock(2, 0, 0), None);
    assert_eq!(audit.verdict, Verdict::Fail);
    assert_eq!(failed(&audit), ["no_oversell"]);

    // A reply that showed negative stock.
    let mut run = Run::default();
    run.buy(0, 1).answer(
        1,
        1,
        Outcome::SoldOut {
            stock_after: Some(-4),
        },
    );
    let audit = lost(&run, &stock(5, 0, 0), None);
    assert_eq!(failed(&audit), ["stock_not_negative"]);
    assert!(
        status_of(&audit, "stock_not_negative")
            .detail
            .contains("-4")
    );
}

#[test]
fn a_reply_that_saw_less_stock_than_the_end_fails_valid_replies() {
    let mut run = Run::default();
    run.buy(0, 1).answer(
        1,
        1,
        Outcome::SoldOut {
            stock_after: Some(0),
        },
    );
    // The sold-out reply saw 0 units; the settled end shows 9: the stock rose.
    let audit = run.audit(stock(10, 0, 0), stock(9, 1, 1), true);
    assert!(
        failed(&audit).contains(&"valid_replies"),
        "{:#?}",
        audit.checks
    );
    let detail = &audit
        .checks
        .iter()
        .find(|c| c.name == "valid_replies")
        .unwrap()
        .detail;
    assert!(detail.contains("the stock rose"), "{detail}");
}

#[test]
fn a_book_of_another_round_is_named_as_such() {
    let mut run = Run::default();
    run.buy(0, 1).buy(1, 1);
    // The server lists the previous round's orders under this round's number.
    run.book = vec![
        BookEntry {
            request: None,
            user: None,
            quantity: 1,
            order: 71,
        },
        BookEntry {
            request: None,
            user: None,
            quantity: 1,
            order: 72,
        },
    ];
    let audit = run.audit(stock(2, 0, 0), stock(0, 2, 2), true);
    let detail = &status_of(&audit, "no_ghost_orders").detail;
    assert!(detail.contains("another round's book"), "{detail}");
    assert_eq!(status_of(&audit, "no_ghost_orders").status, Status::Fail);
}
