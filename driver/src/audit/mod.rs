//! The audit: what the server's stock and order book say after the run, checked against what
//! the clients saw, attempt by attempt.
//!
//! Every check ends `pass`, `fail`, `inconclusive` (the run did not exercise what the check is
//! about, or left it unknown) or `skipped` (not applicable: no book, no limit). The verdict is
//! FAIL when any check failed, else INCONCLUSIVE when any was inconclusive, else PASS.
//!
//! With the server's order book ([`book`](crate::checkout::book)) every acknowledged purchase, refusal and
//! indeterminate attempt is reconciled order by order ([`reconcile`]); without it (a server
//! with no `ListOrders`, or a book that overflowed its cap) the audit falls back to ranges:
//! attempts with unknown effect widen what the stock may be, and leave the verdict
//! inconclusive.

mod check;
pub mod exactly_once;
mod facts;
pub mod reconcile;
pub mod undersell;

use flashsale::pb;
use serde::Serialize;

use crate::checkout::book::BookState;
use crate::engine::stats::Stats;
use crate::spec::policy::Policy;
pub use check::{Check, CheckId, Status, Verdict};
use facts::Facts;
pub use reconcile::Reconciliation;
pub use undersell::{Reading, Refusals};

/// An inclusive range of allowed values and the one observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RangeCheck {
    pub holds: bool,
    pub expected_min: i64,
    pub expected_max: i64,
    pub observed: i64,
}

impl RangeCheck {
    fn new(observed: i64, expected_min: i64, expected_max: i64) -> Self {
        Self {
            holds: (expected_min..=expected_max).contains(&observed),
            expected_min,
            expected_max,
            observed,
        }
    }

    fn expected(&self) -> String {
        if self.expected_min == self.expected_max {
            self.expected_min.to_string()
        } else {
            format!("{}..={}", self.expected_min, self.expected_max)
        }
    }
}

/// The server's own totals (GetStock) for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LedgerAudit {
    /// Orders the server's counters gained during the run.
    pub orders: i64,
    /// Units the server's counters gained during the run.
    pub units_sold: i64,
    /// They agree with the book (or, without one, with the range the clients allow).
    pub holds: bool,
}

/// Everything the audit needs besides the clients' statistics.
#[derive(Debug, Clone)]
pub struct Evidence<'a> {
    /// GetStock when the users started (after a verified Reset).
    pub before: &'a pb::StockReply,
    /// GetStock once the server was quiescent after the run.
    pub after: &'a pb::StockReply,
    pub book: &'a BookState,
    /// `None` when stock and book stopped changing before the settle deadline; else what was
    /// still moving.
    pub unsettled: Option<String>,
    /// `None` when a reading after the book's showed the same stock and counters; else what
    /// moved after the audit read them.
    pub moved: Option<String>,
    /// How long the stock and counters had to stay unchanged before they were read.
    pub quiet: std::time::Duration,
    pub policy: &'a Policy,
    /// The checkout keeps order counters (GetStock's `orders` and `units_sold`); a checkout of
    /// the team's own may report only its stock, and then `books_balance` is skipped.
    pub counters: bool,
    /// GetStock readings during the run, on the history's clock.
    pub readings: &'a [Reading],
    /// How far apart the clocks of the history and the readings may be (0 in one process).
    pub slack_us: u32,
}

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub verdict: Verdict,
    /// Stock when the users started.
    pub initial_stock: i64,
    /// Stock read with GetStock once the server was quiescent.
    pub final_stock: i64,
    /// Units the server sold in this run: the book's when it was reconciled, else the
    /// acknowledged ones.
    pub units_sold: i64,
    /// Units the users asked for in all their attempts.
    pub units_demanded: i64,
    /// `max(0, units_sold - initial_stock)`.
    pub oversold_units: i64,
    /// Lowest stock any reply reported.
    pub min_stock_seen: Option<i64>,
    /// `initial - final` against what the book (or the clients) account for.
    pub conservation: RangeCheck,
    pub ledger: LedgerAudit,
    pub reconciliation: Reconciliation,
    /// Refusals proven wrong at the moment they were made.
    pub refusals: Refusals,
    pub checks: Vec<Check>,
}

impl Audit {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// What a PASS means for this run: every check held, naming the ones that were skipped
    /// (never "every invariant held" when some were not checked).
    pub fn pass_summary(&self) -> String {
        let skipped = self.with_status(Status::Skipped);
        if skipped.is_empty() {
            "every check held".to_string()
        } else {
            format!(
                "every check that applies held; not checked: {}",
                skipped.join(", ")
            )
        }
    }

