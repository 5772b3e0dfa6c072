//! One rule for where the safe strategy comes from, on a database shared by replicas: a server
//! starting switches the current round to its `--strategy` (a strategy an earlier Reset chose
//! does not outlive a restart), a Reset that names a strategy uses it for its round, and one that
//! names none uses the server's. A sharded `atomic` round switched to another strategy gets its
//! stock back in the sale row.

use std::sync::Arc;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, Strategy};
use tonic::Request;

use crate::shards::{open_sharded, shards};
use crate::support::{Tally, cluster, config, connect, fresh_database, req, rush, service};

async fn stock(svc: &CheckoutService) -> pb::StockReply {
    svc.get_stock(Request::new(pb::GetStockRequest {}))
        .await
        .unwrap()
        .into_inner()
}

async fn reset(svc: &CheckoutService, strategy: Option<Strategy>) -> pb::StockReply {
    let request = pb::ResetRequest {
        stock: Some(100),
        safe_strategy: Strategy::to_wire(strategy),
    };
    svc.reset(Request::new(request)).await.unwrap().into_inner()
}

fn strategy(reply: &pb::StockReply) -> Option<Strategy> {
    Strategy::from_wire(reply.safe_strategy).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_restart_applies_the_servers_strategy_and_a_reset_names_its_own() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let first = service(&url, &config(100, Strategy::Atomic, 0, 0)).await;
    // A run with --strategy mutex: its Reset names mutex for its round.
    assert_eq!(
        strategy(&reset(&first, Some(Strategy::Mutex)).await),
        Some(Strategy::Mutex)
    );
    // A Reset that names none: the server's own (atomic), not the previous round's.
    assert_eq!(strategy(&reset(&first, None).await), Some(Strategy::Atomic));
    reset(&first, Some(Strategy::Mutex)).await;
    let round = stock(&first).await.round;

    // The replicas restart with FLASHSALE_STRATEGY=row-lock: the current round switches to it
    // (no new round: a starting replica does not reset the sale), for every replica.
    let restarted = service(&url, &config(100, Strategy::RowLock, 0, 0)).await;
    let now = stock(&restarted).await;
    assert_eq!(
        (strategy(&now), now.round),
        (Some(Strategy::RowLock), round)
    );
    assert_eq!(strategy(&stock(&first).await), Some(Strategy::RowLock));
    assert_eq!(
        strategy(&reset(&restarted, None).await),
        Some(Strategy::RowLock)
    );
    assert_eq!(
        strategy(&reset(&restarted, Some(Strategy::Serializable)).await),
        Some(Strategy::Serializable)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_sharded_round_switched_to_another_strategy_keeps_its_stock() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let atomic = config(100, Strategy::Atomic, 0, 0);
    let store = open_sharded(&url, &atomic, 4).await;
    let sharded = Arc::new(CheckoutService::new(Arc::new(store), &atomic));
    let tally = rush(&sharded, false, 10, |i| format!("u{i}")).await;
    assert_eq!(tally.purchased, 10);
    let db = connect(&url).await;
    assert_eq!(shards(&db).await.iter().sum::<i64>(), 90);

    let row_lock = config(100, Strategy::RowLock, 0, 0);
    let restarted = service(&url, &row_lock).await;
    let now = stock(&restarted).await;
    assert_eq!((strategy(&now), now.stock), (Some(Strategy::RowLock), 90));
    assert!(
        shards(&db).await.is_empty(),
        "the shards' stock is back in the sale row"
    );
    // The switched round sells out exactly, with its orders before and after in one book.
    let mut tally = Tally::default();
    let buyers: Vec<_> = (0..100)
        .map(|i| {
            let svc = restarted.clone();
            tokio::spawn(async move {
                let request = Request::new(req(&format!("v{i}"), &format!("after-{i}")));
                svc.purchase_safe(request)
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    for buyer in buyers {
        tally.add(buyer.await.unwrap());
    }
    assert_eq!((tally.purchased, tally.sold_out), (90, 10));
    let audit = crate::support::audit(&restarted).await;
    assert!(audit.reconciles() && !audit.oversold(), "{audit:?}");
    assert_eq!((audit.stock.units_sold, audit.stock.stock), (100, 0));
}
