//! The run report: one structure rendered as a human table or as JSON (`--output json`).
//! Field names of the JSON form are stable and documented in docs/json-report.md.

pub mod chart;
pub mod comparison;
pub mod csv;
pub mod html;
pub mod junit;
pub mod markup;
pub mod shape;
pub mod stopped;
pub mod text;
pub mod timeline;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use flashsale::pb;

use crate::audit::{Audit, Evidence, LostTarget, Status};
use crate::engine::LoadResult;
use crate::engine::counts::Counts;
use crate::engine::stats::Stats;
use crate::report::text::{printable, printable_lines};
use crate::report::timeline::Timeline;
use crate::spec::{LoadSpec, Quantities};
pub use stopped::Stopped;

/// Version of the JSON layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything known about one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// "pass" when every check held, "fail" when one failed, else "inconclusive".
    pub verdict: &'static str,
    /// `null` when the run went to its planned end; else who stopped it and when (its verdict
    /// is then never "pass").
    pub stopped: Option<Stopped>,
    pub run: RunInfo,
    pub outcomes: Outcomes,
    /// How the retries went (`--retries`): tries, requests retried and what they ended in;
    /// all zero without retries (every request one try, counted in `tries`).
    pub retries: crate::engine::tries::TryCounts,
    pub audit: Audit,
    /// Attempts per second over the whole run.
    pub throughput_rps: f64,
    /// Latency of every answered request (in an open run: response time, from the instant the
    /// arrival was due; see `load_shape`).
    pub latency_ms: Latency,
    /// Open and ramped runs only: the shape, dropped arrivals, response and service time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_shape: Option<shape::ShapeReport>,
    /// The run over time.
    pub series: Timeline,
    /// Distributed runs only: what each worker did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerSummary>>,
    /// What each target (server replica) answered, in the order of `run.targets`.
    pub replicas: Vec<ReplicaSummary>,
    /// The `--fault` commands and what they came to (absent without any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::run::faults::FaultRecord>,
}

/// One target's (server replica's) part in a run: the attempts of the connections bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaSummary {
    pub target: String,
    /// Connections bound to this replica.
    pub connections: u32,
    pub attempts: u64,
    pub purchased: u64,
    pub units_purchased: u64,
    /// Sold out or at the per-customer limit.
    pub refused: u64,
    /// Non-OK statuses plus timeouts.
    pub errors: u64,
}

impl ReplicaSummary {
    fn new(replica: &crate::engine::ReplicaLoad) -> Self {
        let c = &replica.counts;
        Self {
            target: replica.target.clone(),
            connections: replica.connections,
            attempts: c.attempts,
            purchased: c.purchased,
            units_purchased: c.units_purchased,
            refused: c.refused(),
            errors: c.errors(),
        }
    }
}

/// One worker's part in a distributed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerSummary {
    pub name: String,
    pub users: u32,
    pub attempts: u64,
    pub purchased: u64,
    pub errors: u64,
    pub throughput_rps: f64,
    pub elapsed_s: f64,
    /// The worker disappeared before reporting.
    pub lost: bool,
    /// Its report was impossible for its share (the reasons are in `error`): its statistics
    /// were dropped and its users count as unreported.
    pub faulty: bool,
    /// Why it was lost, failed or is faulty (`null` when it reported normally).
    pub error: Option<String>,
    /// Attempts counted as indeterminate because the worker never reported them.
    pub unreported_attempts: u64,
}

impl WorkerSummary {
    pub fn new(worker: &flashsale::pb::WorkerReport, stats: &Stats, unreported: u64) -> Self {
        Self {
            name: worker.name.clone(),
            users: worker.users,
            attempts: stats.counts.attempts,
            purchased: stats.counts.purchased,
            errors: stats.counts.errors(),
            throughput_rps: if worker.elapsed_s > 0.0 {
                stats.counts.attempts as f64 / worker.elapsed_s
            } else {
                0.0
            },
            elapsed_s: worker.elapsed_s,
            lost: worker.lost,
            faulty: worker.faulty,
            error: (!worker.error.is_empty()).then(|| worker.error.clone()),
            unreported_attempts: unreported,
        }
    }
}

