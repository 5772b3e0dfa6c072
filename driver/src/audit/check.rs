//! The audit's vocabulary: what each check is ([`CheckId`]), how it ended ([`Status`]), and the
//! verdict the checks add up to ([`Verdict`]). A check is identified by its id; its name (the
//! id's, or a threshold's expression) is what the reports print and the JSON carries.

use serde::Serialize;

/// Every check the audit, the probes and the run can report, by what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    Availability,
    NoOversell,
    StockNotNegative,
    Conservation,
    BooksBalance,
    NoLostOrders,
    NoPhantomSales,
    NoGhostOrders,
    OrdersMatch,
    UniqueOrders,
    ExactlyOnce,
    NoUndersell,
    PerUserLimit,
    ValidReplies,
    AllResolved,
    Settled,
    /// Only when the final state could not be read.
    FinalState,
    /// Only when the run was stopped before its planned end.
    Completed,
    /// A `--threshold`; the check's name carries its expression.
    Threshold,
    ProbeOverStock,
    ProbeExactStock,
    ProbeIdempotent,
    ProbeStaleRound,
    ProbeLimit,
    ProbeBadQuantity,
}

impl CheckId {
    /// Every id, in the order the reports list them.
    pub const ALL: [CheckId; 25] = [
        CheckId::Availability,
        CheckId::NoOversell,
        CheckId::StockNotNegative,
        CheckId::Conservation,
        CheckId::BooksBalance,
        CheckId::NoLostOrders,
        CheckId::NoPhantomSales,
        CheckId::NoGhostOrders,
        CheckId::OrdersMatch,
        CheckId::UniqueOrders,
        CheckId::ExactlyOnce,
        CheckId::NoUndersell,
        CheckId::PerUserLimit,
        CheckId::ValidReplies,
        CheckId::AllResolved,
        CheckId::Settled,
        CheckId::FinalState,
        CheckId::Completed,
        CheckId::Threshold,
        CheckId::ProbeOverStock,
        CheckId::ProbeExactStock,
        CheckId::ProbeIdempotent,
        CheckId::ProbeStaleRound,
        CheckId::ProbeLimit,
        CheckId::ProbeBadQuantity,
    ];

    /// The name reports print and the JSON carries.
    pub const fn name(self) -> &'static str {
        match self {
            CheckId::Availability => "availability",
            CheckId::NoOversell => "no_oversell",
            CheckId::StockNotNegative => "stock_not_negative",
            CheckId::Conservation => "conservation",
            CheckId::BooksBalance => "books_balance",
            CheckId::NoLostOrders => "no_lost_orders",
            CheckId::NoPhantomSales => "no_phantom_sales",
            CheckId::NoGhostOrders => "no_ghost_orders",
            CheckId::OrdersMatch => "orders_match",
            CheckId::UniqueOrders => "unique_orders",
            CheckId::ExactlyOnce => "exactly_once",
            CheckId::NoUndersell => "no_undersell",
            CheckId::PerUserLimit => "per_user_limit",
            CheckId::ValidReplies => "valid_replies",
            CheckId::AllResolved => "all_resolved",
            CheckId::Settled => "settled",
            CheckId::FinalState => "final_state",
            CheckId::Completed => "completed",
            CheckId::Threshold => "threshold",
            CheckId::ProbeOverStock => "probe_over_stock",
            CheckId::ProbeExactStock => "probe_exact_stock",
            CheckId::ProbeIdempotent => "probe_idempotent",
            CheckId::ProbeStaleRound => "probe_stale_round",
            CheckId::ProbeLimit => "probe_limit",
            CheckId::ProbeBadQuantity => "probe_bad_quantity",
        }
    }

    /// The id named `name` (as a peer sends it), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|id| id.name() == name)
    }
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The run could not tell: not exercised, or left unknown.
    Inconclusive,
    /// Does not apply to this run.
    Skipped,
}

impl Status {
    /// The table's mark.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "ok",
            Status::Fail => "FAIL",
            Status::Inconclusive => "??",
            Status::Skipped => "skip",
        }
    }
}

/// The verdict on a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    /// FAIL when any check failed, else INCONCLUSIVE when any was inconclusive, else PASS.
    pub fn of(checks: &[Check]) -> Self {
        if checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::Fail
        } else if checks.iter().any(|c| c.status == Status::Inconclusive) {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One invariant and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it is about (not in the JSON: `name` says it).
    #[serde(skip)]
    pub id: CheckId,
    pub name: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    /// Check `id` that ended `status`, with `detail` (the numbers seen).
    pub fn new(id: CheckId, status: Status, detail: String) -> Self {
        Self {
            id,
            name: id.name().to_string(),
            status,
            detail,
        }
    }

    /// `pass` when `ok`, else `fail`.
    pub fn holds(id: CheckId, ok: bool, detail: String) -> Self {
        Self::new(id, if ok { Status::Pass } else { Status::Fail }, detail)
    }

    /// The check of a `--threshold` with expression `expr`: `pass` when `ok`.
    pub fn threshold(expr: &str, ok: bool, detail: String) -> Self {
        Self {
            name: format!("threshold {expr}"),
            ..Self::holds(CheckId::Threshold, ok, detail)
        }
    }
}
