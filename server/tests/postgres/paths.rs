//! Every purchase path on PostgreSQL, one server process: the buggy path oversells, the safe
//! strategies never do and the book reconciles exactly, the per-user limit holds on the safe
//! paths, Reset starts a round atomically, a retried request id places one order.

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::Strategy;
use tonic::{Code, Request};

use crate::support::{audit, cluster, config, fresh_database, list, req, rush, service};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn buggy_oversells_with_concurrent_purchases() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    // 40 buyers read the stock within the 100 ms latency of the first write: each of them
    // writes back "what I read - 1" and records its order.
    let svc = service(&url, &config(10, Strategy::Atomic, 100, 0)).await;
    let tally = rush(&svc, true, 40, |i| format!("u{i}")).await;
    let audit = audit(&svc).await;
    assert_eq!(tally.purchased, 40, "{tally:?}");
    assert!(audit.oversold(), "{audit:?}");
    // Lost updates: the stock went down by far less than the units the book holds.
    assert_eq!(audit.stock.units_sold, 40);
    assert_eq!(audit.listed_units(), 40);
    assert!(
        audit.stock.stock >= 0,
        "write-back loses updates, it does not go negative"
    );
    assert!(!audit.reconciles(), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn safe_strategies_never_oversell_and_the_book_reconciles() {
    let cluster = cluster();
    for strategy in [
        Strategy::Atomic,
        Strategy::RowLock,
        Strategy::Serializable,
        Strategy::Mutex,
    ] {
        let url = fresh_database(&cluster).await;
        let svc = service(&url, &config(10, strategy, 5, 0)).await;
        let tally = rush(&svc, false, 60, |i| format!("u{i}")).await;
        let audit = audit(&svc).await;
        assert!(!audit.oversold(), "{strategy}: {audit:?}");
        assert!(audit.reconciles(), "{strategy}: {audit:?}");
        assert_eq!(
            audit.stock.units_sold, tally.purchased,
            "{strategy}: {tally:?}"
        );
        assert_eq!(
            tally.purchased + tally.sold_out + tally.errors,
            60,
            "{strategy}"
        );
        match strategy {
            // Give-ups are allowed only where conflicts are retried; 60 buyers conflict.
            Strategy::Serializable => {
                assert!(tally.purchased > 0, "{tally:?}");
                assert!(svc.serializable_retries() > 0, "no serialization failure?");
            }
            _ => assert_eq!((tally.purchased, tally.errors), (10, 0), "{strategy}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn the_per_user_limit_holds_on_the_safe_paths_and_buggy_races_past_it() {
    let cluster = cluster();
    for strategy in [
        Strategy::Atomic,
        Strategy::RowLock,
        Strategy::Serializable,
        Strategy::Mutex,
    ] {
        let url = fresh_database(&cluster).await;
        let svc = service(&url, &config(1000, strategy, 5, 2)).await;
        let tally = rush(&svc, false, 20, |_| "greedy".into()).await;
        let audit = audit(&svc).await;
        assert!(audit.reconciles(), "{strategy}: {audit:?}");
        assert!(tally.purchased <= 2, "{strategy}: {tally:?}");
        assert_eq!(audit.stock.units_sold, tally.purchased, "{strategy}");
        if strategy != Strategy::Serializable {
            assert_eq!((tally.purchased, tally.limited), (2, 18), "{strategy}");
        }
        // Another customer is not affected.
        let reply = svc
            .purchase_safe(Request::new(req("other", "")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.outcome, pb::Outcome::Purchased as i32, "{strategy}");
    }
    // The control: the buggy path reads the customer's total before anyone adds to it. Every
    // read must come before the first write: the 20 purchases open their pooled connections
    // lazily (a backend each), which on a loaded machine spread their reads over more than
    // 50 ms (CI measured 16 of 20 racing past at 50 ms), so the window is 1 s.
    let url = fresh_database(&cluster).await;
    let svc = service(&url, &config(1000, Strategy::Atomic, 1000, 2)).await;
    let tally = rush(&svc, true, 20, |_| "greedy".into()).await;
    assert_eq!(tally.purchased, 20, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn reset_starts_a_round_and_a_retried_request_id_places_one_order() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let svc = service(&url, &config(5, Strategy::Atomic, 0, 0)).await;
    let buy = |request_id: &'static str| {
        let svc = svc.clone();
        async move {
            svc.purchase_safe(Request::new(req("a", request_id)))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = buy("same").await;
    let again = buy("same").await;
    assert_eq!(first.outcome, pb::Outcome::Purchased as i32);
    assert_eq!(
        again.order_id, first.order_id,
        "a retry gets its order back"
    );
    buy("other").await;
    let before = audit(&svc).await;
    assert_eq!((before.stock.stock, before.stock.orders), (3, 2));
    assert!(before.reconciles(), "{before:?}");

    let fresh = svc
        .reset(Request::new(pb::ResetRequest {
            stock: Some(9),
            safe_strategy: pb::SafeStrategy::Mutex.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (fresh.round, fresh.stock, fresh.orders, fresh.units_sold),
        (2, 9, 0, 0)
    );
    assert_eq!(fresh.safe_strategy, pb::SafeStrategy::Mutex as i32);
    assert!(list(&svc, 0).await.unwrap().is_empty());
    assert_eq!(
        list(&svc, 1).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // The same request id in the new round is a new order.
    let next = buy("same").await;
    assert_eq!(next.round, 2);
    assert_ne!(next.order_id, first.order_id);
    // A purchase naming the old round changes nothing.
    let stale = svc
        .purchase_safe(Request::new(pb::PurchaseRequest {
            round: 1,
            ..req("a", "late")
        }))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    let audit = audit(&svc).await;
    assert_eq!((audit.stock.stock, audit.stock.orders), (8, 1));
    assert!(audit.reconciles(), "{audit:?}");
}

/// `n` safe purchases of one unit, 16 at a time, with request ids `{tag}{i}`.
async fn buy_many(
    svc: &std::sync::Arc<flashsale_server::CheckoutService>,
    tag: &'static str,
    n: usize,
) {
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for i in (t..n).step_by(16) {
                    let reply = svc
                        .purchase_safe(Request::new(req(
                            &format!("u{}", i % 97),
                            &format!("{tag}{i}"),
                        )))
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(reply.outcome, pb::Outcome::Purchased as i32);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn list_orders_pages_one_snapshot_and_honours_the_book_cap() {
    let cluster = cluster();
    // A book larger than one batch, listed while purchases go on: the listing is the book as
    // it was when the listing began, in order, in batches of at most 1024.
    let url = fresh_database(&cluster).await;
    let svc = service(&url, &config(10_000, Strategy::Atomic, 0, 0)).await;
    buy_many(&svc, "a", 2100).await;
    let mut stream = svc
        .list_orders(Request::new(pb::ListOrdersRequest { round: 0 }))
        .await
        .unwrap()
        .into_inner();
    let first = tokio_stream::StreamExt::next(&mut stream)
        .await
        .unwrap()
        .unwrap();
    buy_many(&svc, "b", 50).await;
    let mut listed = first.orders.clone();
    let mut sizes = vec![first.orders.len()];
    while let Some(batch) = tokio_stream::StreamExt::next(&mut stream).await {
        let batch = batch.unwrap();
        sizes.push(batch.orders.len());
        listed.extend(batch.orders);
    }
    assert_eq!(listed.len(), 2100, "batches {sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 1024), "{sizes:?}");
    let seqs: Vec<u64> = listed
        .iter()
        .map(|o| o.order_id.rsplit_once('-').unwrap().1.parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "not in order");
    // A listing abandoned half way leaves the pool usable.
    for _ in 0..40 {
        let mut stream = svc
            .list_orders(Request::new(pb::ListOrdersRequest { round: 0 }))
            .await
            .unwrap()
            .into_inner();
        tokio_stream::StreamExt::next(&mut stream)
            .await
            .unwrap()
            .unwrap();
    }
    let whole = audit(&svc).await;
    assert_eq!(whole.listed.len(), 2150);
    assert!(whole.reconciles(), "{whole:?}");

    // The cap: orders past it are placed and counted, not listed.
    let url = fresh_database(&cluster).await;
    let capped = flashsale_server::ServerConfig {
        book_cap: 30,
        ..config(100, Strategy::Atomic, 0, 0)
    };
    let svc = service(&url, &capped).await;
    buy_many(&svc, "c", 45).await;
    let audit = audit(&svc).await;
    assert_eq!(
        (
            audit.stock.orders,
            audit.stock.book_cap,
            audit.stock.book_overflow
        ),
        (45, 30, 15)
    );
    assert_eq!(audit.listed.len(), 30);
    assert_eq!(audit.stock.stock, 55);
}

/// Row-lock purchases hold the stock row across their latency; a Reset queues behind the one
/// holding it, and everything queued behind the Reset finds round 1 ended: nothing of round 1
/// reaches round 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_reset_during_row_lock_purchases_leaks_nothing_into_the_new_round() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let svc = service(&url, &config(1000, Strategy::RowLock, 300, 0)).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.purchase_safe(Request::new(req(&format!("u{i}"), &format!("q{i}"))))
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    // Wait (bounded) until one purchase holds the row lock in its latency.
    let db = crate::support::connect(&url).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let holding: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'idle in transaction'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if holding > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no purchase took the row lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let fresh = svc
        .reset(Request::new(pb::ResetRequest {
            stock: Some(7),
            safe_strategy: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((fresh.round, fresh.stock, fresh.orders), (2, 7, 0));
    let (mut placed, mut ended) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(reply) => {
                // Only the purchase that held the lock before the Reset: placed in round 1.
                assert_eq!(
                    (reply.outcome, reply.round),
                    (pb::Outcome::Purchased as i32, 1)
                );
                placed += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Aborted, "{status:?}");
                assert!(status.message().contains("round 1 ended"), "{status:?}");
                ended += 1;
            }
        }
    }
    assert!(
        placed >= 1 && placed + ended == 10,
        "{placed} placed, {ended} ended"
    );
    let after = audit(&svc).await;
    assert_eq!(
        (after.stock.round, after.stock.stock, after.stock.orders),
        (2, 7, 0),
        "{after:?}"
    );
    assert!(after.listed.is_empty());
}
