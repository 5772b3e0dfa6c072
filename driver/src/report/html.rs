//! The self-contained HTML report (`--report FILE.html`): verdict first, then charts over time
//! and the summary tables. One file, inline CSS and SVG, no script, nothing fetched.

use std::fmt::Write as _;

use crate::audit::{Status, Verdict};
use crate::report::Report;
use crate::report::chart::{Chart, Line};
use crate::report::comparison::Comparison;
use crate::report::markup::escape;
use crate::report::timeline::TimeBucket;

/// Colours of the chart lines, in order.
const PALETTE: [&str; 6] = [
    "#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457",
];

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1340px;\
padding:0 16px;color:#222}h1,h2,h3{margin:.6em 0 .3em}.verdict{padding:12px 18px;\
border-radius:6px;color:#fff}.verdict.pass{background:#2e7d32}.verdict.fail{background:#c62828}\
.verdict.inconclusive{background:#8a6d00}\
.verdict h1{margin:0}.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{margin:0;\
border:1px solid #ddd;border-radius:6px;padding:8px}.chart figcaption{font-weight:600}\
.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;gap:14px;font-size:12px}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}\
table{border-collapse:collapse;margin:6px 0 14px}td,th{border:1px solid #ddd;padding:3px 10px;\
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}.ok{color:#2e7d32}\
.FAIL,.fail-text{color:#c62828;font-weight:600}.tables{display:flex;flex-wrap:wrap;gap:28px}\
section.run{border-top:2px solid #ddd;margin-top:20px}";

/// A whole HTML document around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// The report of one run as a page.
pub fn report_page(report: &Report) -> String {
    let r = &report.run;
    let title = format!("flashsale audit: {} against {}", r.mode, r.target);
    let mut body = verdict_banner(report, "verdict");
    let _ = write!(body, "<h2>{}</h2>", escape(&title));
    body.push_str(&run_details(report));
    page(&title, &body)
}

/// A comparison as a page: the side-by-side table, then each run's verdict and charts.
pub fn comparison_page(cmp: &Comparison) -> String {
    let title = cmp.headline();
    let mut body = format!(
        "<h1>{}</h1><p>Every run starts from the same stock with the same users. buggy and \
         unstable are expected to FAIL: that is what the comparison shows.</p>",
        escape(&title)
    );
    body.push_str(r#"<table id="comparison"><tr><th></th>"#);
    for run in &cmp.runs {
        let _ = write!(body, "<th>{}</th>", escape(&run.label));
    }
    body.push_str("</tr>");
    for (name, values) in cmp.rows() {
        let _ = write!(body, "<tr><td>{}</td>", escape(name));
        for v in values {
            let class = match v.as_str() {
                "FAIL" => "num FAIL",
                "PASS" => "num ok",
                _ => "num",
            };
            let _ = write!(body, r#"<td class="{class}">{}</td>"#, escape(&v));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    for run in &cmp.runs {
        let id = escape(&run.label.replace('/', "-"));
        let _ = write!(
            body,
            r#"<section class="run" id="run-{id}"><h2>{label}</h2>{verdict}{details}</section>"#,
            id = id,
            label = escape(&run.label),
            verdict = verdict_banner(&run.report, &format!("verdict-{id}")),
            details = run_details(&run.report),
        );
    }
    page(&title, &body)
}

/// PASS, FAIL or INCONCLUSIVE with the checks that decided it, as a section with element id
/// `id`.
pub fn verdict_banner(report: &Report, id: &str) -> String {
    let a = &report.audit;
    let (class, word, detail) = match a.verdict {
        Verdict::Pass => ("pass", "PASS", a.pass_summary()),
        Verdict::Fail => (
            "fail",
            "FAIL",
            format!("failed checks: {}", a.with_status(Status::Fail).join(", ")),
        ),
        Verdict::Inconclusive => (
            "inconclusive",
            "INCONCLUSIVE",
            format!(
                "nothing failed, but not proven: {}",
                a.with_status(Status::Inconclusive).join(", ")
            ),
        ),
    };
    let stopped = report.stopped.map_or_else(String::new, |stopped| {
        format!(
            r#"<p class="stopped"><strong>Stopped early:</strong> {}; the audit covers what was sent, not the run asked for.</p>"#,
            escape(&stopped.sentence())
        )
    });
    format!(
        r#"<section id="{}" class="verdict {class}"><h1>{word}</h1><p>{}</p>{stopped}</section>"#,
        escape(id),
        escape(&detail)
    )
}

/// Charts and summary tables of one run.
pub fn run_details(report: &Report) -> String {
    let mut s = String::from(r#"<div class="charts">"#);
    for chart in charts(report) {
        s.push_str(&chart.to_svg());
    }
    s.push_str(r#"</div><div class="tables">"#);
    s.push_str(&summary_tables(report));
    s.push_str("</div>");
    s
}

fn charts(report: &Report) -> Vec<Chart> {
    let series = &report.series;
    let x_max = report.run.elapsed_s;
    let line = |name: &str, color: usize, points: Vec<(f64, f64)>| Line {
        name: name.to_string(),
        color: PALETTE[color % PALETTE.len()],
        points,
    };
    let per_bucket = |f: &dyn Fn(&TimeBucket) -> Option<f64>| {
        let buckets = series.buckets.iter();
        buckets.filter_map(|b| f(b).map(|y| (b.t_s, y))).collect()
    };
    let share = |b: &TimeBucket, n: u64| b.requests_per_s * n as f64 / b.attempts.max(1) as f64;
    let mut statuses: Vec<&str> = series
        .buckets
        .iter()
        .flat_map(|b| b.by_status.keys().copied())
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    let mut error_lines: Vec<Line> = statuses
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let errors = |b: &TimeBucket| share(b, b.by_status.get(name).copied().unwrap_or(0));
            line(name, i + 2, per_bucket(&|b| Some(errors(b))))
        })
        .collect();
    let timeouts = series.buckets.iter().any(|b| b.timeouts > 0);
    if timeouts || error_lines.is_empty() {
        // With no error at all, a flat "errors" line at zero says so.
        let name = if timeouts { "timeouts" } else { "errors" };
        error_lines.push(line(name, 5, per_bucket(&|b| Some(share(b, b.timeouts)))));
    }
    let bucket = format!("per {} s bucket", series.bucket_s);
    vec![
        Chart {
            id: "throughput",
            title: format!("Requests per second ({bucket})"),
            y_unit: "req/s",
            lines: vec![
                line("requests/s", 0, per_bucket(&|b| Some(b.requests_per_s))),
                line(
                    "purchased/s",
                    1,
                    per_bucket(&|b| Some(share(b, b.purchased))),
                ),
            ],
            x_max,
            zero_line: false,
        },
        Chart {
            id: "latency",
            title: format!("Latency ({bucket})"),
            y_unit: "ms",
            lines: vec![
                line("p50", 0, per_bucket(&|b| b.latency_ms.map(|l| l.p50))),
                line("p99", 2, per_bucket(&|b| b.latency_ms.map(|l| l.p99))),
            ],
            x_max,
            zero_line: false,
        },
        Chart {
            id: "stock",
            title: "Stock (GetStock polls; below the red line is oversold)".into(),
            y_unit: "units",
            lines: vec![line(
                "stock",
                0,
                series
                    .stock
                    .iter()
                    .map(|p| (p.t_s, p.stock as f64))
                    .collect(),
            )],
            x_max,
            zero_line: true,
        },
        Chart {
            id: "errors",
            title: format!("Errors per second by status ({bucket})"),
            y_unit: "errors/s",
            lines: error_lines,
            x_max,
            zero_line: false,
        },
    ]
}

fn summary_tables(report: &Report) -> String {
    let (r, o, a, l) = (
        &report.run,
        &report.outcomes,
        &report.audit,
        &report.latency_ms,
    );
    let mut outcomes = vec![
        ("attempts", o.attempts.to_string()),
        (
            "purchased",
            format!("{} ({} units)", o.purchased, o.units_purchased),
        ),
        ("sold out", o.sold_out.to_string()),
        ("errors", o.errors.to_string()),
    ];
    outcomes.extend(o.by_status.iter().map(|(k, n)| (*k, n.to_string())));
    outcomes.push(("timeouts", o.timeouts.to_string()));
    outcomes.push((
        "indeterminate",
        format!("{} ({} units)", o.indeterminate, o.indeterminate_units),
    ));
    let stock = [
        ("initial stock", a.initial_stock.to_string()),
        ("final stock", a.final_stock.to_string()),
        ("units sold", a.units_sold.to_string()),
        ("oversold units", a.oversold_units.to_string()),
        (
            "lowest stock seen",
            a.min_stock_seen.map_or("-".into(), |m| m.to_string()),
        ),
        (
            "server counters",
            format!("{} orders, {} units", a.ledger.orders, a.ledger.units_sold),
        ),
        (
            "order book",
            if a.reconciliation.available {
                format!(
                    "{} orders, {} units; lost {}, phantom {}, ghost {}",
                    a.reconciliation.book_orders,
                    a.reconciliation.book_units,
                    a.reconciliation.lost,
                    a.reconciliation.phantom,
                    a.reconciliation.ghost
                )
            } else {
                format!(
                    "not reconciled: {}",
                    a.reconciliation.reason.as_deref().unwrap_or("-")
                )
            },
        ),
        (
            "undersold answers",
            a.reconciliation.undersold_attempts.to_string(),
        ),
    ];
    let latency = [
        ("mean", l.mean),
        ("p50", l.p50),
        ("p90", l.p90),
        ("p99", l.p99),
        ("p99.9", l.p999),
        ("max", l.max),
    ]
    .map(|(k, v)| (k, format!("{v:.2}")));
    let run = [
        ("mode", format!("{} ({})", r.mode, r.rpc)),
        ("strategy", r.strategy.unwrap_or("-").to_string()),
        (
            "target",
            format!(
                "{}{}",
                r.target,
                match (r.embedded, r.tls_unverified) {
                    (true, _) => " (embedded)",
                    (false, true) => " (TLS certificate NOT verified: --insecure)",
                    (false, false) => "",
                }
            ),
        ),
        (
            "users",
            format!(
                "{} over {} connections, {} threads",
                r.users, r.connections, r.threads
            ),
        ),
        (
            "shape",
            r.duration_s
                .map_or("burst".into(), |d| format!("sustained {d} s")),
        ),
        ("elapsed", format!("{:.3} s", r.elapsed_s)),
        ("throughput", format!("{:.0} req/s", report.throughput_rps)),
    ];
    let mut s = String::new();
    s.push_str(&table("Outcomes", &outcomes));
    s.push_str(&table("Stock", &stock));
    s.push_str(&table("Latency (ms)", &latency));
    s.push_str(&table("Run", &run));
    if report.replicas.len() > 1 {
        s.push_str(&replicas_table(report));
    }
    s.push_str("<div><h3>Audit checks</h3><table class=\"checks\"><tr><th>check</th><th>result</th><th>detail</th></tr>");
    for c in &a.checks {
        let mark = c.status.mark();
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="{mark}">{mark}</td><td>{}</td></tr>"#,
            escape(&c.name),
            escape(&c.detail)
        );
    }
    s.push_str("</table></div>");
    s
}

/// What each replica answered: attempts, purchases, refusals and errors per target.
fn replicas_table(report: &Report) -> String {
    let mut s = String::from(
        r#"<div><h3>Replicas</h3><table id="replicas"><tr><th>target</th><th>connections</th><th>attempts</th><th>purchased</th><th>refused</th><th>errors</th></tr>"#,
    );
    for r in &report.replicas {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
            escape(&r.target),
            r.connections,
            r.attempts,
            r.purchased,
            r.refused,
            r.errors
        );
    }
    s.push_str("</table></div>");
    s
}

/// A two-column table under a heading.
pub fn table(title: &str, rows: &[(&str, String)]) -> String {
    let mut s = format!("<div><h3>{}</h3><table>", escape(title));
    for (k, v) in rows {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
            escape(k),
            escape(v)
        );
    }
    s.push_str("</table></div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let doc = page("a<b", "<p>x</p>");
        assert!(doc.starts_with("<!DOCTYPE html>"));
        assert!(doc.contains("<title>a&lt;b</title>"));
        assert!(!doc.contains("<script"));
    }
}
