//! Standalone runs end to end: the driver binary on its embedded server, and the library
//! against an in-process server on 127.0.0.1:0.

use std::process::Command;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::{Report, run};
use flashsale_server::{ServerConfig, spawn};
use serde_json::Value;

fn driver(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(args)
        .output()
        .expect("driver runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().expect("exit code"), json, stderr)
}

async fn run_args(target: &str, args: &[&str]) -> Report {
    let argv = ["driver", "--target", target]
        .into_iter()
        .chain(args.iter().copied());
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    run(&spec).await.unwrap()
}

#[test]
fn buggy_on_the_embedded_default_oversells_and_exits_1() {
    let (code, json, stderr) = driver(&["--mode", "buggy", "--output", "json"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["run"]["embedded"], true);
    assert_eq!(json["outcomes"]["attempts"], 1000);
    assert_eq!(json["audit"]["initial_stock"], 100);
    assert!(
        json["audit"]["oversold_units"].as_i64().unwrap() > 0,
        "{json:#}"
    );
    assert!(json["audit"]["final_stock"].as_i64().unwrap() < 0);
    // The books are consistent; the business rule is what broke.
    assert_eq!(json["audit"]["conservation"]["holds"], true);
}

#[test]
fn safe_on_the_embedded_default_holds_and_exits_0() {
    let (code, json, stderr) = driver(&["--mode", "safe", "--output", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["outcomes"]["purchased"], 100);
    assert_eq!(json["outcomes"]["sold_out"], 900);
    assert_eq!(json["audit"]["final_stock"], 0);
}

#[test]
fn table_output_names_the_verdict() {
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(["--mode", "buggy", "--users", "300", "--stock", "10"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(table.contains("FAIL  no_oversell"), "{table}");
    assert!(table.contains("verdict: FAIL"), "{table}");
}

#[test]
fn usage_and_connection_errors_exit_2() {
    let (code, _, stderr) = driver(&["--mode", "safe", "--users", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--users"), "{stderr}");

    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let (code, json, stderr) = driver(&["--mode", "safe", "--target", &target]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(json, Value::Null);
    assert!(stderr.contains("cannot connect"), "{stderr}");

    // https:// targets are dialled with TLS (tests/tls.rs); other schemes are refused.
    let (code, _, stderr) = driver(&["--mode", "safe", "--target", "grpc://example.test:1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("only http:// and https://"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_holds_with_both_strategies() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    for strategy in ["mutex", "atomic"] {
        let report = run_args(&server.url(), &["--mode", "safe", "--strategy", strategy]).await;
        let a = &report.audit;
        assert!(a.passed(), "{strategy}: {:?}", a.checks);
        assert_eq!(report.run.strategy, Some(strategy));
        assert_eq!(
            (a.units_sold, a.final_stock, a.oversold_units),
            (100, 0, 0),
            "{strategy}"
        );
        assert_eq!(
            (a.ledger.orders, a.ledger.units_sold),
            (100, 100),
            "{strategy}"
        );
        assert_eq!(report.outcomes.purchased, 100);
        assert_eq!(report.outcomes.sold_out, 900);
        assert_eq!(a.reconciliation.duplicate_order_ids, 0);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn buggy_oversells_against_a_server_on_loopback() {
    // A longer simulated latency than the default gives the race a wide window even on a
    // loaded machine: every user that checks within 50 ms of the first one passes.
    let server = spawn(ServerConfig {
        latency: std::time::Duration::from_millis(50),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let report = run_args(&server.url(), &["--mode", "buggy"]).await;
    assert!(!report.audit.passed());
    assert!(report.audit.oversold_units > 0, "{}", report.to_table());
    let failed = report
        .audit
        .with_status(flashsale_driver::audit::Status::Fail);
    assert_eq!(failed, ["no_oversell", "stock_not_negative"]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unstable_errors_are_counted_and_every_attempt_accounted() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let report = run_args(
        &server.url(),
        &["--mode", "unstable", "--users", "2000", "--stock", "100000"],
    )
    .await;
    let o = &report.outcomes;
    let unavailable = o.by_status.get("UNAVAILABLE").copied().unwrap_or(0);
    // 2000 draws at the default 5%: mean 100, standard deviation ~9.7.
    assert!((50..=150).contains(&unavailable), "{unavailable}");
    assert_eq!(o.errors, unavailable);
    assert_eq!(o.attempts, 2000);
    assert_eq!(o.purchased + o.sold_out + o.errors, o.attempts);
    assert_held_unexercised(&report);
    assert_eq!(report.audit.units_sold, 2000 - unavailable as i64);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_run_keeps_users_buying_until_the_deadline() {
    let server = spawn(ServerConfig {
        latency: std::time::Duration::ZERO,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let report = run_args(
        &server.url(),
        &[
            "--mode",
            "safe",
            "--users",
            "50",
            "--stock",
            "1000000",
            "--duration",
            "300ms",
        ],
    )
    .await;
    assert_held_unexercised(&report);
    assert!(
        report.outcomes.attempts > 50,
        "{}",
        report.outcomes.attempts
    );
    assert_eq!(report.outcomes.purchased, report.outcomes.attempts);
    assert!(report.run.elapsed_s >= 0.3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_sustained_run_still_reports_and_audits() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let url = server.url();
    let argv = [
        "driver",
        "--target",
        &url,
        "--mode",
        "safe",
        "--users",
        "100",
        "--stock",
        "1000000",
        "--duration",
        "60s",
    ];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let cancel = flashsale_driver::observe::stop::Stop::new();
    let interrupt = cancel.clone();
    let run =
        tokio::spawn(
            async move { flashsale_driver::run_with_progress(&spec, false, interrupt).await },
        );
    // Interrupt once the users are buying.
    let mut control = flashsale_driver::checkout::Control::connect(&url)
        .await
        .unwrap();
    // (After the Reset to 1,000,000: a user cancelled before its first attempt makes none.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let reply = control.stock().await.unwrap();
        if reply.initial_stock == 1_000_000 && reply.stock < 1_000_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the users never bought"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cancel.stop(flashsale_driver::observe::stop::StoppedBy::CtrlC);
    let report = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("the run winds down long before its 60 s")
        .unwrap()
        .unwrap();
    assert!(report.run.elapsed_s < 20.0, "{}", report.run.elapsed_s);
    assert!(report.outcomes.attempts > 0);
    // Stopped early: marked so, never a pass, its own exit status.
    use flashsale_driver::audit::Status;
    let stopped = report.stopped.expect("marked stopped");
    assert_eq!(
        stopped.by,
        flashsale_driver::observe::stop::StoppedBy::CtrlC
    );
    assert_eq!(stopped.planned_s, Some(60.0));
    assert!(stopped.after_s < 20.0, "{stopped:?}");
    assert_eq!(report.run.duration_s, Some(stopped.after_s));
    assert!(report.audit.with_status(Status::Fail).is_empty());
    assert_eq!(
        report.audit.with_status(Status::Inconclusive),
        ["no_oversell", "completed"],
        "{}",
        report.to_table()
    );
    assert_eq!(report.verdict, "inconclusive");
    assert_eq!(report.exit_code(), flashsale_driver::EXIT_STOPPED);
    server.shutdown().await.unwrap();
}

/// Nothing failed, but a stock that never ran out leaves the oversell check unexercised: the
/// verdict is inconclusive (exit 4), never a pass.
fn assert_held_unexercised(report: &flashsale_driver::Report) {
    use flashsale_driver::audit::Status;
    assert!(
        report.audit.with_status(Status::Fail).is_empty(),
        "{}",
        report.to_table()
    );
    assert_eq!(
        report.audit.with_status(Status::Inconclusive),
        ["no_oversell"],
        "{}",
        report.to_table()
    );
    assert_eq!(report.exit_code(), flashsale_driver::EXIT_INCONCLUSIVE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_book_past_the_servers_cap_is_not_reconciled_and_says_why() {
    let server = spawn(ServerConfig {
        book_cap: 10,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let report = run_args(&server.url(), &["--mode", "safe", "--users", "300"]).await;
    let rec = &report.audit.reconciliation;
    assert!(!rec.available, "{}", report.to_table());
    let reason = rec.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("cap of 10 orders") && reason.contains("90 orders"),
        "{reason}"
    );
    // Nothing had an unknown effect, so the range audit still decides: 100 sold of 100.
    assert!(report.audit.passed(), "{}", report.to_table());
    assert_eq!(report.audit.units_sold, 100);
    server.shutdown().await.unwrap();
}

/// `driver ... | head -1`: the reader closes the pipe; the driver must not panic (exit 101)
/// but exit with the verdict's status.
#[test]
fn a_closed_stdout_is_not_a_panic_and_the_verdict_still_sets_the_status() {
    for (mode, verdict) in [("safe", 0), ("buggy", 1)] {
        for output in ["table", "json"] {
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            let out = Command::new(env!("CARGO_BIN_EXE_driver"))
                .args(["--mode", mode, "--users", "300", "--stock", "10"])
                .args(["--output", output])
                .stdout(writer)
                .stderr(std::process::Stdio::piped())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(verdict),
                "{mode} {output}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

/// A sustained run of `Duration::MAX` with a `Duration::MAX` timeout (what a peer's plan or a
/// future CLI limit must not turn into a panic): the load threads compute their deadline
/// without overflowing and stop when the run is cancelled.
#[tokio::test(flavor = "multi_thread")]
async fn huge_durations_do_not_panic_the_load_threads() {
    use flashsale_driver::engine::live::Live;
    use flashsale_driver::spec::{LoadSpec, Mode, Quantities};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    let server = spawn(ServerConfig::default()).await.unwrap();
    let spec = LoadSpec {
        mode: Mode::Safe,
        users: 4,
        connections: 2,
        threads: 2,
        duration: Some(Duration::MAX),
        quantity: Quantities::single(1),
        clicks: 1,
        round: 0,
        timeout: Duration::MAX,
        user_prefix: "huge-".into(),
        first_user: 0,
        retry: Default::default(),
        shape: flashsale_driver::spec::Shape::default(),
    };
    // Cancelled once every user has bought: looping users stop after their current attempt.
    let cancel = CancellationToken::new();
    let live = Live::new(cancel.clone());
    let watched = live.clone();
    let url = server.url();
    let load = tokio::task::spawn_blocking(move || {
        flashsale_driver::engine::run_observed(std::slice::from_ref(&url), &spec, None, &live)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while watched.totals().purchased < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the users never bought"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let load = load.await.expect("no load thread panicked").unwrap();
    assert!(load.stats.counts.attempts >= 4);
    assert_eq!(load.stats.counts.purchased, load.stats.counts.attempts);
    server.shutdown().await.unwrap();
}

/// `driver ... 2>&1 | head -1` with an error to report: a closed stderr does not turn exit 2
/// into a panic (101).
#[test]
fn a_closed_stderr_is_not_a_panic_either() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args([
            "--mode",
            "safe",
            "--target",
            "http://127.0.0.1:1",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
