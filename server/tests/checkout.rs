//! The checkout service called directly (no network), on a paused clock: the buggy path
//! oversells, both safe strategies never do, invalid requests change nothing, the stock totals
//! agree with the order book. Rounds, the book and the per-user limit: `book.rs`.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, MemoryStore, ServerConfig, Store, Strategy};
use tokio_stream::StreamExt;
use tonic::{Code, Request};

fn service(config: &ServerConfig) -> (Arc<CheckoutService>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::from_config(config));
    let svc = Arc::new(CheckoutService::new(store.clone(), config));
    (svc, store)
}

/// The whole book of the current round, through ListOrders.
async fn list(svc: &CheckoutService) -> Vec<pb::Order> {
    let mut stream = svc
        .list_orders(Request::new(pb::ListOrdersRequest { round: 0 }))
        .await
        .unwrap()
        .into_inner();
    let mut orders = Vec::new();
    while let Some(batch) = stream.next().await {
        orders.extend(batch.unwrap().orders);
    }
    orders
}

fn purchase(user: &str, quantity: u32) -> Request<pb::PurchaseRequest> {
    Request::new(pb::PurchaseRequest {
        user_id: user.into(),
        quantity,
        ..Default::default()
    })
}

#[derive(Clone, Copy)]
enum Path {
    Buggy,
    Unstable,
    Safe,
}

/// `users` concurrent purchases on one thread with a paused clock: every task passes its
/// check before the simulated latency elapses for anyone.
async fn flash_sale(svc: &Arc<CheckoutService>, path: Path, users: usize) -> (u64, u64, u64) {
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let req = purchase(&format!("user-{u}"), 1);
                match path {
                    Path::Buggy => svc.purchase_buggy(req).await,
                    Path::Unstable => svc.purchase_unstable(req).await,
                    Path::Safe => svc.purchase_safe(req).await,
                }
            })
        })
        .collect();
    let (mut purchased, mut sold_out, mut errors) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(reply) if reply.get_ref().outcome == pb::Outcome::Purchased as i32 => purchased += 1,
            Ok(_) => sold_out += 1,
            Err(status) => {
                // Injected failures (unstable) or a serializable purchase that gave up.
                assert!(
                    matches!(status.code(), Code::Unavailable | Code::Aborted),
                    "{status:?}"
                );
                errors += 1;
            }
        }
    }
    (purchased, sold_out, errors)
}

#[tokio::test(start_paused = true)]
async fn buggy_path_oversells() {
    let (svc, store) = service(&ServerConfig::default());
    let (purchased, sold_out, _) = flash_sale(&svc, Path::Buggy, 1000).await;
    assert_eq!((purchased, sold_out), (1000, 0));
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.stock, 100 - 1000);
    assert_eq!((snap.orders, snap.units_sold), (1000, 1000));
    let book = list(&svc).await;
    assert_eq!(book.len(), 1000);
    assert_eq!(
        book.iter().map(|o| u64::from(o.quantity)).sum::<u64>(),
        1000
    );
}

#[tokio::test(start_paused = true)]
async fn safe_strategies_never_oversell() {
    for strategy in [
        Strategy::Mutex,
        Strategy::Atomic,
        Strategy::RowLock,
        Strategy::Batched,
    ] {
        let config = ServerConfig {
            strategy,
            ..ServerConfig::default()
        };
        let (svc, store) = service(&config);
        let started = tokio::time::Instant::now();
        let (purchased, sold_out, errors) = flash_sale(&svc, Path::Safe, 1000).await;
        assert_eq!((purchased, sold_out, errors), (100, 900, 0), "{strategy}");
        let snap = store.snapshot().await.unwrap();
        assert_eq!(
            (snap.stock, snap.orders, snap.units_sold),
            (0, 100, 100),
            "{strategy}"
        );
        // The locks serialise the simulated round trips; the atomic strategy overlaps them.
        let elapsed = started.elapsed();
        match strategy {
            Strategy::Mutex | Strategy::RowLock => {
                assert!(elapsed >= Duration::from_millis(100 * 10), "{elapsed:?}")
            }
            // In memory a batched purchase is a compare-and-decrement of its own.
            Strategy::Atomic | Strategy::Batched => {
                assert!(elapsed < Duration::from_millis(100), "{elapsed:?}")
            }
            Strategy::Serializable => unreachable!(),
        }
        let ids: std::collections::HashSet<_> =
            list(&svc).await.into_iter().map(|o| o.order_id).collect();
        assert_eq!(ids.len(), 100);
    }
}

