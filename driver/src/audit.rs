//! The audit: what the server's stock and ledger say after the run, checked against what the
//! clients saw. Requests with unknown effect (timeouts, lost workers) widen the expected ranges
//! instead of failing them.

use flashsale::pb;
use serde::Serialize;

use crate::stats::Stats;

/// One invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

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

/// The server's ledger totals for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LedgerAudit {
    /// Orders the ledger gained during the run.
    pub orders: i64,
    /// Units the ledger gained during the run.
    pub units_sold: i64,
    /// Both within the range the client observations allow.
    pub holds: bool,
}

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    /// Stock when the users started.
    pub initial_stock: i64,
    /// Stock read with GetStock after the last user finished.
    pub final_stock: i64,
    /// Units in acknowledged purchases.
    pub units_sold: i64,
    /// `max(0, units_sold - initial_stock)`.
    pub oversold_units: i64,
    /// Lowest stock any reply reported.
    pub min_stock_seen: Option<i64>,
    /// `initial - final` against `[units_sold, units_sold + indeterminate units]`.
    pub conservation: RangeCheck,
    pub ledger: LedgerAudit,
    pub duplicate_order_ids: u64,
    pub missing_order_ids: u64,
    pub checks: Vec<Check>,
    pub passed: bool,
}

impl Audit {
    /// Audits a run that started at `before` and ended at `after`, given what clients saw.
    pub fn new(before: &pb::StockReply, after: &pb::StockReply, stats: &Stats) -> Self {
        let initial_stock = before.stock;
        let final_stock = after.stock;
        let units_sold = to_i64(stats.units_purchased);
        let indeterminate_units = to_i64(stats.indeterminate_units);
        let oversold_units = (units_sold - initial_stock).max(0);
        let conservation = RangeCheck::new(
            initial_stock - final_stock,
            units_sold,
            units_sold + indeterminate_units,
        );
        let same_round = before.round == after.round;
        let ledger_orders = RangeCheck::new(
            delta(after.orders, before.orders),
            to_i64(stats.purchased),
            to_i64(stats.purchased + stats.indeterminate),
        );
        let ledger_units = RangeCheck::new(
            delta(after.units_sold, before.units_sold),
            units_sold,
            units_sold + indeterminate_units,
        );
        let ledger = LedgerAudit {
            orders: ledger_orders.observed,
            units_sold: ledger_units.observed,
            holds: same_round && ledger_orders.holds && ledger_units.holds,
        };
        let duplicate_order_ids = stats.duplicate_order_ids();

        let checks = vec![
            Check {
                name: "no_oversell",
                ok: oversold_units == 0,
                detail: format!(
                    "{units_sold} units sold from a stock of {initial_stock}: {oversold_units} oversold"
                ),
            },
            Check {
                name: "stock_not_negative",
                ok: final_stock >= 0,
                detail: format!("final stock {final_stock}"),
            },
            Check {
                name: "conservation",
                ok: conservation.holds,
                detail: format!(
                    "initial - final = {} - {} = {}; acknowledged sales allow {}",
                    initial_stock,
                    final_stock,
                    conservation.observed,
                    conservation.expected()
                ),
            },
            Check {
                name: "ledger_matches",
                ok: ledger.holds,
                detail: if same_round {
                    format!(
                        "server ledger gained {} orders / {} units; clients allow {} / {}",
                        ledger.orders,
                        ledger.units_sold,
                        ledger_orders.expected(),
                        ledger_units.expected()
                    )
                } else {
                    format!(
                        "the server started a new round during the run ({} -> {}): someone else called Reset",
                        before.round, after.round
                    )
                },
            },
            Check {
                name: "unique_order_ids",
                ok: duplicate_order_ids == 0 && stats.missing_order_ids == 0,
                detail: format!(
                    "{duplicate_order_ids} duplicate, {} missing order ids",
                    stats.missing_order_ids
                ),
            },
            Check {
                name: "valid_replies",
                ok: stats.bad_replies == 0,
                detail: format!("{} OK replies without a known outcome", stats.bad_replies),
            },
        ];
        let passed = checks.iter().all(|c| c.ok);
        Audit {
            initial_stock,
            final_stock,
            units_sold,
            oversold_units,
            min_stock_seen: stats.min_stock_seen,
            conservation,
            ledger,
            duplicate_order_ids,
            missing_order_ids: stats.missing_order_ids,
            checks,
            passed,
        }
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn delta(after: u64, before: u64) -> i64 {
    to_i64(after) - to_i64(before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Outcome;
    use std::time::Duration;

    fn stock(stock: i64, orders: u64, units: u64) -> pb::StockReply {
        pb::StockReply {
            stock,
            initial_stock: 10,
            orders,
            units_sold: units,
            round: 1,
            safe_strategy: 0,
            ..Default::default()
        }
    }

    fn stats(purchases: &[&str], timeouts: u64) -> Stats {
        let mut s = Stats::default();
        for id in purchases {
            let outcome = Outcome::Purchased {
                order_id: id.to_string(),
                quantity: 1,
                stock_after: 0,
            };
            s.record(outcome, 1, Duration::from_millis(1));
        }
        for _ in 0..timeouts {
            s.record(Outcome::Timeout, 1, Duration::from_millis(1));
        }
        s
    }

    fn failed(audit: &Audit) -> Vec<&'static str> {
        audit
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn clean_run_passes() {
        let audit = Audit::new(
            &stock(3, 0, 0),
            &stock(0, 3, 3),
            &stats(&["a", "b", "c"], 0),
        );
        assert!(audit.passed, "{:?}", audit.checks);
        assert_eq!(audit.conservation.observed, 3);
    }

    #[test]
    fn oversell_fails() {
        let audit = Audit::new(
            &stock(2, 0, 0),
            &stock(-1, 3, 3),
            &stats(&["a", "b", "c"], 0),
        );
        assert!(!audit.passed);
        assert_eq!(audit.oversold_units, 1);
        assert_eq!(failed(&audit), ["no_oversell", "stock_not_negative"]);
    }

    #[test]
    fn timeouts_widen_the_ranges() {
        // Two timeouts, one of which the server applied.
        let audit = Audit::new(&stock(5, 0, 0), &stock(3, 2, 2), &stats(&["a"], 2));
        assert!(audit.passed, "{:?}", audit.checks);
        assert_eq!(
            (
                audit.conservation.expected_min,
                audit.conservation.expected_max
            ),
            (1, 3)
        );
        // But a decrement nobody accounts for is a lost update.
        let audit = Audit::new(&stock(5, 0, 0), &stock(1, 2, 2), &stats(&["a"], 2));
        assert_eq!(failed(&audit), ["conservation"]);
    }

    #[test]
    fn duplicates_and_ledger_mismatch_fail() {
        let audit = Audit::new(&stock(5, 0, 0), &stock(3, 1, 1), &stats(&["a", "a"], 0));
        assert_eq!(failed(&audit), ["ledger_matches", "unique_order_ids"]);
        let mut after = stock(3, 2, 2);
        after.round = 2;
        let audit = Audit::new(&stock(5, 0, 0), &after, &stats(&["a", "b"], 0));
        assert_eq!(failed(&audit), ["ledger_matches"]);
    }
}
