use std::cell::Cell;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::spec::stages::StageUnit;

fn schedule(raw: &str) -> Schedule {
    Schedule::new(&Stages::parse(raw, StageUnit::Rate).unwrap())
}

fn all(raw: &str) -> Vec<Duration> {
    let mut s = schedule(raw);
    (0..).map_while(|n| s.instant(n)).collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn a_constant_rate_is_evenly_spaced() {
    let at = all("0s:1000/s,10s:1000/s");
    assert_eq!(at.len(), 10_000);
    assert_eq!(at[0], Duration::ZERO);
    assert!((secs(at[1]) - 0.001).abs() < 1e-9);
    assert!((secs(at[9_999]) - 9.999).abs() < 1e-9);
}

#[test]
fn rounding_and_rates_below_one_per_second() {
    let slow: Vec<f64> = all("0s:0.5/s,10s:0.5/s").into_iter().map(secs).collect();
    assert_eq!(slow, [0.0, 2.0, 4.0, 6.0, 8.0]);
    assert_eq!(all("0s:30/m,1m:30/m").len(), 30);
    // 2.5 arrivals per second for 1 s: three (at 0, 0.4, 0.8), the area rounded up.
    let partial: Vec<f64> = all("0s:2.5/s,1s:2.5/s").into_iter().map(secs).collect();
    assert_eq!(partial.len(), 3);
    assert!((partial[2] - 0.8).abs() < 1e-9);
}

#[test]
fn a_ramp_follows_the_area_under_the_rate() {
    // 0 → 10/s over 10 s: A(t) = t²/2, so arrival n is due at √(2n); 50 in all.
    let at = all("0s:0/s,10s:10/s");
    assert_eq!(at.len(), 50);
    for (n, t) in at.iter().enumerate() {
        assert!(
            (secs(*t) - (2.0 * n as f64).sqrt()).abs() < 1e-6,
            "{n}: {t:?}"
        );
    }
    // Down again: symmetric, 100 in all, the last one before 20 s.
    let at = all("0s:0/s,10s:10/s,20s:0/s");
    assert_eq!(at.len(), 100);
    assert!(at.windows(2).all(|w| w[0] <= w[1]));
    assert!(secs(at[99]) < 20.0 && secs(at[99]) > 18.5);
    // A step and a pause: 10 at 10/s, none for 5 s, 50 at 50/s.
    let at = all("0s:10/s,1s:10/s,1s:0/s,6s:0/s,6s:50/s,7s:50/s");
    assert_eq!(at.len(), 60);
    assert!((secs(at[9]) - 0.9).abs() < 1e-9);
    assert!((secs(at[10]) - 6.0).abs() < 1e-9);
}

#[test]
fn asking_again_from_an_earlier_arrival_restarts_the_search() {
    let mut s = schedule("0s:10/s,1s:10/s,1s:100/s,2s:100/s");
    assert!(s.instant(50).is_some());
    assert_eq!(s.instant(0), Some(Duration::ZERO));
}

#[test]
fn thread_shares_partition_the_arrivals_and_the_bound() {
    let shares: Vec<Share> = (0..3).map(|t| Share::new(t, 3, 10)).collect();
    let bounds: Vec<usize> = shares.iter().map(|s| s.max_in_flight).collect();
    assert_eq!(bounds, [4, 3, 3]);
    // Never 0: a thread with no share of a small bound still sends one at a time.
    assert_eq!(Share::new(5, 8, 3).max_in_flight, 1);
    let mut seen = Vec::new();
    for share in shares {
        let mut s = schedule("0s:100/s,1s:100/s");
        let mut n = share.index;
        while s.instant(n).is_some() {
            seen.push(n);
            n += share.of;
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
}

/// Runs `raw` on the paused clock with sends that take `service(n)`; returns (sent, dropped,
/// latest lateness of a send behind its due instant).
async fn run(
    raw: &str,
    max_in_flight: u32,
    service: impl Fn(u64) -> Duration,
) -> (u64, u64, Duration) {
    let live = Live::new(CancellationToken::new());
    let origin = Instant::now();
    let sent = Cell::new(0u64);
    let late = Cell::new(Duration::ZERO);
    let start = |n: u64, due: Instant| {
        late.set(late.get().max(Instant::now() - due));
        sent.set(sent.get() + 1);
        tokio::time::sleep(service(n))
    };
    let share = Share::new(0, 1, max_in_flight);
    let dropped = run_schedule(schedule(raw), share, origin, &live, start, |()| {}).await;
    (sent.get(), dropped, late.get())
}

#[tokio::test(start_paused = true)]
async fn arrivals_are_sent_at_their_due_instants() {
    let (sent, dropped, late) = run("0s:100/s,2s:100/s", 10, |_| Duration::from_millis(5)).await;
    assert_eq!((sent, dropped), (200, 0));
    // The timer's resolution is a millisecond; the paused clock has no other lag.
    assert!(late <= Duration::from_millis(1), "{late:?}");
}

#[tokio::test(start_paused = true)]
async fn arrivals_over_the_bound_are_dropped_not_delayed() {
    // Every send takes 1 s; 10 may be in flight: the first 10 (0..0.09 s) go, the other 90
    // of the first second find the bound reached; at 1 s the first ones finish.
    let (sent, dropped, late) = run("0s:100/s,1s:100/s", 10, |_| Duration::from_secs(1)).await;
    assert_eq!((sent, dropped), (10, 90));
    assert!(late <= Duration::from_millis(1), "{late:?}");
    // A stall of the 10 sends due in 0.5..0.6 s, with room for 20: what arrives while they
    // stall still goes until the bound is reached, then drops.
    // (995 ms, so that no stalled send ends at the very instant an arrival is due.)
    let stall = |n: u64| {
        if (50..60).contains(&n) {
            Duration::from_millis(995)
        } else {
            Duration::from_millis(5)
        }
    };
    let (sent, dropped, _) = run("0s:100/s,3s:100/s", 20, stall).await;
    assert_eq!(sent + dropped, 300);
    // While 10 stall (0.6..1.5 s, 90 arrivals), 10 more slots hold: nothing is dropped.
    assert_eq!(dropped, 0);
    let (sent, dropped, _) = run("0s:100/s,3s:100/s", 10, stall).await;
    // 10 in flight from 0.59 s until 1.495 s: the arrivals due at 0.60..1.49 s are dropped.
    assert_eq!((sent, dropped), (210, 90));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_load_releases_nothing_more() {
    let cancel = CancellationToken::new();
    let live = Live::new(cancel.clone());
    let origin = Instant::now();
    let sent = Cell::new(0u64);
    let start = |n: u64, _due| {
        sent.set(sent.get() + 1);
        if n == 9 {
            cancel.cancel();
        }
        tokio::time::sleep(Duration::from_millis(1))
    };
    let share = Share::new(0, 1, 100);
    let dropped = run_schedule(
        schedule("0s:10/s,10s:10/s"),
        share,
        origin,
        &live,
        start,
        |()| {},
    )
    .await;
    assert_eq!((sent.get(), dropped), (10, 0));
    assert!(Instant::now() - origin < Duration::from_secs(2));
}
