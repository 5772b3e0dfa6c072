use super::*;
use crate::checkout::book::BookEntry;

fn at(user: u32, quantity: u32, answer: Answer, sent_ms: u32, replied_ms: u32) -> Attempt {
    Attempt {
        key: AttemptKey { user, seq: 0 },
        quantity,
        answer,
        order: u64::from(user) + 1,
        sent_us: sent_ms * 1000,
        replied_us: replied_ms * 1000,
        tries: 1,
    }
}

fn booked(attempts: &[Attempt]) -> Book {
    Book {
        round: 1,
        entries: attempts
            .iter()
            .filter(|a| a.answer == Answer::Purchased)
            .map(|a| BookEntry {
                request: Some(a.key),
                user: Some(a.key.user),
                quantity: a.quantity,
                order: a.order,
            })
            .collect(),
        ..Book::default()
    }
}

fn ctx<'a>(
    book: Option<&'a Book>,
    initial: i64,
    final_stock: i64,
    readings: &'a [Reading],
) -> Context<'a> {
    Context {
        book: book.map(|b| (b, 0)),
        initial_stock: initial,
        final_stock,
        readings,
        per_user_limit: 0,
        slack_us: 0,
    }
}

fn history(attempts: Vec<Attempt>) -> History {
    History {
        attempts,
        unreported: Vec::new(),
    }
}

#[test]
fn a_later_reading_with_stock_left_proves_a_refusal_wrong() {
    // Sold out at 10 ms; a GetStock sent at 12 ms still read 5; the stock is 0 in the end.
    let h = history(vec![
        at(0, 1, Answer::SoldOut, 0, 10),
        at(1, 5, Answer::Purchased, 0, 20),
    ]);
    let readings = [Reading {
        sent_us: 12_000,
        stock: 5,
    }];
    let r = judge(&h, &ctx(None, 5, 0, &readings));
    assert_eq!(r.wrong_sold_out, 1);
    let e = r.earliest_sold_out.expect("earliest");
    assert_eq!(
        e.proof,
        Proof::LaterReading {
            after_us: 2_000,
            stock: 5
        }
    );
    assert!(
        e.describe().contains("0.010 s into the run"),
        "{}",
        e.describe()
    );
    // A reading sent before the refusal arrived proves nothing.
    let early = [Reading {
        sent_us: 9_000,
        stock: 5,
    }];
    assert_eq!(judge(&h, &ctx(None, 5, 0, &early)).wrong_sold_out, 0);
    // Nor does one within the clocks' slack.
    let slack = Context {
        slack_us: 5_000,
        ..ctx(None, 5, 0, &readings)
    };
    assert_eq!(judge(&h, &slack).wrong_sold_out, 0);
}

#[test]
fn a_refusal_before_enough_requests_were_sent_is_wrong_by_the_book() {
    // 10 units; by 50 ms only 3 units' worth had been sent; the refusal then is wrong even
    // though everything sold out later.
    let mut attempts = vec![
        at(0, 3, Answer::Purchased, 0, 5),
        at(1, 2, Answer::SoldOut, 40, 50),
    ];
    attempts.extend((2..9).map(|u| at(u, 1, Answer::Purchased, 100, 110)));
    let h = history(attempts);
    let book = booked(&h.attempts);
    let r = judge(&h, &ctx(Some(&book), 10, 0, &[]));
    assert_eq!(r.wrong_sold_out, 1);
    assert_eq!(
        r.earliest_sold_out.expect("earliest").proof,
        Proof::SentBefore {
            sold: 3,
            initial: 10
        }
    );
    // Without a book, unknown buyers may have taken the stock: no proof.
    assert_eq!(judge(&h, &ctx(None, 10, 0, &[])).wrong_sold_out, 0);
    // Orders nobody in the run placed count as sold before anything.
    let mut ghosted = book.clone();
    ghosted.entries.push(BookEntry {
        request: None,
        user: None,
        quantity: 6,
        order: 99,
    });
    assert_eq!(
        judge(&h, &ctx(Some(&ghosted), 10, 0, &[])).wrong_sold_out,
        0
    );
}

