//! Reports end to end: the HTML report and `compare` from real runs against an in-process
//! server on 127.0.0.1:0, the JSON time series, and (ignored unless chromium is installed) the
//! report rendered by headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use flashsale_driver::cli::{Cli, Command as Sub};
use flashsale_driver::observe::stop::Stop;
use flashsale_driver::report::html;
use flashsale_driver::run::compare::compare;
use flashsale_driver::{Report, run};
use flashsale_server::{ServerConfig, spawn};

/// A buggy burst against a server whose 50 ms latency makes the race certain.
async fn buggy_report() -> Report {
    let server = spawn(ServerConfig {
        latency: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let argv = ["driver", "--mode", "buggy", "--target", &server.url()];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let report = run(&spec).await.unwrap();
    server.shutdown().await.unwrap();
    report
}

/// The `points` of every `<polyline>` in `chart` (a `data-chart` name) of `doc`.
fn chart_points(doc: &str, chart: &str) -> Vec<usize> {
    let start = doc
        .find(&format!(r#"data-chart="{chart}""#))
        .unwrap_or_else(|| panic!("no {chart} chart"));
    let figure = &doc[start..start + doc[start..].find("</figure>").unwrap()];
    figure
        .split("<polyline")
        .skip(1)
        .map(|p| {
            let pts = p.split(r#" points=""#).nth(1).unwrap();
            pts[..pts.find('"').unwrap()].split_whitespace().count()
        })
        .collect()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flashsale-{}-{name}", std::process::id()))
}

#[tokio::test(flavor = "multi_thread")]
async fn html_report_of_a_buggy_run_shows_the_failure_over_time() {
    let report = buggy_report().await;
    assert!(report.audit.oversold_units > 0, "{}", report.to_table());
    let series = &report.series;
    let total: u64 = series.buckets.iter().map(|b| b.attempts).sum();
    assert_eq!(total, 1000, "every attempt is in the time series");
    assert!(series.stock.first().unwrap().stock == 100);
    assert!(series.stock.last().unwrap().stock < 0);

    let doc = html::report_page(&report);
    assert!(doc.starts_with("<!DOCTYPE html>"));
    assert!(!doc.contains("<script") && !doc.contains("http://www.w3.org/1999"));
    let verdict = &doc[doc.find(r#"id="verdict""#).unwrap()..];
    assert!(verdict.contains("<h1>FAIL</h1>"));
    assert!(verdict.contains("no_oversell, stock_not_negative"));
    assert!(
        doc.find(r#"id="verdict""#) < doc.find("<svg"),
        "verdict comes first"
    );
    assert_eq!(doc.matches("<svg").count(), 4);
    for chart in ["throughput", "latency", "stock", "errors"] {
        let lines = chart_points(&doc, chart);
        assert!(
            !lines.is_empty() && lines.iter().all(|&n| n >= 1),
            "{chart}: {lines:?}"
        );
    }
    assert!(chart_points(&doc, "stock")[0] >= 2);
    assert!(doc.contains(r#"class="zero""#));
    assert!(doc.contains(">FAIL</td>") && doc.contains("oversold units"));
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_runs_every_mode_with_the_same_users_and_stock() {
    let server = spawn(ServerConfig {
        latency: Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = server.url();
    let argv = ["driver", "compare", "--stock", "20", "--target", &url];
    let Some(Sub::Compare(args)) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not compare");
    };
    let cmp = compare(&args.to_spec().unwrap(), false, Stop::new())
        .await
        .unwrap();
    server.shutdown().await.unwrap();

    let labels: Vec<&str> = cmp.runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["buggy", "unstable", "safe/mutex", "safe/atomic"]);
    assert!(!cmp.embedded);
    for run in &cmp.runs {
        let (r, a) = (&run.report, &run.report.audit);
        assert_eq!(r.run.users, 1000, "{}", run.label);
        assert_eq!(r.outcomes.attempts, 1000, "{}", run.label);
        assert_eq!(a.initial_stock, 20, "{}", run.label);
        assert!(a.conservation.holds, "{}: {:?}", run.label, a.checks);
    }
    let by = |label: &str| &cmp.runs.iter().find(|r| r.label == label).unwrap().report;
    assert!(by("buggy").audit.oversold_units > 0);
    assert_eq!(by("buggy").verdict, "fail");
    for safe in ["safe/mutex", "safe/atomic"] {
        let a = &by(safe).audit;
        assert_eq!(
            (a.oversold_units, a.final_stock, a.units_sold),
            (0, 0, 20),
            "{safe}"
        );
        assert!(a.passed(), "{safe}");
    }
    assert_eq!(by("safe/mutex").run.strategy, Some("mutex"));
    assert_eq!(by("safe/atomic").run.strategy, Some("atomic"));

    let table = cmp.to_table();
    assert!(
        table.contains("oversold units") && table.contains("safe/atomic"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&cmp.to_json()).unwrap();
    assert_eq!(json["runs"][2]["label"], "safe/mutex");
    assert_eq!(json["runs"][2]["verdict"], "pass");
    assert!(
        json["runs"][0]["series"]["buckets"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );

    let doc = html::comparison_page(&cmp);
    assert!(doc.contains(r#"<table id="comparison">"#));
    assert_eq!(doc.matches(r#"<section class="run""#).count(), 4);
    assert_eq!(doc.matches("<svg").count(), 16);
    assert!(doc.contains(r#"id="verdict-safe-mutex" class="verdict pass""#));
    assert!(doc.contains(r#"id="verdict-buggy" class="verdict fail""#));
}

#[test]
fn report_flag_writes_the_file_and_json_carries_the_series() {
    let path = temp_path("cli-report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(["--mode", "safe", "--users", "200", "--stock", "10"])
        .args(["--output", "json", "--report"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["series"]["bucket_s"], 0.01);
    let buckets = json["series"]["buckets"].as_array().unwrap();
    let attempts: u64 = buckets
        .iter()
        .map(|b| b["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(attempts, 200);
    assert_eq!(json["series"]["stock"][0]["stock"], 10);
    let doc = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(doc.contains("<h1>PASS</h1>"));

    let bad = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(["--mode", "safe", "--report", "/nonexistent-dir/r.html"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot create the report"));
}

/// Runs headless Chromium on `file` with `args`; panics with a clear message if it is missing.
fn chromium(file: &Path, args: &[&str]) -> (String, String) {
    let profile = temp_path("chromium-profile");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", file.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); install it: apt-get install -y chromium")
        });
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs chromium: apt-get install chromium"]
async fn chromium_renders_the_report_without_console_errors() {
    let report = buggy_report().await;
    let path = temp_path("chromium-report.html");
    std::fs::write(&path, html::report_page(&report)).unwrap();
    let (dom, log) = chromium(&path, &["--dump-dom"]);
    std::fs::remove_file(&path).unwrap();

    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        dom.contains(r#"class="verdict fail"><h1>FAIL</h1>"#),
        "{dom}"
    );
    // The browser parsed the SVG: every chart is there with its data points.
    assert_eq!(dom.matches("<svg").count(), 4);
    for chart in ["throughput", "latency", "stock", "errors"] {
        let lines = chart_points(&dom, chart);
        assert!(
            !lines.is_empty() && lines.iter().all(|&n| n >= 1),
            "{chart}: {lines:?}"
        );
    }
}

/// Names and messages that come from peers (workers, the coordinator, the target) cannot put
/// terminal escapes or forged lines into the table.
#[tokio::test(flavor = "multi_thread")]
async fn the_table_escapes_control_characters_from_peers() {
    let mut report = buggy_report().await;
    report.run.target = "http://evil:1\u{1b}]0;pwned\u{7}".into();
    report.run.coordinator = Some("http://c:2\u{1b}[2J".into());
    report.workers = Some(vec![flashsale_driver::report::WorkerSummary {
        name: "w1\u{1b}[2J\nverdict: PASS: every invariant held".into(),
        users: 10,
        attempts: 10,
        purchased: 1,
        errors: 0,
        throughput_rps: 1.0,
        elapsed_s: 1.0,
        lost: true,
        faulty: false,
        error: Some("gone\u{1b}[31m red\r".into()),
        unreported_attempts: 3,
    }]);
    report.audit.checks[0].detail.push_str("\u{9b}1m");
    let table = report.to_table();
    assert!(
        !table.chars().any(|c| c.is_control() && c != '\n'),
        "{table:?}"
    );
    let verdicts: Vec<_> = table
        .lines()
        .filter(|l| l.starts_with("verdict:"))
        .collect();
    assert_eq!(verdicts.len(), 1, "{table}");
    assert!(verdicts[0].starts_with("verdict: FAIL"), "{table}");
    assert!(table.contains(r"w1\u{1b}[2J\nverdict: PASS"), "{table}");
    assert!(table.contains(r"LOST: gone\u{1b}[31m red\r"), "{table}");
}
