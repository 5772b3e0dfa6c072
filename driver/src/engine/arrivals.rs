//! The open model: purchases arrive at the instants the stages schedule, whether or not the
//! checkout keeps up (k6's constant/ramping-arrival-rate, wrk2's constant throughput).
//!
//! Arrival `n` (from 0) is due when the area under the rate reaches `n` (so a constant rate
//! `R` for `D` schedules `⌈R·D⌉` arrivals at `0, 1/R, 2/R, ...`). Load thread `t` of `T` takes
//! the arrivals `n ≡ t (mod T)` and spreads them round-robin over its connections; one timer
//! per thread wakes at the next due instant and releases every arrival due by then in one
//! batch (tokio's timer has millisecond granularity: at high rates a batch per tick). An
//! arrival that finds the thread's share of `--max-in-flight` purchases in flight is dropped
//! and counted, never delayed; dropped arrivals never reach the history.
//!
//! Arrival `n` is purchase `n / users` of user `n % users`, so request ids stay unique. Each
//! purchase records its response time (due instant → reply) and its service time (actual
//! send → reply); the history's `sent_us` is the actual send. Purchasers are pooled per
//! connection and reused, so a request costs what a burst's does: no lock, no channel.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::checkout::{Attempt, Purchaser};
use crate::engine::history::AttemptKey;
use crate::engine::live::{ConnectionLive, Live};
use crate::engine::stats::Stats;
use crate::spec::LoadSpec;
use crate::spec::ids::request_id;
use crate::spec::stages::Stages;

/// The due instants of the arrivals of some stages, computed in order.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Linear pieces: start and length (s), rates at both ends (/s), arrivals before it.
    segments: Vec<Segment>,
    /// The piece the last arrival asked for fell in.
    at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: f64,
    length: f64,
    from: f64,
    to: f64,
    before: f64,
}

impl Segment {
    fn arrivals(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.length
    }
}

impl Schedule {
    pub fn new(stages: &Stages) -> Self {
        let mut before = 0.0;
        let segments = stages
            .segments()
            .map(|(start, length, from, to)| {
                let segment = Segment {
                    start,
                    length,
                    from,
                    to,
                    before,
                };
                before += segment.arrivals();
                segment
            })
            .collect();
        Self { segments, at: 0 }
    }

    /// When arrival `n` is due after the start, or `None` when the stages end before it.
    /// Calls with `n` not decreasing cost O(1) each.
    pub fn instant(&mut self, n: u64) -> Option<Duration> {
        let target = n as f64;
        if self
            .segments
            .get(self.at)
            .is_some_and(|s| target < s.before)
        {
            self.at = 0;
        }
        while let Some(s) = self.segments.get(self.at) {
            if target < s.before + s.arrivals() {
                break;
            }
            self.at += 1;
        }
        let s = self.segments.get(self.at)?;
        let m = target - s.before;
        // Solve from·τ + (to − from)/(2·length)·τ² = m, in the form that stays exact when the
        // rate is flat or starts at zero.
        let slope = (s.to - s.from) / s.length;
        let tau = if m <= 0.0 {
            0.0
        } else {
            2.0 * m / (s.from + (s.from * s.from + 2.0 * slope * m).max(0.0).sqrt())
        };
        let at = s.start + tau.clamp(0.0, s.length);
        Some(Duration::try_from_secs_f64(at).unwrap_or(Duration::MAX))
    }
}

/// The part of the arrivals one load thread sends.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    /// This thread's index and the number of threads: it sends `n ≡ index (mod of)`.
    pub index: u64,
    pub of: u64,
    /// Most of its purchases in flight at once.
    pub max_in_flight: usize,
}

impl Share {
    /// Thread `index` of `of`'s share of `max_in_flight` (at least 1).
    pub fn new(index: u32, of: u32, max_in_flight: u32) -> Self {
        let (index, of) = (u64::from(index), u64::from(of.max(1)));
        let total = u64::from(max_in_flight);
        let mine = total / of + u64::from(index < total % of);
        Self {
            index,
            of,
            max_in_flight: usize::try_from(mine.max(1)).unwrap_or(usize::MAX),
        }
    }
}

/// One connection of the thread: the purchaser to clone, its idle clones, its live counters.
pub(super) struct Lane {
    template: Purchaser,
    idle: Vec<Purchaser>,
    counters: Arc<ConnectionLive>,
}

impl Lane {
    pub(super) fn new(purchaser: Purchaser, counters: Arc<ConnectionLive>) -> Self {
        Self {
            template: purchaser,
            idle: Vec::new(),
            counters,
        }
    }
}

