use std::time::Duration;

use super::*;

fn rate(raw: &str) -> Result<Stages, StageError> {
    Stages::parse(raw, StageUnit::Rate)
}

fn users(raw: &str) -> Result<Stages, StageError> {
    Stages::parse(raw, StageUnit::Users)
}

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

#[test]
fn parses_rates_and_users() {
    let spike = rate("0:0/s, 1s:20000/s,10s:20000/s,12s:0/s").unwrap();
    assert_eq!(spike.end(), s(12.0));
    assert_eq!(spike.peak(), 20000.0);
    assert_eq!(spike.total_arrivals(), 10_000.0 + 180_000.0 + 20_000.0);
    assert_eq!(spike.value_at(s(0.5)), 10_000.0);
    assert_eq!(spike.value_at(s(12.0)), 0.0);
    let per_minute = rate("0s:60/m,1m:60").unwrap();
    assert_eq!(per_minute.points()[0].1, 1.0);
    assert_eq!(per_minute.points()[1].1, 60.0);
    let vus = users("0s:0,5s:100,20s:100,25s:0").unwrap();
    assert_eq!(vus.peak(), 100.0);
    assert_eq!(vus.to_string(), "0s:0,5s:100,20s:100,25s:0");
    // A step: two points at one time.
    let step = rate("0s:10/s,5s:10/s,5s:100/s,6s:100/s").unwrap();
    assert_eq!(step.value_at(s(5.0)), 100.0);
    assert_eq!(step.total_arrivals(), 150.0);
}

#[test]
fn every_malformed_form_is_named() {
    let cases: &[(&str, &str)] = &[
        ("", "no stages given"),
        ("   ", "no stages given"),
        ("0s:1/s,", "stage 2 ``: expected TIME:VALUE"),
        ("0s", "stage 1 `0s`: expected TIME:VALUE"),
        ("0s:", "expected TIME:VALUE"),
        (":5/s", "expected TIME:VALUE"),
        (
            "0s:1/s,soon:5/s",
            "stage 2 `soon:5/s`: the time is not a duration",
        ),
        ("0s:1/s,-1s:5/s", "the time is not a duration"),
        ("0s:fast", "expected a rate"),
        ("0s:-5/s,1s:1/s", "expected a rate"),
        ("0s:NaN/s,1s:1/s", "expected a rate"),
        ("0s:inf,1s:1/s", "expected a rate"),
        ("0s:5/h,1s:1/s", "expected a rate"),
        ("0s:2000000/s,1s:1/s", "above the most a driver schedules"),
        ("1s:5/s,2s:5/s", "the first stage must be at 0s"),
        (
            "0s:5/s,2s:5/s,1s:5/s",
            "stage 3 is at 1s, before the stage ahead of it",
        ),
        ("0s:5/s", "give at least two points"),
        ("0s:5/s,0s:5/s", "give at least two points"),
        ("0s:5/s,2h:5/s", "at most 1h"),
        ("0s:0/s,10s:0/s", "never send anything"),
        ("0s:1000000/s,1h:1000000/s", "arrivals; at most"),
    ];
    for (raw, expected) in cases {
        let err = rate(raw).expect_err(raw).to_string();
        assert!(
            err.contains(expected),
            "{raw:?}: {err:?} lacks {expected:?}"
        );
    }
    let user_cases: &[(&str, &str)] = &[
        ("0s:0,5s:10/s", "takes a user count, not a rate"),
        ("0s:0,5s:1.5", "whole number of users"),
        ("0s:0,5s:-1", "whole number of users"),
        ("0s:0,5s:2000000", "users; at most"),
    ];
    for (raw, expected) in user_cases {
        let err = users(raw).expect_err(raw).to_string();
        assert!(
            err.contains(expected),
            "{raw:?}: {err:?} lacks {expected:?}"
        );
    }
    let too_many = vec!["0s:1"; MAX_STAGES + 1].join(",");
    assert_eq!(users(&too_many), Err(StageError::TooMany(MAX_STAGES + 1)));
}

#[test]
fn rates_and_think_times() {
    assert_eq!(parse_rate("2000/s"), Ok(2000.0));
    assert_eq!(parse_rate("2000"), Ok(2000.0));
    assert_eq!(parse_rate("30/m"), Ok(0.5));
    assert!(parse_rate("2k/s").is_err());
    assert_eq!(
        Think::parse("100ms").unwrap(),
        Think {
            min: s(0.1),
            max: s(0.1)
        }
    );
    let range = Think::parse("50ms..200ms").unwrap();
    for seq in 0..100 {
        let pause = range.pick(7, seq);
        assert!(pause >= s(0.05) && pause <= s(0.2));
    }
    assert_ne!(range.pick(7, 1), range.pick(7, 2));
    assert!(Think::parse("200ms..50ms").is_err());
    assert!(Think::parse("later").is_err());
    assert!(Think::parse("1s..").is_err());
}

#[test]
fn users_join_when_the_ramp_reaches_them() {
    let vus = users("0s:0,10s:100,20s:100,30s:0").unwrap();
    // User 0 (level 1) joins at 0.1 s, user 99 (level 100) at 10 s.
    let join = vus.next_at_least(1.0, Duration::ZERO).unwrap();
    assert!(join > s(0.099) && join < s(0.101), "{join:?}");
    let join = vus.next_at_least(100.0, Duration::ZERO).unwrap();
    assert!(join >= s(10.0) && join < s(10.001), "{join:?}");
    // Active now: the instant asked for.
    assert_eq!(vus.next_at_least(50.0, s(15.0)), Some(s(15.0)));
    // Past its leaving (user 49 leaves at 25 s) and never back.
    assert_eq!(vus.next_at_least(50.0, s(25.5)), None);
    assert_eq!(vus.next_at_least(101.0, Duration::ZERO), None);
}

#[test]
fn stages_files() {
    let file = StagesFile::parse("stages = \"0s:0/s,1s:10/s\"\nmax_in_flight = 50\n").unwrap();
    assert_eq!(file.max_in_flight, Some(50));
    assert!(
        StagesFile::parse("")
            .unwrap_err()
            .to_string()
            .contains("exactly one")
    );
    assert!(StagesFile::parse("stages = 5").is_err());
    assert!(StagesFile::parse("stagez = \"0s:1\"").is_err());
}
