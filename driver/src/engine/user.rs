//! The virtual users of one connection: each buys once (a burst) or back to back until the
//! run's end, and records every attempt into its load thread's [`Stats`].

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use crate::checkout::CheckoutChannel;
use crate::engine::history::AttemptKey;
use crate::engine::live::{ConnectionLive, Live};
use crate::engine::outcome::Outcome;
use crate::engine::stats::Stats;
use crate::spec::ids::request_id;
use crate::spec::{LoadSpec, Mode};

/// All users of one connection, polled by one task; they record into their thread's `Stats`.
pub(super) async fn drive_connection(
    channel: CheckoutChannel,
    users: Vec<u64>,
    spec: &LoadSpec,
    window: (Instant, Option<Instant>),
    (counters, live): (Arc<ConnectionLive>, &Live),
    stats: &RefCell<Stats>,
) {
    let client = CheckoutClient::new(channel);
    let clicks = spec.clicks.max(1);
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
                client.clone(),
                buyer,
                spec,
                window,
                (stats, &counters, live),
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
    mut client: CheckoutClient<CheckoutChannel>,
    buyer: Buyer,
    spec: &LoadSpec,
    (origin, deadline): (Instant, Option<Instant>),
    (stats, counters, live): (&RefCell<Stats>, &ConnectionLive, &Live),
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
        let request = pb::PurchaseRequest {
            user_id: buyer.user_id.clone(),
            quantity,
            request_id: request_id(&buyer.user_id, seq),
            round: spec.round,
        };
        let started = Instant::now();
        let outcome = purchase(&mut client, spec.mode, request, spec.timeout).await;
        let latency = started.elapsed();
        counters.record(&outcome, quantity, latency);
        stats
            .borrow_mut()
            .record_at(origin.elapsed(), key, quantity, outcome, latency);
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

/// Longest deadline sent in the `grpc-timeout` header: 99 999 999 s (over 3 years).
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// One purchase call and what it came to.
pub async fn purchase(
    client: &mut CheckoutClient<CheckoutChannel>,
    mode: Mode,
    request: pb::PurchaseRequest,
    timeout: Duration,
) -> Outcome {
    let quantity = request.quantity;
    let mut request = tonic::Request::new(request);
    // The `grpc-timeout` header holds at most 8 digits (tonic panics beyond 99 999 999 hours);
    // any longer deadline is "none" in practice, and the client's own timeout below still
    // applies in full.
    request.set_timeout(timeout.min(MAX_HEADER_TIMEOUT));
    let call = async {
        match mode {
            Mode::Buggy => client.purchase_buggy(request).await,
            Mode::Unstable => client.purchase_unstable(request).await,
            Mode::Safe => client.purchase_safe(request).await,
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Outcome::Timeout,
        Ok(Err(status)) => Outcome::Status(status.code()),
        Ok(Ok(reply)) => classify(reply.into_inner(), quantity),
    }
}

fn classify(reply: pb::PurchaseReply, quantity: u32) -> Outcome {
    // A reply that accounts for other units than were asked for breaks the contract.
    if reply.quantity != 0 && reply.quantity != quantity {
        return Outcome::BadReply;
    }
    match pb::Outcome::try_from(reply.outcome) {
        Ok(pb::Outcome::Purchased) => Outcome::Purchased {
            order_id: reply.order_id,
            quantity,
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::SoldOut) => Outcome::SoldOut {
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::LimitReached) => Outcome::LimitReached {
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::Unspecified) | Err(_) => Outcome::BadReply,
    }
}
