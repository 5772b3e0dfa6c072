//! `--retries` against doubles that lose replies after committing (`faults/`): a checkout that
//! deduplicates request ids passes once the retries resend them, one that does not fails
//! `exactly_once`, and the embedded server's unstable path has its UNAVAILABLE answers retried
//! away. Runs are serialised (`harness::exclusive`).

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
