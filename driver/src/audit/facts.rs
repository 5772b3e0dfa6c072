//! The audit's checkers: each a small function from what the run saw ([`Facts`]) to one named
//! [`Check`] (a few, for the book's), composed in order by [`super::Audit::new`].

use super::{
    Check, CheckId, Evidence, LedgerAudit, RangeCheck, Reconciliation, Refusals, Status,
    exactly_once,
};
use crate::engine::stats::Stats;
use crate::outcome::code_name;
use crate::spec::policy::{LatencyStat, Metric};

/// What the checks are computed from.
pub(super) struct Facts<'a> {
    pub(super) stats: &'a Stats,
    pub(super) ev: &'a Evidence<'a>,
    pub(super) rec: &'a Reconciliation,
    pub(super) initial_stock: i64,
    pub(super) final_stock: i64,
    pub(super) units_sold: i64,
    pub(super) units_demanded: i64,
    pub(super) oversold_units: i64,
    pub(super) same_round: bool,
    pub(super) refusals: &'a Refusals,
}

impl Facts<'_> {
    pub(super) fn availability(&self) -> Check {
        let s = self.stats;
        if s.counts.attempts == 0 {
            return Check::new(
                CheckId::Availability,
                Status::Inconclusive,
                "no attempt was made".into(),
            );
        }
        if self.units_sold == 0 && self.initial_stock > 0 && self.final_stock > 0 {
            return Check::new(
                CheckId::Availability,
                Status::Fail,
                format!(
                    "no purchase succeeded in {} attempts although {} units were in stock{}",
                    s.counts.attempts,
                    self.final_stock,
                    errors_by_status(s)
                ),
            );
        }
        let rate = s.counts.error_rate();
        let max = self.ev.policy.max_error_rate;
        Check::holds(
            CheckId::Availability,
            rate <= max,
            format!(
                "{:.1}% of attempts answered with an error{}; at most {:.1}% allowed (--max-error-rate)",
                rate * 100.0,
                errors_by_status(s),
                max * 100.0
            ),
        )
    }

    pub(super) fn no_oversell(&self) -> Check {
        let detail = format!(
            "{} units sold from a stock of {}: {} oversold",
            self.units_sold, self.initial_stock, self.oversold_units
        );
        if self.oversold_units > 0 {
            // Units of orders this run did not send count as sold: say so, they may be the
            // cause (another round's book) rather than an oversell.
            let detail = match self.rec.ghost {
                0 => detail,
                ghost => format!(
                    "{detail} ({ghost} of the book's orders are not this run's: see no_ghost_orders)"
                ),
            };
            Check::new(CheckId::NoOversell, Status::Fail, detail)
        } else if self.units_demanded <= self.initial_stock {
            Check::new(
                CheckId::NoOversell,
                Status::Inconclusive,
                format!(
                    "not exercised: the users asked for {} units of a stock of {}, so nothing could be oversold; use more users or a smaller --stock",
                    self.units_demanded, self.initial_stock
                ),
            )
        } else {
            Check::new(CheckId::NoOversell, Status::Pass, detail)
        }
    }

    pub(super) fn conservation(&self, range: &RangeCheck) -> Check {
        let accounted = if self.rec.available {
            "the order book holds"
        } else {
            "acknowledged sales allow"
        };
        Check::holds(
            CheckId::Conservation,
            range.holds,
            format!(
                "initial - final = {} - {} = {}; {accounted} {}",
                self.initial_stock,
                self.final_stock,
                range.observed,
                range.expected()
            ),
        )
    }

    pub(super) fn books_balance(&self, ledger: &LedgerAudit) -> Check {
        let (before, after) = (self.ev.before, self.ev.after);
        if !self.ev.counters {
            return Check::new(
                CheckId::BooksBalance,
                Status::Skipped,
                "the checkout reports its stock only, no order counters".into(),
            );
        }
        let detail = if !self.same_round {
            format!(
                "the server started a new round during the run ({} -> {}): someone else called Reset",
                before.round, after.round
            )
        } else if self.rec.available {
            format!(
                "the server's counters gained {} orders / {} units; its order book lists {} / {}",
                ledger.orders, ledger.units_sold, self.rec.book_orders, self.rec.book_units
            )
        } else {
            format!(
                "the server's counters gained {} orders / {} units; clients saw {} purchases / {} units and {} of unknown effect",
                ledger.orders,
                ledger.units_sold,
                self.stats.counts.purchased,
                self.stats.counts.units_purchased,
                self.stats.counts.indeterminate
            )
        };
        Check::holds(CheckId::BooksBalance, ledger.holds, detail)
    }

    /// The checks that need the book: lost, phantom, ghost, unique.
    pub(super) fn reconciled(&self) -> Vec<Check> {
        let r = self.rec;
        // A request id applied more than once is `exactly_once`'s finding.
        let unique = Check::holds(
            CheckId::UniqueOrders,
            r.duplicate_order_ids == 0,
            format!("{} duplicate order ids", r.duplicate_order_ids),
        );
        if !r.available {
            let reason = r.reason.as_deref().unwrap_or("unavailable");
            // A book that exists but could not be read leaves these unknown, not inapplicable.
            let (status, why) = if self.ev.book.failed() {
                (
                    Status::Inconclusive,
                    format!("the order book could not be read: {reason}"),
                )
            } else {
                (Status::Skipped, format!("no order book: {reason}"))
            };
            return vec![
                Check::new(CheckId::NoLostOrders, status, why.clone()),
                Check::new(CheckId::NoPhantomSales, status, why.clone()),
                Check::new(CheckId::NoGhostOrders, status, why),
                unique,
                exactly_once::check(r, &self.stats.tries, self.ev.book.failed()),
            ];
        }
        let matched = r.book_orders.saturating_sub(r.ghost);
        let ghosts = if r.ghost > 0 && matched == 0 && self.stats.counts.purchased > 0 {
            format!(
                "none of the book's {} orders is one of this run's, although {} purchases were acknowledged: this is another round's book (not restarted by Reset?) or a book of other buyers",
                r.book_orders, self.stats.counts.purchased
            )
        } else if r.without_request_id > 0 {
            format!(
                "{} orders in the book that this run did not send ({} of them with no request id at all: the book cannot be matched to requests)",
                r.ghost, r.without_request_id
            )
        } else {
            format!("{} orders in the book that this run did not send", r.ghost)
        };
        vec![
            Check::holds(
                CheckId::NoLostOrders,
                r.lost == 0,
                format!(
                    "{} acknowledged purchases missing from the order book (or there with another order id or quantity)",
                    r.lost
                ),
            ),
            Check::holds(
                CheckId::NoPhantomSales,
                r.phantom == 0,
                format!(
                    "{} attempts answered sold out, limit reached or a definite error are in the order book",
                    r.phantom
                ),
            ),
            Check::holds(CheckId::NoGhostOrders, r.ghost == 0, ghosts),
            Check::holds(
                CheckId::OrdersMatch,
                r.mismatched_orders == 0,
                format!(
                    "{} orders in the book under another customer or for another quantity than their request asked for",
                    r.mismatched_orders
                ),
            ),
            unique,
            exactly_once::check(r, &self.stats.tries, false),
        ]
    }

    pub(super) fn no_undersell(&self) -> Check {
        let turned_away = self.stats.counts.sold_out;
        if turned_away == 0 {
            return Check::new(
                CheckId::NoUndersell,
                Status::Pass,
                "no buyer was told sold out".into(),
            );
        }
        let Some(earliest) = &self.refusals.earliest_sold_out else {
            return Check::new(
                CheckId::NoUndersell,
                Status::Pass,
                format!(
                    "{turned_away} buyers told sold out, none provably while the units they asked for were left (final stock {}, {} stock readings during the run)",
                    self.final_stock,
                    self.ev.readings.len()
                ),
            );
        };
        Check::new(
            CheckId::NoUndersell,
            Status::Fail,
            format!(
                "{} of {turned_away} buyers were told sold out while the units they asked for were left; the earliest: {}",
                self.refusals.wrong_sold_out,
                earliest.describe()
            ),
        )
    }

    pub(super) fn per_user_limit(&self) -> Check {
        let r = self.rec;
        let limit = self.ev.after.per_user_limit;
        if limit == 0 && r.wrong_limit_refusals == 0 {
            return Check::new(
                CheckId::PerUserLimit,
                Status::Skipped,
                "the server declares no per-customer limit".into(),
            );
        }
        let source = if r.available {
            "per the order book"
        } else {
            "acknowledged (no order book)"
        };
        let earliest = self.refusals.earliest_limit.map_or(String::new(), |e| {
            format!("; the earliest: {}", e.describe())
        });
        Check::holds(
            CheckId::PerUserLimit,
            r.per_user_violations == 0 && r.wrong_limit_refusals == 0,
            format!(
                "{} customers got more than the limit of {limit} units {source}; {} refused with limit reached while below it{earliest}",
                r.per_user_violations, r.wrong_limit_refusals
            ),
        )
    }

    pub(super) fn valid_replies(&self) -> Check {
        let c = &self.stats.counts;
        // Within a round the stock only falls: no reply can have seen less than the settled
        // final reading.
        let settled = self.ev.unsettled.is_none();
        let rose = self
            .stats
            .min_stock_seen
            .filter(|&min| settled && self.same_round && min < self.final_stock);
        let mut wrong = Vec::new();
        if c.bad_replies > 0 {
            wrong.push(format!(
                "{} OK replies that break the contract (no known outcome, or another quantity or round than the request's)",
                c.bad_replies
            ));
        }
        if c.missing_order_ids > 0 {
            wrong.push(format!(
                "{} purchases acknowledged without an order id",
                c.missing_order_ids
            ));
        }
        if let Some(min) = rose {
            wrong.push(format!(
                "a reply reported stock {min}, below the final stock {}: the stock rose within the round",
                self.final_stock
            ));
        }
        if wrong.is_empty() {
            return Check::new(
                CheckId::ValidReplies,
                Status::Pass,
                "every OK reply had a known outcome, the request's quantity and round, an order id when purchased, and a stock no lower than the final one".into(),
            );
        }
        Check::new(CheckId::ValidReplies, Status::Fail, wrong.join("; "))
    }

    pub(super) fn all_resolved(&self) -> Check {
        let r = self.rec;
        let unknown = self.stats.counts.indeterminate;
        if unknown == 0 {
            return Check::new(
                CheckId::AllResolved,
                Status::Pass,
                "no attempt had an unknown effect".into(),
            );
        }
        if r.available {
            return Check::new(
                CheckId::AllResolved,
                Status::Pass,
                format!(
                    "{unknown} attempts of unknown effect resolved by the order book: {} applied, {} not",
                    r.resolved_applied, r.resolved_not_applied
                ),
            );
        }
        Check::new(
            CheckId::AllResolved,
            Status::Inconclusive,
            format!(
                "{unknown} attempts ({} units) have an unknown effect and nothing resolves them: {}",
                self.stats.counts.indeterminate_units,
                r.reason.as_deref().unwrap_or("no order book")
            ),
        )
    }

    pub(super) fn thresholds(&self) -> Vec<Check> {
        let s = self.stats;
        self.ev
            .policy
            .thresholds
            .iter()
            .map(|t| {
                let (value, shown) = match t.metric {
                    Metric::Latency(stat) => {
                        let us = if s.latency.is_empty() {
                            0.0
                        } else {
                            match stat {
                                LatencyStat::Mean => s.latency.mean(),
                                LatencyStat::Max => s.latency.max() as f64,
                                LatencyStat::Quantile(pm) => {
                                    s.latency.value_at_quantile(f64::from(pm) / 1000.0) as f64
                                }
                            }
                        };
                        (us / 1000.0, format!("{:.2} ms", us / 1000.0))
                    }
                    Metric::ErrorRate => (
                        s.counts.error_rate(),
                        format!("{:.2}%", s.counts.error_rate() * 100.0),
                    ),
                    Metric::TimeoutRate => (
                        s.counts.timeout_rate(),
                        format!("{:.2}%", s.counts.timeout_rate() * 100.0),
                    ),
                };
                Check::threshold(&t.to_string(), t.holds(value), format!("measured {shown}"))
            })
            .collect()
    }
}

/// ` (UNAVAILABLE 900, INTERNAL 3)`, or nothing when no status was an error.
fn errors_by_status(stats: &Stats) -> String {
    let parts: Vec<String> = stats
        .counts
        .statuses
        .iter()
        .map(|(code, n)| format!("{} {n}", code_name(code)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}
