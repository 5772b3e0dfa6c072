//! Every rule has a report that only it rejects; honest reports pass.

use super::*;
use crate::cluster::wire::stats_to_wire;
use crate::engine::history::AttemptKey;
use crate::engine::series::bucket_ms_for;
use crate::engine::stats::Stats;
use crate::outcome::Outcome;
use crate::spec::{Mode, Quantities};
use hdrhistogram::Histogram;
use tonic::Code;

const TIMEOUT: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(20);

fn share(mix: &str) -> LoadSpec {
    LoadSpec {
        mode: Mode::Buggy,
        users: 10,
        connections: 1,
        threads: 1,
        duration: None,
        quantity: Quantities::parse(mix).unwrap(),
        clicks: 2,
        round: 1,
        timeout: TIMEOUT,
        user_prefix: "p-".into(),
        first_user: 100,
        retry: Default::default(),
        shape: crate::spec::Shape::default(),
    }
}

/// What a correct worker reports for `share`: every buyer tries once, with every kind of
/// outcome among them.
fn honest(share: &LoadSpec) -> pb::WorkerResult {
    let mut stats = Stats::with_bucket_ms(bucket_ms_for(share.duration));
    let mut i = 0u64;
    for user in 100..110u32 {
        for seq in 0..share.clicks {
            let quantity = share.quantity.pick(user, seq);
            let (outcome, latency) = match i % 8 {
                0 => (
                    Outcome::Purchased {
                        order_id: format!("o{i}"),
                        quantity,
                        stock_after: Some(5),
                    },
                    Duration::from_millis(3),
                ),
                1 => (
                    Outcome::Purchased {
                        order_id: String::new(),
                        quantity,
                        stock_after: Some(4),
                    },
                    Duration::from_millis(3),
                ),
                2 => (
                    Outcome::SoldOut {
                        stock_after: Some(0),
                    },
                    Duration::from_millis(1),
                ),
                3 => (
                    Outcome::LimitReached {
                        stock_after: Some(0),
                    },
                    Duration::from_millis(1),
                ),
                4 => (Outcome::BadReply, Duration::from_millis(2)),
                5 => (
                    Outcome::Status(Code::Unavailable),
                    Duration::from_micros(400),
                ),
                6 => (Outcome::Status(Code::Internal), Duration::from_millis(7)),
                _ => (Outcome::Timeout, TIMEOUT),
            };
            // End instants within the first 60 ms (the checks cannot relate them to
            // latencies), so a short window breaks only the rule about timeouts.
            let at = Duration::from_millis(i * 3);
            stats.record_at(at, AttemptKey { user, seq }, quantity, outcome, latency);
            i += 1;
        }
    }
    pb::WorkerResult {
        run_id: 1,
        error: String::new(),
        stats: Some(stats_to_wire(&stats)),
        elapsed_s: 10.5,
        connections: 1,
        threads: 1,
    }
}

fn kinds(faults: &[Fault]) -> Vec<&'static str> {
    let mut kinds: Vec<_> = faults.iter().map(Fault::kind).collect();
    kinds.dedup();
    kinds
}

/// `change` applied to an honest report of `share("1,2,3")` breaks exactly the rule `kind`
/// when checked against `plan`.
fn only(kind: &str, plan: &LoadSpec, window: Duration, change: impl Fn(&mut pb::WorkerResult)) {
    let mut result = honest(&share(if plan.quantity.values() == [1] {
        "1"
    } else {
        "1,2,3"
    }));
    change(&mut result);
    let faults = verify(plan, window, &result);
    assert_eq!(kinds(&faults), [kind], "{faults:#?}");
    assert!(!faults[0].to_string().is_empty());
}

fn stats(result: &mut pb::WorkerResult) -> &mut pb::LoadStats {
    result.stats.as_mut().unwrap()
}

#[test]
fn an_honest_report_passes() {
    for mix in ["1", "1,2,3"] {
        let plan = share(mix);
        assert_eq!(verify(&plan, WINDOW, &honest(&plan)), []);
    }
    let failed = pb::WorkerResult {
        error: "cannot reach the target".into(),
        ..Default::default()
    };
    assert_eq!(verify(&share("1"), WINDOW, &failed), []);
}