/// Sends this thread's share of the arrivals over `lanes` until the stages end or the load
/// is stopped; returns how many arrivals were dropped.
pub(super) async fn drive_arrivals(
    lanes: Vec<Lane>,
    (stages, share): (&Stages, Share),
    spec: &LoadSpec,
    origin: Instant,
    (live, stats): (&Live, &RefCell<Stats>),
) -> u64 {
    let Some(lane_count) = u64::try_from(lanes.len()).ok().filter(|&n| n > 0) else {
        return 0;
    };
    let counters: Vec<Arc<ConnectionLive>> = lanes.iter().map(|l| l.counters.clone()).collect();
    let lanes = RefCell::new(lanes);
    let users = u64::from(spec.users.max(1));
    let start = |n: u64, due: Instant| {
        let lane = usize::try_from((n / share.of) % lane_count).unwrap_or(0);
        let purchaser = {
            let mut lanes = lanes.borrow_mut();
            let lane = &mut lanes[lane];
            lane.idle.pop().unwrap_or_else(|| lane.template.clone())
        };
        let key = AttemptKey {
            user: u32::try_from(spec.first_user + n % users).unwrap_or(u32::MAX),
            seq: u32::try_from(n / users).unwrap_or(u32::MAX),
        };
        arrival(
            (lane, purchaser, &*counters[lane]),
            key,
            due,
            spec,
            origin,
            stats,
        )
    };
    let finish =
        |(lane, purchaser): (usize, Purchaser)| lanes.borrow_mut()[lane].idle.push(purchaser);
    let dropped = run_schedule(Schedule::new(stages), share, origin, live, start, finish).await;
    stats.borrow_mut().dropped += dropped;
    dropped
}

/// The open model's loop, whatever a send is: releases arrival `n` of `share` at its due
/// instant through `start` (or drops it when `share.max_in_flight` sends are unfinished),
/// hands each finished send to `finish`, and returns the number dropped once every send
/// has finished.
pub(crate) async fn run_schedule<T, Fut: Future<Output = T>>(
    mut schedule: Schedule,
    share: Share,
    origin: Instant,
    live: &Live,
    mut start: impl FnMut(u64, Instant) -> Fut,
    mut finish: impl FnMut(T),
) -> u64 {
    let mut n = share.index;
    let mut next = schedule.instant(n);
    let mut dropped = 0u64;
    let mut in_flight = FuturesUnordered::new();
    let timer = tokio::time::sleep_until(origin);
    tokio::pin!(timer);
    while let Some(due) = next {
        if !live.may_attempt() {
            break;
        }
        timer.as_mut().reset(origin + due);
        tokio::select! {
            biased;
            () = &mut timer => {
                let now = Instant::now();
                while let Some(due) = next.filter(|&d| origin + d <= now) {
                    if !live.may_attempt() {
                        break;
                    }
                    if in_flight.len() >= share.max_in_flight {
                        dropped += 1;
                    } else {
                        in_flight.push(start(n, origin + due));
                    }
                    n += share.of;
                    next = schedule.instant(n);
                }
            }
            Some(done) = in_flight.next() => finish(done),
            () = live.cancelled() => break,
        }
    }
    while let Some(done) = in_flight.next().await {
        finish(done);
    }
    dropped
}

/// One arrival's purchase: sent now, due at `intended`; gives its purchaser back.
async fn arrival(
    (lane, mut purchaser, counters): (usize, Purchaser, &ConnectionLive),
    key: AttemptKey,
    intended: Instant,
    spec: &LoadSpec,
    origin: Instant,
    stats: &RefCell<Stats>,
) -> (usize, Purchaser) {
    let user_id = format!("{}{}", spec.user_prefix, key.user);
    let quantity = spec.quantity.pick(key.user, key.seq);
    let attempt = Attempt {
        request_id: request_id(&user_id, key.seq),
        user_id,
        quantity,
        round: spec.round,
    };
    let sent = Instant::now();
    let outcome = purchaser.purchase(spec.mode, attempt, spec.timeout).await;
    let replied = Instant::now();
    let service = replied - sent;
    let response = replied.saturating_duration_since(intended);
    let outcome = outcome.judged(service, spec.timeout);
    counters.record(&outcome, quantity, response);
    let at = replied.saturating_duration_since(origin);
    stats
        .borrow_mut()
        .record_open(at, key, quantity, outcome, (service, response));
    (lane, purchaser)
}

#[cfg(test)]
#[path = "arrivals_tests.rs"]
mod tests;
