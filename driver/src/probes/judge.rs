//! What each contract probe saw, judged: pure functions from the answers and the stock read
//! afterwards to a named [`Check`], so every verdict can be tested without a server.

use tonic::Code;

pub use super::answer::{Answer, Booked, Shelf};
use crate::audit::{Check, CheckId, Status};

/// `q > stock` is refused (SOLD_OUT) and changes nothing.
pub const OVER_STOCK: CheckId = CheckId::ProbeOverStock;
/// `q == stock` sells exactly the stock, and one more unit is then refused.
pub const EXACT_STOCK: CheckId = CheckId::ProbeExactStock;
/// The same request id twice gives the same order and takes the stock once.
pub const IDEMPOTENT: CheckId = CheckId::ProbeIdempotent;
/// A purchase for the previous round is refused (FAILED_PRECONDITION) and changes nothing.
pub const STALE_ROUND: CheckId = CheckId::ProbeStaleRound;
/// `limit + 1` units for one customer: the last one is refused (LIMIT_REACHED).
pub const LIMIT: CheckId = CheckId::ProbeLimit;
/// `max_quantity + 1` is rejected (INVALID_ARGUMENT); quantity 0 means one unit.
pub const BAD_QUANTITY: CheckId = CheckId::ProbeBadQuantity;
/// Every probe, in the order they run.
pub const NAMES: [CheckId; 6] = [
    OVER_STOCK,
    EXACT_STOCK,
    IDEMPOTENT,
    STALE_ROUND,
    LIMIT,
    BAD_QUANTITY,
];

/// A check being judged: what was seen, what was wrong, what could not be told.
#[derive(Debug)]
struct Finding {
    name: CheckId,
    seen: Vec<String>,
    wrong: Vec<String>,
    unknown: Vec<String>,
}