#[test]
fn each_rule_rejects_its_own_lie() {
    let plan = share("1,2,3");
    only("no_stats", &plan, WINDOW, |r| r.stats = None);
    only("columns", &plan, WINDOW, |r| {
        stats(r).history_order.pop();
    });
    only("history_length", &plan, WINDOW, |r| {
        let s = stats(r);
        s.history_user.pop();
        s.history_seq.pop();
        s.history_quantity.pop();
        s.history_answer.pop();
        s.history_order.pop();
        s.history_sent_us.pop();
        s.history_replied_us.pop();
    });
    only("times", &plan, WINDOW, |r| {
        let s = stats(r);
        s.history_sent_us[3] = 50;
        s.history_replied_us[3] = 40;
    });
    let mut moved = plan.clone();
    moved.first_user = 101;
    only("user_outside", &moved, WINDOW, |_| {});
    let mut other_mix = plan.clone();
    other_mix.quantity = Quantities::parse("3,2,1").unwrap();
    only("quantity", &other_mix, WINDOW, |_| {});
    only("answer", &plan, WINDOW, |r| stats(r).history_answer[2] = 9);
    only("order_without_purchase", &plan, WINDOW, |r| {
        // Attempt 2 was sold out.
        stats(r).history_order[2] = 0xdead;
    });
    only("counter", &plan, WINDOW, |r| {
        let s = stats(r);
        s.sold_out += 1;
        s.limit_reached -= 1;
    });
    only("counter", &plan, WINDOW, |r| stats(r).units_requested += 1);
    only("counter", &plan, WINDOW, |r| {
        let s = stats(r);
        s.indeterminate += 1;
        s.indeterminate_units += 1;
    });
    only("status", &plan, WINDOW, |r| {
        let s = stats(r);
        let unavailable = Code::Unavailable as i32;
        let n = s.statuses.remove(&unavailable).unwrap();
        s.statuses.insert(99, n);
    });
    only("series", &plan, WINDOW, |r| {
        stats(r)
            .series
            .extend((0..10_000).map(|_| pb::SeriesBucket::default()));
    });
    only("series", &plan, WINDOW, |r| {
        stats(r).series[0].attempts += 1
    });
    only("series", &plan, WINDOW, |r| stats(r).series_bucket_ms = 15);
    only("series", &plan, WINDOW, |r| {
        stats(r).series[0].latency_bins[0] = 60_000;
    });
    only("histogram", &plan, WINDOW, |r| {
        let mut other = Histogram::<u64>::new_with_bounds(1, u64::MAX / 2, 5).unwrap();
        other.record(5).unwrap();
        let mut bytes = Vec::new();
        use hdrhistogram::serialization::Serializer as _;
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&other, &mut bytes)
            .unwrap();
        stats(r).latency_hdr = bytes;
    });
    only("histogram", &plan, WINDOW, |r| stats(r).latency_hdr.clear());
    only("elapsed", &plan, WINDOW, |r| r.elapsed_s = f64::NAN);
    only("elapsed", &plan, WINDOW, |r| r.elapsed_s = 1e9);
    only("early_timeouts", &plan, Duration::from_secs(1), |r| {
        r.elapsed_s = 0.5;
    });
}

#[test]
fn seq_rules() {
    // One quantity, so moving an attempt to another seq changes nothing else.
    let plan = share("1");
    only("seq", &plan, WINDOW, |r| stats(r).history_seq[1] = 0);
    let mut burst_of_one = plan.clone();
    burst_of_one.clicks = 1;
    let faults = verify(&burst_of_one, WINDOW, &honest(&plan));
    assert_eq!(kinds(&faults), ["too_many_attempts", "seq"], "{faults:#?}");
}

#[test]
fn wrapped_counters_are_caught_not_wrapped() {
    let plan = share("1");
    let mut result = honest(&plan);
    stats(&mut result).purchased = u64::MAX - 3;
    let faults = verify(&plan, WINDOW, &result);
    assert!(faults.contains(&Fault::CountersSum {
        sum: None,
        attempts: 20
    }));
    assert!(kinds(&faults).contains(&"counter"));
}

#[test]
fn sustained_bounds_follow_the_window() {
    let mut plan = share("1");
    plan.duration = Some(Duration::from_secs(10));
    let bounds = ShareBounds::new(&plan);
    // 20 buyers, each at most one attempt per 20 µs plus one.
    assert_eq!(bounds.max_attempts(Duration::from_millis(1)), 20 * 51);
    assert_eq!(
        bounds.max_attempts(Duration::from_secs(60)),
        20 * (500_000 + 1)
    );
    plan.users = 1_000_000;
    plan.clicks = 1;
    plan.duration = Some(Duration::from_secs(3600));
    assert_eq!(
        ShareBounds::new(&plan).max_attempts_ever(),
        MAX_SHARE_ATTEMPTS
    );
}

#[test]
fn report_bytes_bound_a_burst() {
    let plan = share("1");
    let bytes = ShareBounds::new(&plan).max_report_bytes();
    let honest = prost::Message::encoded_len(&honest(&plan));
    assert!(honest as u64 <= bytes, "{honest} > {bytes}");
    // 20 attempts: dominated by a full series and the histogram, well under a MiB.
    assert!(bytes < 1 << 20, "{bytes}");
}
