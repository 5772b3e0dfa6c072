use super::*;

fn shelf(stock: i64, orders: u64) -> Shelf {
    Shelf {
        stock,
        orders: Some(orders),
    }
}

fn bought(id: &str) -> Answer {
    Answer::Purchased {
        order_id: id.into(),
        units: None,
    }
}

#[test]
fn over_stock() {
    let pass = super::over_stock(3, 4, &Answer::SoldOut, shelf(3, 0));
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    // `stock > 0` instead of `stock >= q`.
    let sold = super::over_stock(3, 4, &bought("o1"), shelf(-1, 1));
    assert_eq!(sold.status, Status::Fail);
    assert!(
        sold.detail.contains("sold 4 units from a stock of 3"),
        "{sold:?}"
    );
    let moved = super::over_stock(3, 4, &Answer::SoldOut, shelf(2, 0));
    assert_eq!(moved.status, Status::Fail, "{moved:?}");
    let error = super::over_stock(3, 4, &Answer::Status(Code::ResourceExhausted), shelf(3, 0));
    assert_eq!(error.status, Status::Fail, "{error:?}");
    for unknown in [Answer::Timeout, Answer::Status(Code::Unavailable)] {
        let c = super::over_stock(3, 4, &unknown, shelf(3, 0));
        assert_eq!(c.status, Status::Inconclusive, "{c:?}");
    }
}

#[test]
fn exact_stock() {
    let pass = super::exact_stock(3, &bought("o1"), shelf(0, 1), &Answer::SoldOut, shelf(0, 1));
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    let refused = super::exact_stock(
        3,
        &Answer::SoldOut,
        shelf(3, 0),
        &Answer::SoldOut,
        shelf(3, 0),
    );
    assert_eq!(refused.status, Status::Fail, "{refused:?}");
    let more = super::exact_stock(3, &bought("o1"), shelf(0, 1), &bought("o2"), shelf(-1, 2));
    assert_eq!(more.status, Status::Fail, "{more:?}");
    let short = Answer::Purchased {
        order_id: "o1".into(),
        units: Some(2),
    };
    let c = super::exact_stock(3, &short, shelf(0, 1), &Answer::SoldOut, shelf(0, 1));
    assert_eq!(c.status, Status::Fail, "{c:?}");
}

#[test]
fn idempotent() {
    let one = Some(Booked {
        orders: 1,
        units: 1,
    });
    let pass = super::idempotent(3, &bought("a"), &bought("a"), shelf(2, 1), one);
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    // The same order id, the stock taken again.
    let again = super::idempotent(3, &bought("a"), &bought("a"), shelf(1, 1), one);
    assert_eq!(again.status, Status::Fail, "{again:?}");
    let two = Some(Booked {
        orders: 2,
        units: 2,
    });
    let booked_twice = super::idempotent(3, &bought("a"), &bought("a"), shelf(2, 1), two);
    assert_eq!(booked_twice.status, Status::Fail, "{booked_twice:?}");
    // No deduplication at all: a second, whole order (the contract promises one).
    let second = super::idempotent(3, &bought("a"), &bought("b"), shelf(1, 2), two);
    assert_eq!(second.status, Status::Fail, "{second:?}");
    assert!(second.detail.contains("does not deduplicate"), "{second:?}");
    // A second order id, the stock taken once.
    let hidden = super::idempotent(3, &bought("a"), &bought("b"), shelf(2, 2), two);
    assert_eq!(hidden.status, Status::Fail, "{hidden:?}");
    // No deduplication under a per-customer limit of one: the retry is refused as a second
    // order, nothing taken twice.
    let limited = super::idempotent(3, &bought("a"), &Answer::LimitReached, shelf(2, 1), one);
    assert_eq!(limited.status, Status::Fail, "{limited:?}");
    assert!(
        limited.detail.contains("does not deduplicate"),
        "{limited:?}"
    );
    let limited = super::idempotent(3, &bought("a"), &Answer::LimitReached, shelf(1, 1), one);
    assert_eq!(limited.status, Status::Fail, "{limited:?}");
    // No order ids: the stock tells one order from two.
    let custom = Shelf {
        stock: 1,
        orders: None,
    };
    let anon = super::idempotent(3, &bought(""), &bought(""), custom, None);
    assert_eq!(anon.status, Status::Fail, "{anon:?}");
    let custom = Shelf {
        stock: 2,
        orders: None,
    };
    let anon = super::idempotent(3, &bought(""), &bought(""), custom, None);
    assert_eq!(anon.status, Status::Pass, "{anon:?}");
    let refused = super::idempotent(3, &bought("a"), &Answer::SoldOut, shelf(2, 1), one);
    assert_eq!(refused.status, Status::Fail, "{refused:?}");
    let unknown = super::idempotent(3, &bought("a"), &Answer::Timeout, shelf(2, 1), one);
    assert_eq!(unknown.status, Status::Inconclusive, "{unknown:?}");
}

