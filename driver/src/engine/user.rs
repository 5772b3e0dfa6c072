//! The virtual users of one connection: each buys once (a burst) or back to back until the
//! run's end, and records every attempt into its load thread's [`Stats`]. With ramping users
//! ([`Shape::Vus`]) user `i` buys only while the stages' target is above `i` (it joins when
//! the ramp reaches `i + 1` and leaves after its current purchase when the target falls to
//! `i`), pausing the think time between purchases.

use std::cell::RefCell;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::checkout::retry::{self, Throttle};
use crate::checkout::{Attempt, Purchaser};
use crate::engine::history::AttemptKey;
use crate::engine::live::{ConnectionLive, Live};
use crate::engine::stats::Stats;
use crate::spec::ids::request_id;
use crate::spec::{LoadSpec, Shape};

/// All users of one connection, polled by one task; they record into their thread's `Stats`.
pub(super) async fn drive_connection(
    purchaser: Purchaser,
    users: Vec<u64>,
    spec: &LoadSpec,
    window: (Instant, Option<Instant>),
    (counters, live): (Arc<ConnectionLive>, &Live),
    stats: &RefCell<Stats>,
) {
    let clicks = spec.clicks.max(1);
    // The connection's retry budget, as gRPC keeps one per channel.
    let throttle = Throttle::new(spec.retry.budget);
    let throttle = &throttle;
    let mut buyers: FuturesUnordered<_> = users
        .into_iter()
        .filter_map(|u| {
            Some((
                u32::try_from(u).ok()?,
                u32::try_from(spec.first_user + u).ok()?,
            ))
        })
        .flat_map(|(index, user)| (0..clicks).map(move |click| (index, user, click)))
        .map(|(index, user, click)| {
            let buyer = Buyer {
                index,
                user,
                user_id: format!("{}{user}", spec.user_prefix),
                click,
                clicks,
            };
            virtual_user(
                purchaser.clone(),
                buyer,
                spec,
                window,
                (stats, &counters, live, throttle),
            )
        })
        .collect();
    while buyers.next().await.is_some() {}
}

/// One of a user's concurrent clicks: its attempts are numbered `click`, `click + clicks`, ...
struct Buyer {
    /// The user's place in this process's share (which ramped user it is).
    index: u32,
    user: u32,
    user_id: String,
    click: u32,
    clicks: u32,
}

/// One buyer: a single attempt in a burst, or back-to-back attempts until `deadline`; none
/// once the load is stopped or past its cut-off ([`Live::may_attempt`], checked before each).
async fn virtual_user(
    mut purchaser: Purchaser,
    buyer: Buyer,
    spec: &LoadSpec,
    (origin, deadline): (Instant, Option<Instant>),
    (stats, counters, live, throttle): (&RefCell<Stats>, &ConnectionLive, &Live, &Throttle),
) {
    let mut seq = buyer.click;
    loop {
        if !live.may_attempt() || !ramp_allows(&buyer, spec, origin, live).await {
            break;
        }
        let key = AttemptKey {
            user: buyer.user,
            seq,
        };
        let quantity = spec.quantity.pick(buyer.user, seq);
        let attempt = Attempt {
            user_id: buyer.user_id.clone(),
            quantity,
            request_id: request_id(&buyer.user_id, seq),
            round: spec.round,
        };
        let started = Instant::now();
        let retrying = (&spec.retry, throttle);
        let tried = retry::purchase(&mut purchaser, spec.mode, attempt, spec.timeout, retrying);
        let tried = tried.await;
        let latency = started.elapsed();
        counters.record(&tried.outcome, quantity, latency);
        stats
            .borrow_mut()
            .record_tried(origin.elapsed(), key, quantity, tried, latency);
        if let Shape::Vus { think, .. } = &spec.shape
            && !think.max.is_zero()
        {
            tokio::select! {
                () = tokio::time::sleep(think.pick(buyer.user, seq)) => {}
                () = live.cancelled() => break,
            }
        }
        let Some(next) = seq.checked_add(buyer.clicks) else {
            break;
        };
        seq = next;
        match deadline {
            Some(deadline) if Instant::now() < deadline && !live.stopped() => continue,
            _ => break,
        }
    }
}

/// With ramping users: waits until `buyer` is active (the stages' target above its index);
/// `false` when it never will be again before the end, or the load is stopped meanwhile.
/// Always `true` for the other shapes.
async fn ramp_allows(buyer: &Buyer, spec: &LoadSpec, origin: Instant, live: &Live) -> bool {
    let Shape::Vus { stages, .. } = &spec.shape else {
        return true;
    };
    let level = f64::from(buyer.index) + 1.0;
    let Some(at) = stages.next_at_least(level, origin.elapsed()) else {
        return false;
    };
    if origin + at > Instant::now() {
        tokio::select! {
            () = tokio::time::sleep_until(origin + at) => {}
            () = live.cancelled() => return false,
        }
    }
    live.may_attempt()
}
