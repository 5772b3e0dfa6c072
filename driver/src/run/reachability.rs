//! Notices a target that died mid-run, so the driver stops hammering it and still reports.
//!
//! The target counts as gone when, for [`GIVE_UP_AFTER`], every attempt that finished was
//! refused with UNAVAILABLE (what a refused or reset connection comes to) and `GetStock` on the
//! control connection failed too, or, whatever `GetStock` says, for [`NO_REPLY_GIVE_UP`]
//! (no connection carried a reply: a target that sends GOAWAY at once or refuses every
//! stream, issue #25). Timeouts alone do not count: a slow or paused server is measured, not
//! abandoned. Reading the live counters costs the load nothing (they are the
//! per-connection atomics the progress line reads).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::Code;

use crate::checkout::Control;
use crate::engine::counts::Counts;
use crate::engine::live::Live;

/// How long the target must refuse everything before the load stops.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3);
/// How long every attempt may be refused before the load stops even though `GetStock`
/// answers.
pub const NO_REPLY_GIVE_UP: Duration = Duration::from_secs(10);
/// How often the live counters are looked at.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long one `GetStock` probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the counters and probes said so far.
#[derive(Debug, Default)]
pub struct Tracker {
    /// The counters at the last look.
    last: Counts,
    /// Since when everything was refused, and how many attempts.
    refusing: Option<(Instant, u64)>,
    /// The same, not reset by a probe that answered.
    no_reply: Option<(Instant, u64)>,
}

impl Tracker {
    /// Looks at the counters at `now`: true when attempts finished since the last look and
    /// every one of them was refused with UNAVAILABLE; otherwise the target answered something
    /// (or nothing finished) and the count starts over.
    pub fn only_refused(&mut self, now: Instant, totals: Counts) -> bool {
        let attempts = totals.attempts.saturating_sub(self.last.attempts);
        let refused = totals
            .statuses
            .get(Code::Unavailable)
            .saturating_sub(self.last.statuses.get(Code::Unavailable));
        self.last = totals;
        if attempts > 0 && refused == attempts {
            for since in [&mut self.refusing, &mut self.no_reply] {
                match since {
                    Some((_, n)) => *n = n.saturating_add(refused),
                    None => *since = Some((now, refused)),
                }
            }
            true
        } else {
            self.refusing = None;
            self.no_reply = None;
            false
        }
    }

    /// The target answered a probe: it is alive.
    pub fn answered(&mut self) {
        self.refusing = None;
    }

    /// Why the load must stop at `now` although the target answers `GetStock`: every attempt
    /// refused for [`NO_REPLY_GIVE_UP`].
    pub fn no_reply(&self, now: Instant) -> Option<String> {
        let (since, refused) = self.no_reply?;
        let for_ = now.saturating_duration_since(since);
        (for_ >= NO_REPLY_GIVE_UP).then(|| {
            format!(
                "no connection carried a reply for {:.1} s: every attempt ({refused}) was refused with UNAVAILABLE (the checkout refuses connections or streams, e.g. GOAWAY at once); the load was stopped",
                for_.as_secs_f64()
            )
        })
    }

    /// A probe at `now` failed with `error`: why the target counts as gone, once everything
    /// has been refused for [`GIVE_UP_AFTER`].
    pub fn probe_failed(&self, now: Instant, error: &str) -> Option<String> {
        let (since, refused) = self.refusing?;
        let for_ = now.saturating_duration_since(since);
        (for_ >= GIVE_UP_AFTER).then(|| {
            format!(
                "the target stopped answering: for {:.1} s every attempt ({refused}) was refused with UNAVAILABLE and GetStock failed ({error}); the load was stopped",
                for_.as_secs_f64()
            )
        })
    }
}