impl Finding {
    fn new(name: CheckId) -> Self {
        Self {
            name,
            seen: Vec::new(),
            wrong: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn seen(&mut self, what: String) {
        self.seen.push(what);
    }

    fn wrong(&mut self, what: String) {
        self.wrong.push(what);
    }

    /// `answer` is of unknown effect: say so and return true.
    fn unknown_if(&mut self, what: &str, answer: &Answer) -> bool {
        if answer.unknown() {
            self.unknown
                .push(format!("{what}: {answer}, effect unknown"));
        }
        answer.unknown()
    }

    /// The stock read afterwards must be `expected`, and the counter `orders` if kept.
    fn shelf(&mut self, after: Shelf, expected: i64, orders: u64) {
        if after.stock != expected {
            self.wrong(format!(
                "stock {} afterwards, {expected} expected",
                after.stock
            ));
        }
        if let Some(n) = after.orders.filter(|&n| n != orders) {
            self.wrong(format!("the server counts {n} orders, {orders} expected"));
        }
    }

    fn check(self) -> Check {
        let seen = self.seen.join("; ");
        let (status, why) = if !self.wrong.is_empty() {
            (Status::Fail, self.wrong.join("; "))
        } else if !self.unknown.is_empty() {
            (Status::Inconclusive, self.unknown.join("; "))
        } else {
            return Check::new(self.name, Status::Pass, seen);
        };
        let detail = if seen.is_empty() {
            why
        } else {
            format!("{why} ({seen})")
        };
        Check::new(self.name, status, detail)
    }
}

/// `q` units of a stock of `stock`, answered `answer`, then `after`.
pub fn over_stock(stock: i64, q: u32, answer: &Answer, after: Shelf) -> Check {
    let mut f = Finding::new(OVER_STOCK);
    f.seen(format!(
        "{q} units asked of a stock of {stock}: {answer}, stock {} afterwards",
        after.stock
    ));
    if !f.unknown_if("the purchase", answer) {
        match answer {
            Answer::SoldOut => {}
            Answer::Purchased { .. } => f.wrong(format!("sold {q} units from a stock of {stock}")),
            other => f.wrong(format!("answered {other} instead of OK + SOLD_OUT")),
        }
        f.shelf(after, stock, 0);
    }
    f.check()
}

/// `stock` units of a stock of `stock` (`first`, then `after_first`), then one more unit by
/// another customer (`second`, then `after_second`).
pub fn exact_stock(
    stock: i64,
    first: &Answer,
    after_first: Shelf,
    second: &Answer,
    after_second: Shelf,
) -> Check {
    let mut f = Finding::new(EXACT_STOCK);
    f.seen(format!(
        "{stock} units of a stock of {stock}: {first}, stock {}; one more unit: {second}, stock {}",
        after_first.stock, after_second.stock
    ));
    if f.unknown_if("buying the whole stock", first) {
        return f.check();
    }
    match first {
        Answer::Purchased { units, .. } => {
            if let Some(units) = units.filter(|&u| i64::from(u) != stock) {
                f.wrong(format!("the reply accounts for {units} units"));
            }
        }
        other => f.wrong(format!(
            "buying exactly the stock answered {other} instead of PURCHASED"
        )),
    }
    let bought = matches!(first, Answer::Purchased { .. });
    f.shelf(
        after_first,
        if bought { 0 } else { stock },
        u64::from(bought),
    );
    if !f.unknown_if("one more unit", second) {
        match second {
            Answer::SoldOut => {}
            Answer::Purchased { .. } => f.wrong("sold one more unit after the stock".into()),
            other => f.wrong(format!(
                "one more unit answered {other} instead of OK + SOLD_OUT"
            )),
        }
        if bought {
            f.shelf(after_second, 0, 1);
        }
    }
    f.check()
}

/// One unit of a stock of `stock` bought twice with one request id.
pub fn idempotent(
    stock: i64,
    first: &Answer,
    retry: &Answer,
    after: Shelf,
    booked: Option<Booked>,
) -> Check {
    let mut f = Finding::new(IDEMPOTENT);
    f.seen(format!(
        "one unit of {stock}: {first}; the same request again: {retry}; stock {} afterwards",
        after.stock
    ));
    if let Some(b) = booked {
        f.seen(format!(
            "the book lists {} orders ({} units) with that request id",
            b.orders, b.units
        ));
    }
    let unknown = f.unknown_if("the first purchase", first) | f.unknown_if("the retry", retry);
    if unknown {
        return f.check();
    }
    if first.order_id().is_some() && *retry == Answer::LimitReached {
        // Taken as a second order, which the per-customer limit refused: no deduplication,
        // and nothing taken twice.
        f.shelf(after, stock - 1, 1);
        if let Some(b) = booked.filter(|b| b.orders != 1) {
            f.wrong(format!(
                "the book lists {} orders with the request id",
                b.orders
            ));
        }
        return not_deduplicated(
            f.check(),
            "the retry was taken as a second order and refused by the per-customer limit",
        );
    }
    let (Some(id), Some(again)) = (first.order_id(), retry.order_id()) else {
        f.wrong(format!(
            "a purchase of one unit of {stock} and its retry answered {first} and {retry}, not PURCHASED twice"
        ));
        return f.check();
    };
    // Without order ids of the checkout's own (a custom checkout read without one), the
    // stock tells the one order from two.
    let one_order = if id.is_empty() || again.is_empty() {
        f.seen("no order ids: one order or two told by the stock".into());
        after.stock == stock - 1
    } else {
        id == again
    };
    if one_order {
        // One order: the stock taken once, one order counted and booked.
        f.shelf(after, stock - 1, 1);
        if let Some(b) = booked.filter(|b| b.orders != 1) {
            f.wrong(format!(
                "the book lists {} orders with the request id",
                b.orders
            ));
        }
        return f.check();
    }
    // A second order: the checkout does not deduplicate request ids, which the contract
    // promises; the check fails, saying whether the second order was at least a whole one.
    f.shelf(after, stock - 2, 2);
    if let Some(b) = booked.filter(|b| b.orders != 2) {
        f.wrong(format!(
            "the retry got a second order id but the book lists {} orders with the request id",
            b.orders
        ));
    }
    let second = if id.is_empty() || again.is_empty() {
        "the retry placed a second order (the stock taken twice)".to_string()
    } else {
        format!("the retry placed a second order (order {again} after {id})")
    };
    not_deduplicated(f.check(), &second)
}

/// A retry that was a whole second purchase (`what`): a failure. The contract promises that a
/// retry with the same request id is answered its placed order, never bought twice (the
/// proto's `UNKNOWN`; clients retry `UNAVAILABLE` on their own), so a checkout that books it
/// again sells twice to a customer who bought once. `check` keeps what else was wrong.
fn not_deduplicated(check: Check, what: &str) -> Check {
    let detail = if check.detail.is_empty() {
        String::new()
    } else {
        format!(" ({})", check.detail)
    };
    Check::new(
        IDEMPOTENT,
        Status::Fail,
        format!("the checkout does not deduplicate request ids: {what}{detail}"),
    )
}

/// One unit of a stock of `stock` for round `stale` while round `current` is on.
pub fn stale_round(stale: u64, current: u64, stock: i64, answer: &Answer, after: Shelf) -> Check {
    let mut f = Finding::new(STALE_ROUND);
    f.seen(format!(
        "one unit for round {stale} during round {current}: {answer}, stock {} afterwards",
        after.stock
    ));
    if !f.unknown_if("the purchase", answer) {
        match answer {
            Answer::Status(Code::FailedPrecondition) => {}
            Answer::Purchased { .. } => f.wrong(format!(
                "a purchase for round {stale} was applied in round {current}"
            )),
            other => f.wrong(format!("answered {other} instead of FAILED_PRECONDITION")),
        }
        f.shelf(after, stock, 0);
    }
    f.check()
}

/// One customer buys `limit` units in orders (each answered as in `up_to`), then one more
/// (`over`, `None` when an order below the limit was not bought), from a stock of
/// `limit + 1`.
pub fn limit(limit: u32, up_to: &[Answer], over: Option<&Answer>, after: Shelf) -> Check {
    let mut f = Finding::new(LIMIT);
    let stock = i64::from(limit) + 1;
    for (i, answer) in up_to.iter().enumerate() {
        if f.unknown_if(&format!("order {} within the limit", i + 1), answer) {
            return f.check();
        }
        if !matches!(answer, Answer::Purchased { .. }) {
            f.wrong(format!(
                "order {} within the limit of {limit} answered {answer} (stock {stock})",
                i + 1
            ));
            return f.check();
        }
    }
    let Some(over) = over else {
        f.wrong(format!(
            "the customer could not buy up to the limit of {limit}"
        ));
        return f.check();
    };
    f.seen(format!(
        "a customer bought {limit} units (the limit) of {stock} in {} orders, then one more: {over}, stock {} afterwards",
        up_to.len(),
        after.stock
    ));
    if !f.unknown_if("the unit past the limit", over) {
        match over {
            Answer::LimitReached => {}
            Answer::Purchased { .. } => f.wrong(format!(
                "the customer got {} units with a limit of {limit}",
                u64::from(limit) + 1
            )),
            other => f.wrong(format!(
                "the unit past the limit answered {other} instead of OK + LIMIT_REACHED"
            )),
        }
        f.shelf(after, 1, up_to.len() as u64);
    }
    f.check()
}

/// `max_quantity + 1` units (when the server declares a maximum: `over`), then quantity 0
/// (`zero`), from a stock of `stock`; the book's word on the quantity-0 order if read.
pub struct BadQuantity<'a> {
    pub stock: i64,
    pub over: Option<(u32, &'a Answer, Shelf)>,
    pub zero: &'a Answer,
    pub after_zero: Shelf,
    pub zero_booked: Option<Booked>,
}

/// See [`BadQuantity`].
pub fn bad_quantity(probe: &BadQuantity<'_>) -> Check {
    let mut f = Finding::new(BAD_QUANTITY);
    let mut stock = probe.stock;
    match probe.over {
        None => f.seen("no max_quantity declared: max + 1 not probed".into()),
        Some((max, answer, after)) => {
            f.seen(format!(
                "{} units (max {max}) of {stock}: {answer}, stock {}",
                u64::from(max) + 1,
                after.stock
            ));
            if !f.unknown_if("max + 1", answer) {
                match answer {
                    Answer::Status(Code::InvalidArgument | Code::OutOfRange) => {}
                    Answer::Purchased { .. } => f.wrong(format!(
                        "an order of {} units was placed with a maximum of {max}",
                        u64::from(max) + 1
                    )),
                    other => f.wrong(format!(
                        "max + 1 answered {other} instead of INVALID_ARGUMENT"
                    )),
                }
                f.shelf(after, stock, 0);
                stock = after.stock;
            }
        }
    }
    let (zero, after) = (probe.zero, probe.after_zero);
    f.seen(format!(
        "quantity 0 of {stock}: {zero}, stock {}",
        after.stock
    ));
    if f.unknown_if("quantity 0", zero) {
        return f.check();
    }
    let taken = stock - after.stock;
    match zero {
        // The contract: "0 means 1".
        Answer::Purchased { units, .. } => {
            if taken != 1 {
                f.wrong(format!(
                    "an order for quantity 0 took {taken} units; 0 means 1"
                ));
            }
            if let Some(units) = units.filter(|&u| u != 1) {
                f.wrong(format!(
                    "the reply to quantity 0 accounts for {units} units; 0 means 1"
                ));
            }
            if let Some(b) = probe.zero_booked.filter(|b| b.orders != 1 || b.units != 1) {
                f.wrong(format!(
                    "the book lists {} orders of {} units for it; 0 means 1",
                    b.orders, b.units
                ));
            }
        }
        // Refusing it changes nothing: safe, though the contract reads 0 as 1.
        Answer::Status(Code::InvalidArgument) => {
            if taken != 0 {
                f.wrong(format!("rejected, yet {taken} units were taken"));
            }
        }
        other => f.wrong(format!(
            "quantity 0 answered {other} instead of PURCHASED (0 means 1)"
        )),
    }
    f.check()
}

/// Every probe skipped, for `reason`.
pub fn all_skipped(reason: &str) -> Vec<Check> {
    NAMES
        .into_iter()
        .map(|id| Check::new(id, Status::Skipped, reason.to_string()))
        .collect()
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