/// The optimistic strategy: concurrent read-latency-write attempts conflict; each purchase is
/// retried a bounded number of times, and whatever gives up changes nothing.
#[tokio::test(start_paused = true)]
async fn serializable_retries_conflicts_and_never_oversells() {
    let config = ServerConfig {
        strategy: Strategy::Serializable,
        stock: 20,
        ..ServerConfig::default()
    };
    let (svc, store) = service(&config);
    let (purchased, sold_out, errors) = flash_sale(&svc, Path::Safe, 200).await;
    assert_eq!(purchased + sold_out + errors, 200);
    assert!(purchased > 0 && purchased <= 20, "{purchased} purchased");
    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.stock, 20 - purchased as i64);
    assert_eq!((snap.orders, snap.units_sold), (purchased, purchased));
    assert_eq!(list(&svc).await.len() as u64, purchased);
    assert!(
        svc.serializable_retries() > 0,
        "200 buyers never conflicted?"
    );
}

#[tokio::test(start_paused = true)]
async fn unstable_fails_at_the_configured_rate_before_touching_state() {
    let config = ServerConfig {
        stock: 100_000,
        failure_rate: 0.2,
        ..ServerConfig::default()
    };
    let (svc, store) = service(&config);
    let (purchased, _, errors) = flash_sale(&svc, Path::Unstable, 2000).await;
    // 2000 draws at p = 0.2: mean 400, standard deviation ~18.
    assert!((300..=500).contains(&errors), "{errors} errors");
    let snap = store.snapshot().await.unwrap();
    assert_eq!(purchased + errors, 2000);
    assert_eq!(snap.units_sold, purchased);
    assert_eq!(snap.stock, 100_000 - purchased as i64);
    assert_eq!(list(&svc).await.len() as u64, snap.orders);
}

#[tokio::test]
async fn invalid_requests_are_rejected_and_change_nothing() {
    let (svc, store) = service(&ServerConfig::default());
    let before = store.snapshot().await.unwrap();
    let long = "x".repeat(129);
    for (user, quantity, request_id, needle) in [
        ("", 1, "", "user_id is required"),
        (
            long.as_str(),
            1,
            "",
            "user_id is 129 bytes long; at most 128 bytes",
        ),
        ("u", 11, "", "exceeds the per-order maximum of 10"),
        (
            "u",
            1,
            long.as_str(),
            "request_id is 129 bytes long; at most 128 bytes",
        ),
    ] {
        let req = || {
            let mut req = purchase(user, quantity);
            req.get_mut().request_id = request_id.into();
            req
        };
        for result in [
            svc.purchase_buggy(req()).await,
            svc.purchase_unstable(req()).await,
            svc.purchase_safe(req()).await,
        ] {
            let status = result.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(status.message().contains(needle), "{}", status.message());
        }
    }
    for bad in [
        pb::ResetRequest {
            stock: Some(-1),
            safe_strategy: 0,
        },
        pb::ResetRequest {
            stock: Some(5),
            safe_strategy: 42,
        },
    ] {
        let status = svc.reset(Request::new(bad)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    assert_eq!(store.snapshot().await.unwrap(), before);
}

#[tokio::test]
async fn reset_starts_a_new_round() {
    let (svc, store) = service(&ServerConfig {
        latency: Duration::ZERO,
        ..ServerConfig::default()
    });
    svc.purchase_safe(purchase("a", 3)).await.unwrap();
    let reply = svc
        .reset(Request::new(pb::ResetRequest {
            stock: Some(7),
            safe_strategy: pb::SafeStrategy::Mutex.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.stock, reply.initial_stock, reply.orders, reply.round),
        (7, 7, 0, 2)
    );
    assert_eq!(reply.safe_strategy, pb::SafeStrategy::Mutex as i32);
    assert_eq!(store.strategy(), Strategy::Mutex);
    // No stock given: the configured initial stock; no strategy named: the configured one
    // (atomic), not the previous round's mutex.
    let reply = svc
        .reset(Request::new(pb::ResetRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.stock, 100);
    assert_eq!(reply.safe_strategy, pb::SafeStrategy::Atomic as i32);
    assert_eq!(store.strategy(), Strategy::Atomic);
    let reply = svc
        .purchase_safe(purchase("b", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.quantity, reply.stock_after), (1, 99));
    assert_eq!(reply.order_id, "r3-1");
}

/// The server's `--strategy` applies from its start and to every round whose Reset names none;
/// the start-up log says the same as GetStock.
#[tokio::test]
async fn the_configured_strategy_applies_unless_a_reset_names_one() {
    let config = ServerConfig {
        strategy: Strategy::RowLock,
        ..ServerConfig::default()
    };
    let (svc, _) = service(&config);
    let strategy = |reply: pb::StockReply| Strategy::from_wire(reply.safe_strategy).unwrap();
    let stock = svc
        .get_stock(Request::new(pb::GetStockRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(strategy(stock), Some(Strategy::RowLock));
    let reset = |named: Option<Strategy>| pb::ResetRequest {
        stock: None,
        safe_strategy: Strategy::to_wire(named),
    };
    let reply = svc.reset(Request::new(reset(Some(Strategy::Mutex)))).await;
    assert_eq!(strategy(reply.unwrap().into_inner()), Some(Strategy::Mutex));
    let reply = svc.reset(Request::new(reset(None))).await;
    assert_eq!(
        strategy(reply.unwrap().into_inner()),
        Some(Strategy::RowLock)
    );
}