/// Watches the load until `done`; when the target is gone, cancels `stop_load` (looping users
/// stop after their current attempt) and returns why.
pub async fn watch(
    mut control: Control,
    live: Arc<Live>,
    stop_load: CancellationToken,
    done: CancellationToken,
) -> Option<String> {
    let mut tracker = Tracker::default();
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = done.cancelled() => return None,
            _ = ticks.tick() => {}
        }
        if !tracker.only_refused(Instant::now(), live.counts()) {
            continue;
        }
        if let Some(why) = tracker.no_reply(Instant::now()) {
            tracing::warn!(%why, "stopping the load");
            stop_load.cancel();
            return Some(why);
        }
        // Every attempt since the last look was refused: ask the server itself.
        let error = match tokio::time::timeout(PROBE_TIMEOUT, control.stock()).await {
            Ok(Ok(_)) => {
                tracker.answered();
                continue;
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {PROBE_TIMEOUT:?}"),
        };
        if let Some(why) = tracker.probe_failed(Instant::now(), &error) {
            tracing::warn!(%why, "stopping the load");
            stop_load.cancel();
            return Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn counts(outcomes: &[Outcome]) -> Counts {
        let mut c = Counts::default();
        for o in outcomes {
            c.record(o, 1);
        }
        c
    }

    #[test]
    fn gives_up_only_after_everything_was_refused_for_the_grace_time() {
        let refused = || Outcome::Status(Code::Unavailable);
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let mut seen = Vec::new();
        let mut look = |t: &mut Tracker, at: Duration, more: &[Outcome]| {
            seen.extend_from_slice(more);
            t.only_refused(t0 + at, counts(&seen))
        };

        // Sales, then refusals: the clock starts at the first all-refused look.
        assert!(!look(
            &mut t,
            Duration::ZERO,
            &[Outcome::SoldOut {
                stock_after: Some(0)
            }]
        ));
        assert!(look(&mut t, Duration::from_secs(1), &[refused()]));
        assert_eq!(t.probe_failed(t0 + Duration::from_secs(3), "refused"), None);
        // One answer in between starts over.
        assert!(!look(
            &mut t,
            Duration::from_secs(2),
            &[refused(), Outcome::Timeout]
        ));
        assert!(look(&mut t, Duration::from_secs(3), &[refused()]));
        assert_eq!(t.probe_failed(t0 + Duration::from_secs(5), "refused"), None);
        // A probe that answers starts over too.
        t.answered();
        assert!(look(
            &mut t,
            Duration::from_secs(6),
            &[refused(), refused()]
        ));
        assert!(look(&mut t, Duration::from_secs(7), &[refused()]));
        assert_eq!(t.probe_failed(t0 + Duration::from_secs(8), "refused"), None);
        // Nothing finishing is no evidence either way: start over.
        assert!(!look(&mut t, Duration::from_secs(9), &[]));
        assert!(look(&mut t, Duration::from_secs(10), &[refused()]));
        assert!(look(
            &mut t,
            Duration::from_secs(12),
            &[refused(), refused()]
        ));
        let why = t
            .probe_failed(t0 + Duration::from_secs(13), "connection refused")
            .expect("gone after 3 s of refusals and a failed probe");
        assert!(why.contains("every attempt (3)"), "{why}");
        assert!(why.contains("connection refused"), "{why}");
    }

    #[test]
    fn refusals_for_the_no_reply_time_give_up_even_if_get_stock_answers() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let mut seen = Vec::new();
        for second in 0..=10 {
            seen.push(Outcome::Status(Code::Unavailable));
            assert!(t.only_refused(t0 + Duration::from_secs(second), counts(&seen)));
            t.answered();
            let why = t.no_reply(t0 + Duration::from_secs(second));
            assert_eq!(why.is_some(), second >= 10, "{second}: {why:?}");
        }
        let why = t.no_reply(t0 + Duration::from_secs(10)).unwrap();
        assert!(
            why.starts_with("no connection carried a reply for 10.0 s"),
            "{why}"
        );
        // One other outcome starts over.
        seen.push(Outcome::Timeout);
        assert!(!t.only_refused(t0 + Duration::from_secs(11), counts(&seen)));
        assert_eq!(t.no_reply(t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn timeouts_alone_never_give_up() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let mut seen = Vec::new();
        for second in 0..10 {
            seen.push(Outcome::Timeout);
            assert!(!t.only_refused(t0 + Duration::from_secs(second), counts(&seen)));
            assert_eq!(t.probe_failed(t0 + Duration::from_secs(second), "x"), None);
        }
    }
}