#[test]
fn a_burst_that_sells_out_correctly_has_no_wrong_refusal() {
    // Everyone sent at once; the last units go to the first five; the rest are refused.
    let h = history(
        (0..20)
            .map(|u| {
                let answer = if u < 5 {
                    Answer::Purchased
                } else {
                    Answer::SoldOut
                };
                at(u, 1, answer, 0, 10 + u)
            })
            .collect(),
    );
    let book = booked(&h.attempts);
    let readings = [Reading {
        sent_us: 30_000,
        stock: 0,
    }];
    let r = judge(&h, &ctx(Some(&book), 5, 0, &readings));
    assert_eq!((r.wrong_sold_out, r.wrong_limit), (0, 0));
}

#[test]
fn the_final_stock_proves_a_refusal_wrong_whatever_the_times() {
    let mut a = at(0, 2, Answer::SoldOut, 0, 0);
    a.replied_us = UNKNOWN_TIME;
    let h = history(vec![a, at(1, 1, Answer::SoldOut, 0, 1)]);
    let r = judge(&h, &ctx(None, 10, 1, &[]));
    // 2 units were not left at the end; 1 was.
    assert_eq!(r.wrong_sold_out, 1);
    assert_eq!(
        r.earliest_sold_out.expect("earliest").proof,
        Proof::FinalStock { stock: 1 }
    );
}

#[test]
fn limit_refusals_are_judged_against_the_customer_s_own_requests() {
    // Limit 2: user 0 bought 1 unit (sent at 0) and was refused 1 more at 10 ms: wrong.
    // User 1 bought 2 and was refused 1: right.
    let h = history(vec![
        at(0, 1, Answer::Purchased, 0, 5),
        Attempt {
            key: AttemptKey { user: 0, seq: 1 },
            ..at(0, 1, Answer::LimitReached, 6, 10)
        },
        at(1, 2, Answer::Purchased, 0, 5),
        Attempt {
            key: AttemptKey { user: 1, seq: 1 },
            ..at(1, 1, Answer::LimitReached, 6, 10)
        },
    ]);
    let book = booked(&h.attempts);
    let limited = Context {
        per_user_limit: 2,
        ..ctx(Some(&book), 100, 97, &[])
    };
    let r = judge(&h, &limited);
    assert_eq!(r.wrong_limit, 1);
    let e = r.earliest_limit.expect("earliest");
    assert_eq!(
        (e.user, e.proof),
        (0, Proof::BelowLimit { held: 1, limit: 2 })
    );
    // Without a book, every request of the customer counts as held: user 0's refusal is
    // still proven wrong (1 + 1 <= 2), user 1's is not.
    let r = judge(
        &h,
        &Context {
            book: None,
            ..limited
        },
    );
    assert_eq!(r.wrong_limit, 1);
    // No limit declared: every limit refusal is wrong.
    let r = judge(&h, &ctx(Some(&book), 100, 97, &[]));
    assert_eq!(r.wrong_limit, 2);
}

#[test]
fn later_maxima_use_only_readings_sent_after_the_instant() {
    let later = LaterMax::new(&[
        Reading {
            sent_us: 30,
            stock: 1,
        },
        Reading {
            sent_us: 10,
            stock: 9,
        },
        Reading {
            sent_us: 20,
            stock: 4,
        },
    ]);
    assert_eq!(later.max_from(0).map(|r| r.stock), Some(9));
    assert_eq!(later.max_from(11).map(|r| r.stock), Some(4));
    assert_eq!(
        later.max_from(21).map(|r| (r.sent_us, r.stock)),
        Some((30, 1))
    );
    assert_eq!(later.max_from(31), None);
}
