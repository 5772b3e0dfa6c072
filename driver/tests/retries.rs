//! `--retries` against doubles that lose replies after committing (`faults/`): a checkout that
//! deduplicates request ids passes once the retries resend them, one that does not fails
//! `exactly_once`, and the embedded server's unstable path has its UNAVAILABLE answers retried
//! away. `--fault` windows run their commands and are reported; neither flag goes over the
//! wire. Runs are serialised (`harness::exclusive`).

mod faults;

use faults::harness::{FAIL, driver, driver_embedded, exclusive};
use faults::{Config, Fault, start};

const BURST: &[&str] = &["-u", "400", "--stock", "100", "--settle", "1s"];

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

const RETRY: &[&str] = &[
    "--retries",
    "5",
    "--retry-backoff",
    "1ms..20ms",
    "--retry-budget",
    "1000:0.5",
];

#[test]
fn replies_lost_after_the_commit_are_retried_into_their_orders() {
    let _one = exclusive();
    let double = start(Config::new(Fault::UnavailableAfterApply {
        every: 3,
        dedup: true,
    }));
    let run = driver(double.url(), &with(BURST, RETRY));
    run.expect_pass();
    let retries = &run.json["retries"];
    assert!(retries["retried"].as_u64() > Some(0), "{}", run.context());
    assert!(
        retries["retried_purchased"].as_u64() > Some(0),
        "{}",
        run.context()
    );
    assert_eq!(run.json["outcomes"]["purchased"], 100, "{}", run.context());
    assert_eq!(run.reconciliation()["phantom"], 0, "{}", run.context());
    run.expect_check("exactly_once", "pass");
}

#[test]
fn without_retries_a_reply_lost_after_the_commit_is_a_phantom_sale() {
    let _one = exclusive();
    let double = start(Config::new(Fault::UnavailableAfterApply {
        every: 3,
        dedup: true,
    }));
    let run = driver(double.url(), BURST);
    run.expect_exit(FAIL).expect_fails("no_phantom_sales");
    assert_eq!(run.json["retries"]["retried"], 0, "{}", run.context());
}

#[test]
fn a_checkout_that_does_not_deduplicate_fails_exactly_once_under_retries() {
    let _one = exclusive();
    let double = start(Config::new(Fault::UnavailableAfterApply {
        every: 3,
        dedup: false,
    }));
    // Stock for every retry: each one places a second order under its request id. (With the
    // stock gone the retry is answered SOLD_OUT instead, and the first order is a phantom
    // sale: a written order behind the request's last word, a definite "no".)
    let run = driver(
        double.url(),
        &with(&["-u", "400", "--stock", "1000", "--settle", "1s"], RETRY),
    );
    run.expect_exit(FAIL).expect_fails("exactly_once");
    assert!(
        run.reconciliation()["duplicate_requests"].as_u64() > Some(0),
        "{}",
        run.context()
    );
}

#[test]
fn the_unstable_path_passes_its_errors_with_retries() {
    let _one = exclusive();
    // The unstable path refuses some purchases with UNAVAILABLE before touching anything;
    // retried with the same request id, every one ends answered. The buggy race behind it may
    // still oversell: only availability and exactly-once are asked of it here.
    let run = driver_embedded(&with(
        &["--mode", "unstable", "-u", "200", "--stock", "1000"],
        RETRY,
    ));
    assert_eq!(run.json["outcomes"]["errors"], 0, "{}", run.context());
    assert!(
        run.json["retries"]["retried"].as_u64() > Some(0),
        "{}",
        run.context()
    );
    run.expect_check("availability", "pass")
        .expect_check("exactly_once", "pass");
}

#[test]
fn fault_windows_run_their_commands_and_are_reported() {
    let _one = exclusive();
    let run = driver_embedded(&[
        "-u",
        "200",
        "--stock",
        "100",
        "--settle",
        "1s",
        "--fault",
        "0s:echo fault-ran >&2; exit 3",
        "--fault",
        "10m:true",
    ]);
    run.expect_pass().expect_stderr("fault-ran");
    let faults = run.json["faults"].as_array().expect("faults in the report");
    assert_eq!(faults.len(), 2, "{}", run.context());
    assert_eq!(faults[0]["exit_code"], 3, "{}", run.context());
    assert!(
        faults[0]["started_s"].as_f64().is_some(),
        "{}",
        run.context()
    );
    assert!(faults[0]["ended_s"].as_f64() >= faults[0]["started_s"].as_f64());
    assert_eq!(faults[1]["started_s"], serde_json::Value::Null);
    assert!(
        faults[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not started")),
        "{}",
        run.context()
    );
    // Every field is documented.
    let docs = include_str!("../../docs/json-report.md");
    for key in [
        "at_s",
        "command",
        "started_s",
        "ended_s",
        "exit_code",
        "error",
    ] {
        assert!(faults[0].get(key).is_some(), "{key}");
        assert!(docs.contains(key), "{key}");
    }
}

#[test]
fn faults_and_retries_stay_off_the_wire() {
    let _one = exclusive();
    for flags in [["--fault", "1s:true"], ["--retries", "2"]] {
        let mut argv: Vec<String> = ["--mode", "safe", "--coordinator", "http://127.0.0.1:1"]
            .map(String::from)
            .to_vec();
        argv.extend(flags.map(String::from));
        let run = faults::harness::run_argv(argv);
        run.expect_exit(faults::harness::ERROR)
            .expect_stderr("not supported with --coordinator");
    }
}