impl RunInfo {
    /// Names a checkout of the team's own (mode `custom`, its purchase call) when
    /// `connection` drove one.
    pub fn name_checkout(&mut self, connection: &crate::spec::Connection) {
        if let Some(api) = &connection.custom {
            self.mode = "custom";
            self.rpc = api.name.clone();
        }
    }
}

/// What was run, and where.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `buggy`, `unstable` or `safe`; `custom` for a checkout of the team's own.
    pub mode: &'static str,
    /// The purchase call: a method of flashsale.v1.Checkout, or the custom checkout's.
    pub rpc: String,
    /// Where the control calls went (Reset, GetStock, ListOrders): the first target.
    pub target: String,
    /// Every target the load was spread over (one per server replica).
    pub targets: Vec<String>,
    /// The server was started inside the driver.
    pub embedded: bool,
    /// The coordinator a distributed run went through (`null` for standalone runs).
    pub coordinator: Option<String>,
    pub users: u32,
    /// Concurrent purchases per user.
    pub clicks: u32,
    pub connections: u32,
    pub threads: u32,
    /// `null` for a flash-sale burst (one attempt per user), else the sustained duration.
    pub duration_s: Option<f64>,
    /// Units per purchase: the values attempts cycle through.
    pub quantity: Quantities,
    pub timeout_ms: u64,
    /// The server's safe strategy as GetStock reported it ("mutex", "atomic", "row-lock",
    /// "serializable" or null).
    pub strategy: Option<&'static str>,
    /// The round the purchases were for.
    pub round: u64,
    /// The server's per-customer limit (0: none).
    pub per_user_limit: u32,
    /// Wall time from the users' start to the last answer.
    pub elapsed_s: f64,
    /// The target's TLS certificate was not verified (`--insecure`); absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_unverified: bool,
}

/// Every attempt, by what it came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub attempts: u64,
    pub purchased: u64,
    pub units_purchased: u64,
    pub sold_out: u64,
    pub limit_reached: u64,
    /// Units all attempts asked for.
    pub units_requested: u64,
    /// Non-OK statuses plus timeouts.
    pub errors: u64,
    pub timeouts: u64,
    pub bad_replies: u64,
    /// Attempts whose effect is unknown (timeouts, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN,
    /// INTERNAL, DATA_LOSS).
    pub indeterminate: u64,
    pub indeterminate_units: u64,
    /// Non-OK statuses by canonical name, e.g. {"UNAVAILABLE": 48}.
    pub by_status: BTreeMap<&'static str, u64>,
}

