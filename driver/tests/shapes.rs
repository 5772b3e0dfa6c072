//! Load shapes end to end (issue #21): the driver binary runs an open model (`--rate`) and
//! ramping users (`--vus-stages`) against the fault doubles (`faults/`) on 127.0.0.1:0, and the
//! audit judges them as it judges bursts. Runs are serialised (`harness::exclusive`).

mod faults;

use std::collections::BTreeSet;
use std::time::Duration;

use faults::harness::{driver, exclusive};
use faults::{Config, Fault, start};
use serde_json::Value;

/// No check failed (with a stock this large nothing can be oversold: `no_oversell` is
/// inconclusive, which is not what these runs are about).
fn no_check_fails(run: &faults::harness::Run) {
    assert!(run.failed().is_empty(), "{}", run.context());
    assert_eq!(run.check("conservation"), "pass", "{}", run.context());
}

fn ms(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// A 1 s stall of the checkout during a constant-rate run shows in the response time's p99:
/// arrivals keep coming while it stalls. A closed loop against the same stall hides it
/// (coordinated omission): its users wait instead of arriving.
#[test]
fn a_stall_shows_in_an_open_run_and_hides_in_a_closed_loop() {
    let _one = exclusive();
    // 200/s for 4 s; the 300th purchase (1.5 s in) stalls the checkout for 1 s.
    let double = start(
        Config::new(Fault::Correct)
            .stock(100_000)
            .stall(300, Duration::from_secs(1)),
    );
    let args = [
        "--rate",
        "200/s",
        "--duration",
        "4s",
        "-u",
        "100",
        "--max-in-flight",
        "1000",
        "--stock",
        "100000",
        "--no-probes",
    ];
    let run = driver(double.url(), &args);
    no_check_fails(&run);
    let shape = &run.json["load_shape"];
    assert_eq!(shape["model"], "open", "{}", run.context());
    assert_eq!(shape["dropped"], 0, "{}", run.context());
    assert_eq!(shape["scheduled"], 800, "{}", run.context());
    assert_eq!(run.json["outcomes"]["attempts"], 800, "{}", run.context());
    assert_eq!(shape["thresholds_use"], "response_time");
    let response = ms(&shape["response_time_ms"]["p99"]);
    let service = ms(&shape["service_time_ms"]["p99"]);
    assert!(
        response >= 800.0,
        "response p99 {response} ms\n{}",
        run.context()
    );
    assert_eq!(ms(&run.json["latency_ms"]["p99"]), response);
    assert!(
        service <= response,
        "service {service} > response {response}"
    );

    // The same stall under a closed loop of 10 users: ten slow purchases among thousands.
    let double = start(
        Config::new(Fault::Correct)
            .stock(100_000)
            .stall(300, Duration::from_secs(1)),
    );
    let args = [
        "--duration",
        "4s",
        "-u",
        "10",
        "--stock",
        "100000",
        "--no-probes",
    ];
    let closed = driver(double.url(), &args);
    no_check_fails(&closed);
    assert!(closed.json.get("load_shape").is_none());
    let p99 = ms(&closed.json["latency_ms"]["p99"]);
    assert!(
        p99 < 800.0,
        "closed-loop p99 {p99} ms\n{}",
        closed.context()
    );
    assert!(
        ms(&closed.json["latency_ms"]["max"]) >= 800.0,
        "{}",
        closed.context()
    );
}

/// An in-flight bound that a stall fills: the arrivals past it are dropped and counted, never
/// sent, so they are not attempts and the audit still reconciles.
#[test]
fn arrivals_past_the_bound_are_dropped_and_the_audit_passes() {
    let _one = exclusive();
    let double = start(
        Config::new(Fault::Correct)
            .stock(100_000)
            .stall(100, Duration::from_secs(1)),
    );
    let args = [
        "--rate",
        "200/s",
        "--duration",
        "3s",
        "-u",
        "100",
        "--max-in-flight",
        "20",
        "--stock",
        "100000",
        "--no-probes",
    ];
    let run = driver(double.url(), &args);
    no_check_fails(&run);
    let dropped = run.json["load_shape"]["dropped"].as_u64().unwrap_or(0);
    let attempts = run.json["outcomes"]["attempts"].as_u64().unwrap_or(0);
    // The stall holds 20 in flight for about 1 s: ~180 of its ~200 arrivals are dropped.
    assert!(dropped >= 100, "dropped {dropped}\n{}", run.context());
    assert_eq!(attempts + dropped, 600, "{}", run.context());
    assert_eq!(
        run.json["audit"]["reconciliation"]["book_orders"],
        attempts,
        "{}",
        run.context()
    );
    assert!(run.stdout.is_empty() || run.stdout.contains("dropped"));
}

/// The audit judges an open run as it judges a burst: the correct double passes, a checkout
/// that tests `stock > 0` instead of `stock >= quantity` oversells and fails.
#[test]
fn the_audit_passes_correct_and_fails_buggy_with_a_rate() {
    let _one = exclusive();
    // Two units each from a stock of 51: the 26th sale finds one unit left.
    let args = [
        "--rate",
        "400/s",
        "--duration",
        "2s",
        "--quantity",
        "2",
        "--stock",
        "51",
    ];
    let correct = start(Config::new(Fault::Correct));
    driver(correct.url(), &args).expect_pass();
    let buggy = start(Config::new(Fault::GreaterThanZeroCheck));
    driver(buggy.url(), &args).expect_fails("no_oversell");
}

/// Ramping users: 0 → 20 users in 1 s, 20 for 1 s, 20 → 0 in 1 s, each pausing 100 ms
/// between purchases. All 20 buy, the middle second carries the most, nothing runs past 3 s.
#[test]
fn ramped_users_reach_and_leave_their_target() {
    let _one = exclusive();
    let double = start(Config::new(Fault::Correct).stock(100_000));
    let args = [
        "--vus-stages",
        "0s:0,1s:20,2s:20,3s:0",
        "--think",
        "100ms",
        "--stock",
        "100000",
        "--no-probes",
    ];
    let run = driver(double.url(), &args);
    no_check_fails(&run);
    assert_eq!(run.json["run"]["users"], 20, "{}", run.context());
    assert_eq!(run.json["load_shape"]["model"], "ramping_vus");
    let users: BTreeSet<String> = double.book().into_iter().map(|o| o.user_id).collect();
    assert_eq!(users.len(), 20, "{users:?}");
    let buckets = run.json["series"]["buckets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let attempts: Vec<u64> = buckets
        .iter()
        .map(|b| b["attempts"].as_u64().unwrap_or(0))
        .collect();
    assert!(attempts.len() >= 3, "{attempts:?}\n{}", run.context());
    // Average users: 10, 20, 10: the middle second carries about twice either ramp.
    assert!(attempts[1] * 2 > attempts[0] * 3, "{attempts:?}");
    assert!(attempts[1] * 2 > attempts[2] * 3, "{attempts:?}");
    // Nobody starts a purchase after the last stage (3 s); a bucket past it holds at most
    // the replies of purchases started before.
    assert!(attempts.iter().skip(3).sum::<u64>() <= 20, "{attempts:?}");
}

/// Malformed shapes are refused before anything runs, naming the problem.
#[test]
fn malformed_shapes_are_refused_with_a_reason() {
    let _one = exclusive();
    let double = start(Config::new(Fault::Correct));
    for (args, needle) in [
        (
            vec!["--stages", "1s:5/s,2s:5/s"],
            "the first stage must be at 0s",
        ),
        (vec!["--stages", "0s:5/s,2s"], "expected TIME:VALUE"),
        (vec!["--rate", "fast", "--duration", "1s"], "not a rate"),
        (vec!["--rate", "100/s"], "--duration"),
        (vec!["--stages", "0s:5000000/s,1s:1/s"], "above the most"),
        (vec!["--vus-stages", "0s:0,1s:5/s"], "not a rate"),
        (
            vec!["--stages", "0s:5/s,1s:5/s", "--duration", "2s"],
            "cannot be used with",
        ),
        (
            vec!["--stages", "0s:5/s,1s:5/s", "--clicks", "2"],
            "--clicks",
        ),
        (vec!["--think", "100ms"], "--vus-stages"),
    ] {
        let run = driver(double.url(), &args);
        assert_eq!(run.code, 2, "{args:?}\n{}", run.context());
        assert!(
            run.stderr.contains(needle),
            "{args:?}: {needle:?}\n{}",
            run.stderr
        );
    }
}