#[test]
fn stale_round() {
    let refused = Answer::Status(Code::FailedPrecondition);
    let pass = super::stale_round(4, 5, 3, &refused, shelf(3, 0));
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    let applied = super::stale_round(4, 5, 3, &bought("o"), shelf(2, 1));
    assert_eq!(applied.status, Status::Fail, "{applied:?}");
    assert!(applied.detail.contains("round 4 was applied in round 5"));
    let other = super::stale_round(4, 5, 3, &Answer::Status(Code::InvalidArgument), shelf(3, 0));
    assert_eq!(other.status, Status::Fail, "{other:?}");
}

#[test]
fn limit() {
    let two = [bought("a"), bought("b")];
    let pass = super::limit(2, &two, Some(&Answer::LimitReached), shelf(1, 2));
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    let past = super::limit(2, &two, Some(&bought("c")), shelf(0, 3));
    assert_eq!(past.status, Status::Fail, "{past:?}");
    let early = super::limit(2, &[bought("a"), Answer::LimitReached], None, shelf(2, 1));
    assert_eq!(early.status, Status::Fail, "{early:?}");
    let unknown = super::limit(2, &[Answer::Timeout], None, shelf(3, 0));
    assert_eq!(unknown.status, Status::Inconclusive, "{unknown:?}");
}

fn probe(
    over: Option<(u32, &Answer, Shelf)>,
    zero: &Answer,
    after_zero: Shelf,
    zero_booked: Option<Booked>,
) -> Check {
    super::bad_quantity(&BadQuantity {
        stock: 11,
        over,
        zero,
        after_zero,
        zero_booked,
    })
}

#[test]
fn bad_quantity() {
    let rejected = Answer::Status(Code::InvalidArgument);
    let one = Some(Booked {
        orders: 1,
        units: 1,
    });
    let zero = bought("z");
    let pass = probe(
        Some((10, &rejected, shelf(11, 0))),
        &zero,
        shelf(10, 1),
        one,
    );
    assert_eq!(pass.status, Status::Pass, "{pass:?}");
    let zero_rejected = probe(None, &rejected, shelf(11, 0), None);
    assert_eq!(zero_rejected.status, Status::Pass, "{zero_rejected:?}");
    // An order of nothing.
    let free = Some(Booked {
        orders: 1,
        units: 0,
    });
    let c = probe(None, &zero, shelf(11, 1), free);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.detail.contains("took 0 units"), "{c:?}");
    // max + 1 placed.
    let placed = bought("big");
    let c = probe(
        Some((10, &placed, shelf(0, 1))),
        &Answer::SoldOut,
        shelf(0, 1),
        None,
    );
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.detail.contains("11 units was placed"), "{c:?}");
}

#[test]
fn skipped_names_every_probe() {
    let checks = all_skipped("--no-probes");
    let ids: Vec<_> = checks.iter().map(|c| c.id).collect();
    assert_eq!(ids, NAMES);
    assert!(checks.iter().all(|c| c.name == c.id.name()));
    assert!(checks.iter().all(|c| c.status == Status::Skipped));
}