impl Outcomes {
    /// The JSON view of `counts`.
    pub fn from_counts(counts: &Counts) -> Self {
        Self {
            attempts: counts.attempts,
            purchased: counts.purchased,
            units_purchased: counts.units_purchased,
            sold_out: counts.sold_out,
            limit_reached: counts.limit_reached,
            units_requested: counts.units_requested,
            errors: counts.errors(),
            timeouts: counts.timeouts,
            bad_replies: counts.bad_replies,
            indeterminate: counts.indeterminate,
            indeterminate_units: counts.indeterminate_units,
            by_status: counts.statuses.by_name(),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

impl Report {
    /// Workers that were lost, failed or faulty during a distributed run.
    pub fn incomplete_workers(&self) -> Vec<&WorkerSummary> {
        self.workers
            .iter()
            .flatten()
            .filter(|w| w.lost || w.faulty || w.error.is_some())
            .collect()
    }

    /// Appends `checks` to the audit ([`Audit::add_checks`]: the contract probes) and keeps
    /// the report's verdict in step.
    pub fn add_checks(&mut self, checks: impl IntoIterator<Item = crate::audit::Check>) {
        self.audit.add_checks(checks);
        self.verdict = self.audit.verdict.name();
    }

    /// `PASS: ...`, `FAIL: checks` or `INCONCLUSIVE: checks`.
    pub fn verdict_line(&self) -> String {
        let a = &self.audit;
        if let Some(stopped) = &self.stopped
            && a.verdict == crate::Verdict::Inconclusive
        {
            return format!(
                "INCONCLUSIVE: {} (nothing failed in what was sent; inconclusive: {})",
                stopped.sentence(),
                a.with_status(Status::Inconclusive).join(", ")
            );
        }
        match a.verdict {
            crate::Verdict::Pass => format!("PASS: {}", a.pass_summary()),
            crate::Verdict::Fail => format!("FAIL: {}", a.with_status(Status::Fail).join(", ")),
            crate::Verdict::Inconclusive => format!(
                "INCONCLUSIVE: {} (nothing failed, but the run did not prove it)",
                a.with_status(Status::Inconclusive).join(", ")
            ),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The report as an aligned text table.
    pub fn to_table(&self) -> String {
        let (r, o, a) = (&self.run, &self.outcomes, &self.audit);
        let mut s = String::new();
        let where_ = if r.embedded {
            "embedded server at "
        } else {
            ""
        };
        let shape = match (r.duration_s, &self.stopped) {
            (None, _) => "burst: each user buys once".to_string(),
            (
                Some(d),
                Some(Stopped {
                    planned_s: Some(planned),
                    ..
                }),
            ) => {
                format!("sustained for {d:.1} s of the planned {planned} s")
            }
            (Some(d), _) => format!("sustained for {d} s"),
        };
        let against = if r.targets.len() > 1 {
            format!("{} replicas: {}", r.targets.len(), r.targets.join(", "))
        } else {
            format!("{where_}{}", r.target)
        };
        let _ = writeln!(
            s,
            "flashsale audit: mode {} ({}) against {}",
            r.mode,
            r.rpc,
            printable(&against)
        );
        if r.tls_unverified {
            let _ = writeln!(
                s,
                "  WARNING: the target's TLS certificate was NOT verified (--insecure)"
            );
        }
        let _ = writeln!(
            s,
            "  {} users{} over {} connections on {} threads, {shape}, quantity {}{}",
            r.users,
            if r.clicks > 1 {
                format!(" x {} clicks", r.clicks)
            } else {
                String::new()
            },
            r.connections,
            r.threads,
            r.quantity,
            r.strategy
                .filter(|_| r.mode == "safe")
                .map(|st| format!(", safe strategy {st}"))
                .unwrap_or_default()
        );
        if let Some(stopped) = &self.stopped {
            let _ = writeln!(
                s,
                "  STOPPED EARLY: {}; the audit covers what was sent",
                stopped.sentence()
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "  outcomes");
        row(&mut s, "attempts", o.attempts.to_string());
        row(
            &mut s,
            "purchased",
            format!("{} ({} units)", o.purchased, o.units_purchased),
        );
        row(&mut s, "sold out", o.sold_out.to_string());
        if o.limit_reached > 0 {
            row(&mut s, "limit reached", o.limit_reached.to_string());
        }
        row(&mut s, "errors", o.errors.to_string());
        for (name, n) in &o.by_status {
            row(&mut s, &format!("  {name}"), n.to_string());
        }
        if o.timeouts > 0 {
            row(&mut s, "  timeouts", o.timeouts.to_string());
        }
        row(
            &mut s,
            "indeterminate",
            format!("{} ({} units)", o.indeterminate, o.indeterminate_units),
        );
        if !self.faults.is_empty() {
            let _ = writeln!(s, "  faults (seconds after the load's start)");
            for f in &self.faults {
                let when = match (f.started_s, f.ended_s) {
                    (Some(a), Some(b)) => format!("{a:.3}..{b:.3}"),
                    (Some(a), None) => format!("{a:.3}.."),
                    _ => format!("at {:.3}", f.at_s),
                };
                let how = match (&f.error, f.exit_code) {
                    (Some(e), _) => e.clone(),
                    (None, Some(code)) => format!("exit {code}"),
                    (None, None) => "no exit status".into(),
                };
                row(&mut s, &when, format!("{} ({how})", printable(&f.command)));
            }
        }
        let t = &self.retries;
        if t.retried > 0 || t.throttled > 0 {
            row(
                &mut s,
                "retried",
                format!(
                    "{} requests ({} tries in all, at most {}): {} purchased, {} gave up, {} throttled",
                    t.retried, t.tries, t.max_tries, t.retried_purchased, t.gave_up, t.throttled
                ),
            );
        }
        if self.replicas.len() > 1 {
            let _ = writeln!(s, "  replicas (attempts / purchased / refused / errors)");
            for replica in &self.replicas {
                row(
                    &mut s,
                    &printable(&replica.target),
                    format!(
                        "{} / {} / {} / {}",
                        replica.attempts, replica.purchased, replica.refused, replica.errors
                    ),
                );
            }
        }
        let _ = writeln!(s, "  stock");
        row(&mut s, "initial stock", a.initial_stock.to_string());
        row(&mut s, "final stock", a.final_stock.to_string());
        row(&mut s, "units sold", a.units_sold.to_string());
        row(&mut s, "oversold units", a.oversold_units.to_string());
        if let Some(min) = a.min_stock_seen {
            row(&mut s, "lowest stock seen", min.to_string());
        }
        row(
            &mut s,
            "server counters",
            format!("{} orders, {} units", a.ledger.orders, a.ledger.units_sold),
        );
        let rec = &a.reconciliation;
        let _ = writeln!(s, "  reconciliation");
        if rec.available {
            row(
                &mut s,
                "order book",
                format!("{} orders, {} units", rec.book_orders, rec.book_units),
            );
            row(
                &mut s,
                "lost/phantom/ghost",
                format!("{} / {} / {}", rec.lost, rec.phantom, rec.ghost),
            );
            row(
                &mut s,
                "unknown resolved",
                format!(
                    "{} applied, {} not applied",
                    rec.resolved_applied, rec.resolved_not_applied
                ),
            );
        } else {
            row(
                &mut s,
                "not possible",
                printable(rec.reason.as_deref().unwrap_or_default()).into_owned(),
            );
            row(&mut s, "unresolved", rec.unresolved.to_string());
        }
        row(
            &mut s,
            "undersold answers",
            rec.undersold_attempts.to_string(),
        );
        if r.per_user_limit > 0 || rec.wrong_limit_refusals > 0 {
            row(
                &mut s,
                "per-user violations",
                format!(
                    "{} over the limit of {}, {} wrong refusals",
                    rec.per_user_violations, r.per_user_limit, rec.wrong_limit_refusals
                ),
            );
        }
        let _ = writeln!(s, "  performance");
        row(
            &mut s,
            "throughput",
            format!("{:.0} req/s over {:.3} s", self.throughput_rps, r.elapsed_s),
        );
        let l = &self.latency_ms;
        row(
            &mut s,
            "latency (ms)",
            format!(
                "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                l.p50, l.p90, l.p99, l.p999, l.max
            ),
        );
        if let Some(shape) = &self.load_shape {
            shape.write_rows(&mut s);
        }
        if let Some(workers) = &self.workers {
            let _ = writeln!(
                s,
                "  workers (via coordinator {})",
                printable(r.coordinator.as_deref().unwrap_or("?"))
            );
            for w in workers {
                let state = match (w.error.as_deref().map(printable), w.lost) {
                    (Some(e), _) if w.faulty => {
                        format!("FAULTY: {e}; {} attempts unreported", w.unreported_attempts)
                    }
                    (Some(e), true) => {
                        format!("LOST: {e}; {} attempts unreported", w.unreported_attempts)
                    }
                    (Some(e), false) => format!("FAILED: {e}"),
                    (None, _) => "ok".to_string(),
                };
                let _ = writeln!(
                    s,
                    "    {:<20} users {:>6}  attempts {:>8}  purchased {:>6}  errors {:>5}  {:>8.0} req/s  {state}",
                    printable(&w.name),
                    w.users,
                    w.attempts,
                    w.purchased,
                    w.errors,
                    w.throughput_rps
                );
            }
        }
        let _ = writeln!(s, "  checks");
        for check in &a.checks {
            let _ = writeln!(
                s,
                "    {:<4}  {:<20} {}",
                check.status.mark(),
                check.name,
                printable(&check.detail)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "verdict: {}", self.verdict_line());
        let incomplete = self.incomplete_workers();
        if !incomplete.is_empty() {
            let names: Vec<_> = incomplete.iter().map(|w| printable(&w.name)).collect();
            let _ = writeln!(
                s,
                "note: incomplete run, worker(s) lost, failed or faulty: {}; their unreported attempts are counted as indeterminate",
                names.join(", ")
            );
        }
        printable_lines(&s).into_owned()
    }
}

fn row(s: &mut String, label: &str, value: String) {
    let _ = writeln!(s, "    {label:<20} {value}");
}

impl Report {
    /// Assembles the report of a finished run.
    pub fn build(
        target: &str,
        embedded: bool,
        spec: &LoadSpec,
        evidence: &Evidence<'_>,
        load: &LoadResult,
    ) -> Report {
        let audit = Audit::new(&load.stats, evidence);
        let ends = (evidence.before, Some(evidence.after));
        Self::assemble(target, embedded, spec, audit, ends, load)
    }

    /// Assembles the report of a run whose target could not be read after the load: the
    /// clients' statistics in full, and an audit that says what could not be audited (see
    /// [`Audit::without_final_state`]). Its stock series ends with a stand-in (the last
    /// stock polled, else the initial one) that [`Timeline::drop_final_reading`] removes once
    /// the polls are in.
    pub fn build_without_final_state(
        target: &str,
        embedded: bool,
        spec: &LoadSpec,
        lost: &LostTarget<'_>,
        load: &LoadResult,
    ) -> Report {
        let audit = Audit::without_final_state(&load.stats, lost);
        Self::assemble(target, embedded, spec, audit, (lost.before, None), load)
    }

    fn assemble(
        target: &str,
        embedded: bool,
        spec: &LoadSpec,
        audit: Audit,
        (before, after): (&pb::StockReply, Option<&pb::StockReply>),
        load: &LoadResult,
    ) -> Report {
        let elapsed_s = load.elapsed.as_secs_f64();
        // The server's settings as read last (Reset's reply holds them too).
        let settings = after.unwrap_or(before);
        let replicas: Vec<ReplicaSummary> = if load.replicas.is_empty() {
            // One target took everything (a distributed run's merged statistics).
            crate::engine::ReplicaLoad::single(target, load.connections, load.stats.counts)
                .iter()
                .map(ReplicaSummary::new)
                .collect()
        } else {
            load.replicas.iter().map(ReplicaSummary::new).collect()
        };
        let series = Timeline::new(
            &load.stats.series,
            load.elapsed,
            before.stock,
            settings.stock,
        );
        Report {
            schema_version: crate::report::SCHEMA_VERSION,
            verdict: audit.verdict.name(),
            stopped: None,
            run: RunInfo {
                mode: spec.mode.name(),
                rpc: spec.mode.rpc().to_string(),
                target: target.to_string(),
                targets: replicas.iter().map(|r| r.target.clone()).collect(),
                embedded,
                coordinator: None,
                users: spec.users,
                clicks: spec.clicks,
                connections: load.connections,
                threads: load.threads,
                duration_s: spec.duration.map(|d| d.as_secs_f64()),
                quantity: spec.quantity.clone(),
                timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
                strategy: flashsale_server::Strategy::from_wire(settings.safe_strategy)
                    .ok()
                    .flatten()
                    .map(flashsale_server::Strategy::name),
                round: before.round,
                per_user_limit: settings.per_user_limit,
                elapsed_s,
                tls_unverified: false,
            },
            outcomes: Outcomes::from_counts(&load.stats.counts),
            retries: load.stats.tries,
            audit,
            throughput_rps: if elapsed_s > 0.0 {
                load.stats.counts.attempts as f64 / elapsed_s
            } else {
                0.0
            },
            latency_ms: Latency::from_histogram(&load.stats.latency),
            load_shape: shape::ShapeReport::new(spec, &load.stats),
            series,
            workers: None,
            replicas,
            faults: Vec::new(),
        }
    }
}
