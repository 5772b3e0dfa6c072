//! The virtual users of one connection: each buys once (a burst) or back to back until the
//! run's end, and records every attempt into its load thread's [`Stats`].

use std::cell::RefCell;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::checkout::retry::{self, Throttle};
use crate::checkout::{Attempt, Purchaser};
use crate::engine::history::AttemptKey;
use crate::engine::live::{ConnectionLive, Live};
use crate::engine::stats::Stats;
use crate::spec::LoadSpec;
use crate::spec::ids::request_id;

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
        .filter_map(|u| u32::try_from(spec.first_user + u).ok())
        .flat_map(|user| (0..clicks).map(move |click| (user, click)))
        .map(|(user, click)| {
            let buyer = Buyer {
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
        if !live.may_attempt() {
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
