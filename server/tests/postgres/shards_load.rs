//! Stock shards under load: 3 replicas on 8 shards sell exactly the stock, never more, never
//! less; without the spread path (the `NoSpread` fault) stock is left unsold, which the same
//! audit catches.

use std::sync::Arc;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::store::postgres::ShardFault;
use flashsale_server::{CheckoutService, Strategy};
use tonic::Request;

use crate::shards::{open_sharded, shards};
use crate::support::{Audit, audit, cluster, config, connect, fresh_database};

/// `n` concurrent safe purchases of `quantity(i)` units spread over `replicas`.
async fn wave(
    replicas: &[Arc<CheckoutService>],
    tag: &str,
    n: usize,
    quantity: fn(usize) -> u32,
) -> (u64, Vec<(u32, i64)>) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let svc = replicas[i % replicas.len()].clone();
            let request = pb::PurchaseRequest {
                user_id: format!("{tag}u{i}"),
                quantity: quantity(i),
                request_id: format!("{tag}q{i}"),
                round: 0,
            };
            tokio::spawn(async move {
                let quantity = request.quantity;
                let reply = svc.purchase_safe(Request::new(request)).await;
                (quantity, reply.map(tonic::Response::into_inner))
            })
        })
        .collect();
    let (mut bought, mut refused) = (0u64, Vec::new());
    for task in tasks {
        let (quantity, reply) = task.await.unwrap();
        let reply = reply.expect("no purchase may fail");
        match pb::Outcome::try_from(reply.outcome) {
            Ok(pb::Outcome::Purchased) => bought += u64::from(quantity),
            Ok(pb::Outcome::SoldOut) => refused.push((quantity, reply.stock_after)),
            other => panic!("{other:?}: {reply:?}"),
        }
    }
    (bought, refused)
}

/// Refusals for stock that saw enough stock in the round to cover them: unsold stock.
fn wrongly_refused(refused: &[(u32, i64)]) -> Vec<(u32, i64)> {
    refused
        .iter()
        .copied()
        .filter(|&(quantity, seen)| seen >= i64::from(quantity))
        .collect()
}

/// 3 replicas (each its own pool) on one database, stock split over 8 shards (13, 13, 13, 13,
/// 12, 12, 12, 12).
async fn replicas_on_eight_shards(url: &str, fault: ShardFault) -> Vec<Arc<CheckoutService>> {
    let config = config(100, Strategy::Atomic, 0, 0);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let store = open_sharded(url, &config, 8).await.with_fault(fault);
        replicas.push(Arc::new(CheckoutService::new(Arc::new(store), &config)));
    }
    replicas
}

fn mixed(i: usize) -> u32 {
    u32::try_from(1 + i % 3).unwrap_or(1)
}

fn threes(_: usize) -> u32 {
    3
}

/// 3 replicas on 8 shards, 100 units: 400 concurrent buyers of 1..=3 units, then (after a Reset
/// to 100) 300 concurrent buyers of 3 units, which always leave 1 unit in each shard of 13 that
/// only an order taken across shards can sell. Every refusal for stock must have seen less than
/// its quantity in the whole round, one buyer of single units per replica sells what is left,
/// and the units sold, the book and the shards then agree exactly: 100 sold, every shard at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn three_replicas_on_eight_shards_sell_exactly_the_stock() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let replicas = replicas_on_eight_shards(&url, ShardFault::None).await;
    let db = connect(&url).await;
    for (tag, n, quantity) in [("m", 400, mixed as fn(usize) -> u32), ("t", 300, threes)] {
        if tag == "t" {
            replicas[2]
                .reset(Request::new(pb::ResetRequest {
                    stock: Some(100),
                    safe_strategy: 0,
                }))
                .await
                .unwrap();
        }
        assert_eq!(shards(&db).await, [13, 13, 13, 13, 12, 12, 12, 12]);
        let (bought, refused) = wave(&replicas, tag, n, quantity).await;
        assert_eq!(wrongly_refused(&refused), [], "{tag}: stock left unsold");
        // Single units drain whatever the multi-unit refusals left (at most 2 units).
        let mut tail = 0;
        for (i, replica) in replicas.iter().enumerate() {
            let reply = replica
                .purchase_safe(Request::new(crate::support::req(&format!("{tag}t{i}"), "")))
                .await
                .unwrap()
                .into_inner();
            if reply.outcome == pb::Outcome::Purchased as i32 {
                tail += 1;
            }
        }
        let audit: Audit = audit(&replicas[1]).await;
        assert_eq!(bought + tail, 100, "{tag}: {} refusals", refused.len());
        assert_eq!(
            (audit.stock.units_sold, audit.stock.stock),
            (100, 0),
            "{tag}"
        );
        assert!(audit.reconciles() && !audit.oversold(), "{tag}: {audit:?}");
        assert_eq!(
            shards(&db).await,
            [0; 8],
            "{tag}: every shard emptied, none negative"
        );
    }
}

/// The fault double: without the spread path the same 3-unit buyers are refused while 4 units
/// sit in 4 shards (1 each), and those units are never sold: what the test above catches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn without_the_spread_path_stock_is_left_unsold() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let replicas = replicas_on_eight_shards(&url, ShardFault::NoSpread).await;
    let (bought, refused) = wave(&replicas, "t", 300, threes).await;
    let wrong = wrongly_refused(&refused);
    assert!(
        wrong.iter().any(|&(_, seen)| seen == 4),
        "the fault left no stock unsold? {wrong:?}"
    );
    assert_eq!(bought, 96);
    let db = connect(&url).await;
    assert_eq!(shards(&db).await, [1, 1, 1, 1, 0, 0, 0, 0]);
}
