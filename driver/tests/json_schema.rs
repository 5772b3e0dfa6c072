//! The JSON report's shape is a contract (docs/json-report.md): this test pins every field
//! path of a real run's report, and checks that docs/json-report.md documents each of them.

use std::collections::BTreeSet;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_server::{ServerConfig, spawn};
use serde_json::Value;

/// Every leaf of `value` as a dotted path; arrays as `[]`, status maps as `<STATUS>`.
fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if prefix.ends_with("by_status") => {
            assert!(
                map.keys()
                    .all(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            );
            out.insert(format!("{prefix}.<STATUS>"));
        }
        Value::Object(map) => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                paths(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

/// Every field path of a report (a distributed run adds `workers`).
const EXPECTED: &[&str] = &[
    "audit.checks[].detail",
    "audit.checks[].name",
    "audit.checks[].status",
    "audit.conservation.expected_max",
    "audit.conservation.expected_min",
    "audit.conservation.holds",
    "audit.conservation.observed",
    "audit.final_stock",
    "audit.initial_stock",
    "audit.ledger.holds",
    "audit.ledger.orders",
    "audit.ledger.units_sold",
    "audit.min_stock_seen",
    "audit.oversold_units",
    "audit.reconciliation.available",
    "audit.reconciliation.book_orders",
    "audit.reconciliation.book_units",
    "audit.reconciliation.duplicate_order_ids",
    "audit.reconciliation.duplicate_requests",
    "audit.reconciliation.ghost",
    "audit.reconciliation.lost",
    "audit.reconciliation.mismatched_orders",
    "audit.reconciliation.other_order_ids",
    "audit.reconciliation.per_user_violations",
    "audit.reconciliation.phantom",
    "audit.reconciliation.reason",
    "audit.reconciliation.resolved_applied",
    "audit.reconciliation.resolved_not_applied",
    "audit.reconciliation.undersold_attempts",
    "audit.reconciliation.unresolved",
    "audit.reconciliation.without_request_id",
    "audit.reconciliation.wrong_limit_refusals",
    "audit.refusals.earliest_limit",
    "audit.refusals.earliest_sold_out",
    "audit.refusals.wrong_limit",
    "audit.refusals.wrong_sold_out",
    "audit.units_demanded",
    "audit.units_sold",
    "audit.verdict",
    "latency_ms.max",
    "latency_ms.mean",
    "latency_ms.p50",
    "latency_ms.p90",
    "latency_ms.p99",
    "latency_ms.p999",
    "outcomes.attempts",
    "outcomes.bad_replies",
    "outcomes.by_status.<STATUS>",
    "outcomes.errors",
    "outcomes.indeterminate",
    "outcomes.indeterminate_units",
    "outcomes.limit_reached",
    "outcomes.purchased",
    "outcomes.sold_out",
    "outcomes.timeouts",
    "outcomes.units_purchased",
    "outcomes.units_requested",
    "replicas[].attempts",
    "replicas[].connections",
    "replicas[].errors",
    "replicas[].purchased",
    "replicas[].refused",
    "replicas[].target",
    "replicas[].units_purchased",
    "retries.gave_up",
    "retries.max_tries",
    "retries.retried",
    "retries.retried_purchased",
    "retries.throttled",
    "retries.tries",
    "run.clicks",
    "run.connections",
    "run.coordinator",
    "run.duration_s",
    "run.elapsed_s",
    "run.embedded",
    "run.mode",
    "run.per_user_limit",
    "run.quantity[]",
    "run.round",
    "run.rpc",
    "run.strategy",
    "run.target",
    "run.targets[]",
    "run.threads",
    "run.timeout_ms",
    "run.users",
    "schema_version",
    "series.bucket_s",
    "series.buckets[].attempts",
    "series.buckets[].by_status.<STATUS>",
    "series.buckets[].errors",
    "series.buckets[].latency_ms.max",
    "series.buckets[].latency_ms.p50",
    "series.buckets[].latency_ms.p90",
    "series.buckets[].latency_ms.p99",
    "series.buckets[].purchased",
    "series.buckets[].requests_per_s",
    "series.buckets[].sold_out",
    "series.buckets[].t_s",
    "series.buckets[].timeouts",
    "series.stock[].stock",
    "series.stock[].t_s",
    "stopped",
    "throughput_rps",
    "verdict",
];

#[tokio::test(flavor = "multi_thread")]
async fn json_report_fields_are_stable_and_documented() {
    // Unstable mode at a high failure rate, so `by_status` maps are filled.
    let server = spawn(ServerConfig {
        failure_rate: 0.5,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = server.url();
    let argv = [
        "driver",
        "--target",
        &url,
        "--mode",
        "unstable",
        "--users",
        "200",
        "--duration",
        "300ms",
    ];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let report = flashsale_driver::run(&spec).await.unwrap();
    server.shutdown().await.unwrap();

    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["schema_version"], 2);
    let mut found = BTreeSet::new();
    paths(&json, "", &mut found);
    let expected: BTreeSet<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        found, expected,
        "the JSON report's fields changed: update docs/json-report.md and schema_version"
    );

    // Every field, or the group it belongs to, is named in docs/json-report.md.
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/json-report.md"
    ))
    .unwrap();
    for path in &found {
        let plain = path.replace("[]", "").replace(".<STATUS>", "");
        let segments: Vec<&str> = plain.split('.').collect();
        let documented = (1..=segments.len())
            .rev()
            .map(|n| format!("`{}`", segments[..n].join(".")))
            .any(|name| readme.contains(&name));
        assert!(documented, "docs/json-report.md does not document {path}");
    }
}