    /// Appends checks made outside the audit of the load (the contract probes,
    /// [`crate::probes`]) and judges the verdict again: a failed one fails the run.
    pub fn add_checks(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
        let worst = Verdict::of(&self.checks);
        // Never better than before: a run without its final state stays at most inconclusive.
        self.verdict = match (self.verdict, worst) {
            (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
            (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
            _ => Verdict::Pass,
        };
    }

    /// Names of the checks that ended with `status`.
    pub fn with_status(&self, status: Status) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Audits a run from what the clients saw (`stats`) and what the server shows.
    pub fn new(stats: &Stats, ev: &Evidence<'_>) -> Self {
        let (before, after) = (ev.before, ev.after);
        let initial_stock = before.stock;
        let final_stock = after.stock;
        let same_round = before.round == after.round;
        let preexisting = usize::try_from(before.orders).unwrap_or(usize::MAX);
        let book = ev.book.complete().filter(|_| same_round);
        let mut rec = reconcile::reconcile(&stats.history, book, preexisting, after.per_user_limit);
        if !rec.available {
            rec.reason = Some(
                ev.book
                    .reason()
                    .unwrap_or("the round changed during the run")
                    .to_string(),
            );
        }
        let refusals = undersell::judge(
            &stats.history,
            &undersell::Context {
                book: book.map(|b| (b, preexisting)),
                initial_stock,
                final_stock,
                readings: ev.readings,
                per_user_limit: after.per_user_limit,
                slack_us: ev.slack_us,
            },
        );
        rec.undersold_attempts = refusals.wrong_sold_out;
        rec.wrong_limit_refusals = refusals.wrong_limit;
        let acked_units = to_i64(stats.counts.units_purchased);
        let indeterminate_units = to_i64(stats.counts.indeterminate_units);
        let units_sold = if rec.available {
            to_i64(rec.book_units)
        } else {
            acked_units
        };
        let units_demanded = to_i64(stats.counts.units_requested);
        let oversold_units = units_sold.saturating_sub(initial_stock).max(0);
        let dropped = initial_stock.saturating_sub(final_stock);
        let conservation = if rec.available {
            RangeCheck::new(dropped, units_sold, units_sold)
        } else {
            RangeCheck::new(
                dropped,
                acked_units,
                acked_units.saturating_add(indeterminate_units),
            )
        };
        let ledger_orders = delta(after.orders, before.orders);
        let ledger_units = delta(after.units_sold, before.units_sold);
        let ledger = if rec.available {
            LedgerAudit {
                orders: ledger_orders,
                units_sold: ledger_units,
                holds: ledger_orders == to_i64(rec.book_orders)
                    && ledger_units == to_i64(rec.book_units),
            }
        } else {
            let orders = RangeCheck::new(
                ledger_orders,
                to_i64(stats.counts.purchased),
                to_i64(
                    stats
                        .counts
                        .purchased
                        .saturating_add(stats.counts.indeterminate),
                ),
            );
            let units = RangeCheck::new(
                ledger_units,
                acked_units,
                acked_units.saturating_add(indeterminate_units),
            );
            LedgerAudit {
                orders: ledger_orders,
                units_sold: ledger_units,
                holds: same_round && orders.holds && units.holds,
            }
        };

        let facts = Facts {
            stats,
            ev,
            rec: &rec,
            initial_stock,
            final_stock,
            units_sold,
            units_demanded,
            oversold_units,
            same_round,
            refusals: &refusals,
        };
        let mut checks = vec![
            facts.availability(),
            facts.no_oversell(),
            Check::holds(
                CheckId::StockNotNegative,
                final_stock >= 0,
                format!("final stock {final_stock}"),
            ),
            facts.conservation(&conservation),
            facts.books_balance(&ledger),
        ];
        checks.extend(facts.reconciled());
        checks.push(facts.no_undersell());
        checks.push(facts.per_user_limit());
        checks.push(facts.valid_replies());
        checks.push(facts.all_resolved());
        checks.push(match (&ev.moved, &ev.unsettled) {
            (Some(what), _) => Check::new(CheckId::Settled, Status::Fail, what.clone()),
            (None, Some(what)) => Check::new(CheckId::Settled, Status::Inconclusive, what.clone()),
            (None, None) => Check::new(
                CheckId::Settled,
                Status::Pass,
                format!(
                    "stock and counters unchanged for {:.1} s after their last change, and still {:.1} s later after the order book was read (later changes are outside what the audit sees)",
                    ev.quiet.as_secs_f64(),
                    ev.quiet.as_secs_f64()
                ),
            ),
        });
        checks.extend(facts.thresholds());

        let verdict = Verdict::of(&checks);
        Audit {
            verdict,
            initial_stock,
            final_stock,
            units_sold,
            units_demanded,
            oversold_units,
            min_stock_seen: stats.min_stock_seen,
            conservation,
            ledger,
            reconciliation: rec,
            refusals,
            checks,
        }
    }
}

/// The final state of a run whose target could not be read after the load (it died, or
/// stopped answering): what the audit can still say from the clients' side.
#[derive(Debug, Clone)]
pub struct LostTarget<'a> {
    /// GetStock when the users started (after a verified Reset).
    pub before: &'a pb::StockReply,
    /// Why the final stock and order book could not be read.
    pub why: String,
    /// The last stock polled during the run, if any.
    pub last_stock: Option<i64>,
    pub policy: &'a Policy,
}

impl Audit {
    /// Audits a run whose final state could not be read. What the clients saw can still prove
    /// a failure (acknowledged units beyond the stock, a reply showing negative stock, more
    /// than the per-user limit acknowledged, invalid replies, thresholds); every check that
    /// needs the final stock, counters or book is inconclusive, and a `final_state` check
    /// says why, so the verdict is FAIL or INCONCLUSIVE, never PASS.
    pub fn without_final_state(stats: &Stats, lost: &LostTarget<'_>) -> Self {
        let unknown = format!(
            "the final stock and order book could not be read: {}",
            lost.why
        );
        // The checks that only use the clients' side run as without an order book; the ones
        // that would read this stand-in for the final state are replaced below.
        let after = pb::StockReply {
            stock: lost.last_stock.unwrap_or(lost.before.stock),
            ..*lost.before
        };
        let book = BookState::Unavailable(unknown.clone());
        let mut audit = Audit::new(
            stats,
            &Evidence {
                before: lost.before,
                after: &after,
                book: &book,
                unsettled: Some(unknown.clone()),
                moved: None,
                quiet: std::time::Duration::ZERO,
                policy: lost.policy,
                counters: true,
                readings: &[],
                slack_us: 0,
            },
        );
        audit.conservation.holds = false;
        audit.ledger.holds = false;
        for check in &mut audit.checks {
            *check = match check.id {
                CheckId::StockNotNegative => match stats.min_stock_seen {
                    Some(min) if min < 0 => Check::new(
                        CheckId::StockNotNegative,
                        Status::Fail,
                        format!("a reply reported stock {min}"),
                    ),
                    _ => Check::new(
                        CheckId::StockNotNegative,
                        Status::Inconclusive,
                        format!("no reply reported a negative stock; {unknown}"),
                    ),
                },
                // Acknowledged units beyond the stock prove an oversell; fewer prove nothing
                // (attempts of unknown effect, or sales the server never acknowledged).
                CheckId::NoOversell if check.status == Status::Pass => Check::new(
                    CheckId::NoOversell,
                    Status::Inconclusive,
                    format!(
                        "{} units acknowledged from a stock of {}; {unknown}",
                        audit.units_sold, audit.initial_stock
                    ),
                ),
                CheckId::NoUndersell if stats.counts.sold_out > 0 => {
                    Check::new(CheckId::NoUndersell, Status::Inconclusive, unknown.clone())
                }
                id @ (CheckId::Conservation | CheckId::BooksBalance | CheckId::Settled) => {
                    Check::new(id, Status::Inconclusive, unknown.clone())
                }
                _ => continue,
            };
        }
        let shown = match lost.last_stock {
            Some(stock) => format!("; final_stock shows the last stock polled ({stock})"),
            None => "; final_stock shows the initial stock (no poll succeeded)".into(),
        };
        audit.checks.push(Check::new(
            CheckId::FinalState,
            Status::Inconclusive,
            format!("{unknown}{shown}"),
        ));
        audit.verdict = if audit.checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::Fail
        } else {
            Verdict::Inconclusive
        };
        audit
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn delta(after: u64, before: u64) -> i64 {
    to_i64(after).saturating_sub(to_i64(before))
}

#[cfg(test)]
mod tests;
