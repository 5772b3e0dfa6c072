//! The safe path runs on a guess of the strategy (`Store::take_if_atomic`: the strategy and
//! the round checked inside the statement that takes the stock). The guess must never be
//! trusted: a strategy switched by another replica, a round the client names, a request id
//! replayed (also concurrently), the per-user limit. The same contract on the memory store.

use std::sync::Arc;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::store::{Order, Purchase, StoreError};
use flashsale_server::{MemoryStore, Store, Strategy};
use tonic::Request;

use crate::support::{audit, cluster, config, fresh_database, open, req, rush, service};

fn order<'a>(request_id: &'a str, quantity: u32, round: u64) -> Order<'a> {
    Order {
        user: "a",
        quantity,
        request_id,
        round,
    }
}

fn receipt(purchase: Purchase) -> flashsale_server::store::Receipt {
    match purchase {
        Purchase::Purchased(receipt) => receipt,
        other => panic!("not purchased: {other:?}"),
    }
}

/// `store` and `other` (another replica on the same stock, or the same store) start round 1
/// with 5 units and the atomic strategy, no per-user limit. `replays`: the store keeps one
/// order per request id (PostgreSQL; the memory store books every call).
async fn take_if_atomic_contract(store: &dyn Store, other: &dyn Store, replays: bool) {
    let first = receipt(
        store
            .take_if_atomic(order("x", 1, 0))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!((first.round, first.stock_after), (1, 4));
    if replays {
        // A replay gets the same order back and takes nothing.
        let again = receipt(
            store
                .take_if_atomic(order("x", 1, 1))
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(again.order_id, first.order_id);
        assert_eq!(store.snapshot().await.unwrap().stock, 4);
    }
    // A round that is not the current one, not enough stock: nothing changes.
    match store.take_if_atomic(order("y", 1, 7)).await {
        Err(StoreError::RoundMismatch {
            requested: 7,
            current: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.take_if_atomic(order("z", 5, 0)).await.unwrap(),
        Some(Purchase::SoldOut { stock: 4, round: 1 })
    );
    // Another strategy (set through the other replica): `None`, and nothing changed.
    other.reset(5, Some(Strategy::Mutex)).await.unwrap();
    assert_eq!(store.take_if_atomic(order("w", 1, 0)).await.unwrap(), None);
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.round, snapshot.stock, snapshot.orders), (2, 5, 0));
    other.reset(3, Some(Strategy::Atomic)).await.unwrap();
    let next = receipt(
        store
            .take_if_atomic(order("x", 2, 0))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!((next.round, next.stock_after), (3, 1));
    assert_ne!(next.order_id, first.order_id);
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        (snapshot.stock, snapshot.orders, snapshot.units_sold),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn take_if_atomic_checks_strategy_round_and_stock_in_memory() {
    let store = MemoryStore::new(
        5,
        Strategy::Atomic,
        config(5, Strategy::Atomic, 0, 0).policy(),
    );
    take_if_atomic_contract(&store, &store, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn take_if_atomic_checks_strategy_round_and_stock_on_postgres() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let config = config(5, Strategy::Atomic, 0, 0);
    let (store, other) = (open(&url, &config).await, open(&url, &config).await);
    take_if_atomic_contract(&store, &other, true).await;
}

/// 20 concurrent purchases with one request id, with and without a per-user limit: one order,
/// every caller gets its id, one unit taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_request_id_sent_concurrently_places_one_order() {
    let cluster = cluster();
    for limit in [0, 5] {
        let url = fresh_database(&cluster).await;
        let store = Arc::new(open(&url, &config(100, Strategy::Atomic, 0, limit)).await);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.take_if_atomic(order("same", 1, 0)).await })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for task in tasks {
            ids.insert(receipt(task.await.unwrap().unwrap().unwrap()).order_id);
        }
        assert_eq!(ids.len(), 1, "limit {limit}: {ids:?}");
        let snapshot = store.snapshot().await.unwrap();
        assert_eq!(
            (snapshot.stock, snapshot.orders, snapshot.units_sold),
            (99, 1, 1),
            "limit {limit}"
        );
    }
}

/// A replica whose purchases run on the atomic guess, while another replica switches the
/// strategy: its next purchases take the new strategy's path (serializable: they are retried
/// on conflicts, which only that path does), and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_strategy_switched_by_another_replica_is_followed() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    // No latency: the guess is used only then (with one, every purchase reads the round).
    let config = config(1000, Strategy::Atomic, 0, 0);
    let (a, b) = (service(&url, &config).await, service(&url, &config).await);
    let warm = rush(&a, false, 10, |i| format!("w{i}")).await;
    assert_eq!(warm.purchased, 10, "{warm:?}");
    assert_eq!(a.serializable_retries(), 0);

    let switched = b
        .reset(Request::new(pb::ResetRequest {
            stock: Some(1000),
            safe_strategy: pb::SafeStrategy::Serializable.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(switched.round, 2);
    let tally = rush(&a, false, 60, |i| format!("s{i}")).await;
    assert!(tally.purchased > 0, "{tally:?}");
    assert!(
        a.serializable_retries() > 0,
        "replica a kept its atomic guess: {tally:?}"
    );
    let after = audit(&a).await;
    assert!(after.reconciles() && !after.oversold(), "{after:?}");
    assert_eq!(after.stock.units_sold, tally.purchased);

    b.reset(Request::new(pb::ResetRequest {
        stock: Some(10),
        safe_strategy: pb::SafeStrategy::Atomic.into(),
    }))
    .await
    .unwrap();
    let retries = a.serializable_retries();
    let tally = rush(&a, false, 30, |i| format!("t{i}")).await;
    assert_eq!((tally.purchased, tally.sold_out, tally.errors), (10, 20, 0));
    assert_eq!(a.serializable_retries(), retries);
    let reply = a
        .purchase_safe(Request::new(req("late", "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.outcome, reply.round),
        (pb::Outcome::SoldOut as i32, 3)
    );
    let after = audit(&a).await;
    assert!(after.reconciles() && !after.oversold(), "{after:?}");
}
