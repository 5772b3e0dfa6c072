//! Rounds, the order book and the per-user limit, through the checkout service called directly
//! (no network), on a paused clock where the simulated latency matters: stale rounds are
//! refused and change nothing, a Reset during in-flight purchases leaks nothing into the new
//! round, ListOrders lists the book in sequence order in bounded batches, the book cap's
//! overflow is counted, and the per-user limit is raced past by the buggy path only.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, MemoryStore, ServerConfig, Store, Strategy};
use tokio_stream::StreamExt;
use tonic::{Code, Request, Status};

fn service(config: &ServerConfig) -> (Arc<CheckoutService>, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::from_config(config));
    let svc = Arc::new(CheckoutService::new(store.clone(), config));
    (svc, store)
}

fn req(user: &str, quantity: u32, request_id: &str, round: u64) -> pb::PurchaseRequest {
    pb::PurchaseRequest {
        user_id: user.into(),
        quantity,
        request_id: request_id.into(),
        round,
    }
}

/// Every purchase path, the safe one once per strategy.
#[derive(Debug, Clone, Copy)]
enum Path {
    Buggy,
    Unstable,
    Mutex,
    Atomic,
    RowLock,
    Serializable,
}

const PATHS: [Path; 6] = [
    Path::Buggy,
    Path::Unstable,
    Path::Mutex,
    Path::Atomic,
    Path::RowLock,
    Path::Serializable,
];

impl Path {
    /// `base` with this path's strategy and no injected failures.
    fn config(self, base: ServerConfig) -> ServerConfig {
        ServerConfig {
            strategy: match self {
                Path::Mutex => Strategy::Mutex,
                Path::RowLock => Strategy::RowLock,
                Path::Serializable => Strategy::Serializable,
                _ => Strategy::Atomic,
            },
            failure_rate: 0.0,
            ..base
        }
    }

    async fn call(
        self,
        svc: &CheckoutService,
        req: pb::PurchaseRequest,
    ) -> Result<pb::PurchaseReply, Status> {
        let req = Request::new(req);
        let reply = match self {
            Path::Buggy => svc.purchase_buggy(req).await,
            Path::Unstable => svc.purchase_unstable(req).await,
            Path::Mutex | Path::Atomic | Path::RowLock | Path::Serializable => {
                svc.purchase_safe(req).await
            }
        };
        reply.map(tonic::Response::into_inner)
    }
}

async fn stock(svc: &CheckoutService) -> pb::StockReply {
    svc.get_stock(Request::new(pb::GetStockRequest {}))
        .await
        .unwrap()
        .into_inner()
}

async fn list(svc: &CheckoutService, round: u64) -> Result<Vec<pb::OrderBatch>, Status> {
    let mut stream = svc
        .list_orders(Request::new(pb::ListOrdersRequest { round }))
        .await?
        .into_inner();
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        batches.push(batch?);
    }
    Ok(batches)
}

async fn book(svc: &CheckoutService) -> Vec<pb::Order> {
    list(svc, 0)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|b| b.orders)
        .collect()
}

async fn reset(svc: &CheckoutService, stock: i64) -> pb::StockReply {
    svc.reset(Request::new(pb::ResetRequest {
        stock: Some(stock),
        safe_strategy: 0,
    }))
    .await
    .unwrap()
    .into_inner()
}

fn outcome(reply: &pb::PurchaseReply) -> pb::Outcome {
    pb::Outcome::try_from(reply.outcome).unwrap()
}

#[tokio::test]
async fn a_purchase_for_another_round_is_refused_and_changes_nothing() {
    for path in PATHS {
        let config = path.config(ServerConfig {
            latency: Duration::ZERO,
            ..ServerConfig::default()
        });
        let (svc, store) = service(&config);
        reset(&svc, 10).await; // round 2
        path.call(&svc, req("a", 1, "first", 0)).await.unwrap();
        let before = store.snapshot().await.unwrap();
        for stale in [1, 3, u64::MAX] {
            let status = path.call(&svc, req("a", 1, "x", stale)).await.unwrap_err();
            assert_eq!(status.code(), Code::FailedPrecondition, "{path:?}");
            let message = status.message();
            assert!(
                message.contains(&format!("round {stale}")) && message.contains("round 2"),
                "{path:?}: {message}"
            );
        }
        assert_eq!(store.snapshot().await.unwrap(), before, "{path:?}");
        assert_eq!(book(&svc).await.len(), 1, "{path:?}");
        // Naming the current round is the same as 0; the reply says which round it was.
        let reply = path.call(&svc, req("a", 1, "y", 2)).await.unwrap();
        assert_eq!((outcome(&reply), reply.round), (pb::Outcome::Purchased, 2));
        assert_eq!(reply.order_id, "r2-2", "{path:?}");
    }
}

/// Purchases that passed their checks in round 1 and are in their simulated latency when a
/// Reset starts round 2 are refused with ABORTED and change nothing in round 2.
#[tokio::test(start_paused = true)]
async fn a_reset_during_in_flight_purchases_leaks_nothing_into_the_new_round() {
    for path in PATHS {
        let config = path.config(ServerConfig {
            stock: 1000,
            per_user_limit: 5,
            ..ServerConfig::default()
        });
        let (svc, _store) = service(&config);
        let tasks: Vec<_> = (0..50)
            .map(|u| {
                let svc = svc.clone();
                tokio::spawn(
                    async move { path.call(&svc, req(&format!("u{}", u % 3), 1, "", 0)).await },
                )
            })
            .collect();
        // The clock is paused: it only advances once every task is parked, i.e. every
        // purchase has passed its checks and waits in its 10 ms latency (the mutex
        // strategy's first holds the lock there, the others queue behind it).
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = reset(&svc, 7).await;
        assert_eq!(fresh.round, 2);
        let mut aborted = 0;
        for task in tasks {
            match task.await.unwrap() {
                Err(status) => {
                    assert_eq!(status.code(), Code::Aborted, "{path:?}: {status:?}");
                    assert!(status.message().contains("round 1 ended"), "{status:?}");
                    aborted += 1;
                }
                Ok(reply) => panic!("{path:?}: a round-1 purchase was answered {reply:?}"),
            }
        }
        assert_eq!(aborted, 50);
        let now = stock(&svc).await;
        assert_eq!(
            (now.round, now.stock, now.orders, now.units_sold),
            (2, 7, 0, 0),
            "{path:?}"
        );
        assert!(book(&svc).await.is_empty(), "{path:?}");
        // The new round's per-user totals start from zero too.
        for _ in 0..5 {
            let reply = path.call(&svc, req("u0", 1, "", 2)).await.unwrap();
            assert_eq!(outcome(&reply), pb::Outcome::Purchased, "{path:?}");
        }
    }
}

#[tokio::test]
async fn list_orders_returns_the_book_in_sequence_order_in_bounded_batches() {
    let config = Path::Atomic.config(ServerConfig {
        stock: 10_000,
        latency: Duration::ZERO,
        ..ServerConfig::default()
    });
    let (svc, _store) = service(&config);
    let mut placed = Vec::new();
    for i in 0..2500u32 {
        let path = PATHS[i as usize % PATHS.len()];
        let user = format!("user-{}", i % 13);
        let request_id = if i % 5 == 0 {
            String::new()
        } else {
            format!("req-{i}")
        };
        let reply = path
            .call(&svc, req(&user, i % 3 + 1, &request_id, 0))
            .await
            .unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased);
        assert_eq!(reply.round, 1);
        placed.push(pb::Order {
            order_id: reply.order_id,
            user_id: user,
            quantity: reply.quantity,
            request_id,
        });
    }
    let batches = list(&svc, 0).await.unwrap();
    assert_eq!(
        batches.iter().map(|b| b.orders.len()).collect::<Vec<_>>(),
        [1024, 1024, 452]
    );
    assert!(batches.iter().all(|b| b.round == 1));
    let listed: Vec<_> = batches.into_iter().flat_map(|b| b.orders).collect();
    assert_eq!(listed, placed);
    for (i, order) in listed.iter().enumerate() {
        assert_eq!(order.order_id, format!("r1-{}", i + 1));
    }
    // GetStock's totals are the book's.
    let now = stock(&svc).await;
    assert_eq!(now.orders, listed.len() as u64);
    assert_eq!(
        now.units_sold,
        listed.iter().map(|o| u64::from(o.quantity)).sum::<u64>()
    );
    assert_eq!(now.stock, 10_000 - now.units_sold as i64);
    assert_eq!(
        (
            now.book_overflow,
            now.book_cap,
            now.max_quantity,
            now.per_user_limit
        ),
        (0, 1_000_000, 10, 0)
    );
}

#[tokio::test]
async fn a_listing_is_a_snapshot_taken_when_it_is_called() {
    let (svc, _store) = service(&ServerConfig {
        latency: Duration::ZERO,
        ..ServerConfig::default()
    });
    for i in 0..3 {
        Path::Atomic
            .call(&svc, req("a", 1, &format!("q{i}"), 0))
            .await
            .unwrap();
    }
    let mut stream = svc
        .list_orders(Request::new(pb::ListOrdersRequest { round: 1 }))
        .await
        .unwrap()
        .into_inner();
    // Placed after the call, before the stream is polled; then a Reset.
    Path::Atomic
        .call(&svc, req("b", 1, "late", 0))
        .await
        .unwrap();
    reset(&svc, 5).await;
    let mut listed = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert_eq!(batch.round, 1);
        listed.extend(batch.orders.into_iter().map(|o| o.request_id));
    }
    assert_eq!(listed, ["q0", "q1", "q2"]);
    // An empty book is one empty batch naming the round.
    let batches = list(&svc, 0).await.unwrap();
    assert_eq!(
        batches,
        [pb::OrderBatch {
            round: 2,
            orders: vec![]
        }]
    );
}

#[tokio::test]
async fn list_orders_of_another_round_is_refused() {
    let (svc, _store) = service(&ServerConfig::default());
    reset(&svc, 10).await;
    for round in [1, 3] {
        let status = list(&svc, round).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains(&format!("round {round}"))
                && status.message().contains("round 2"),
            "{}",
            status.message()
        );
    }
    assert_eq!(list(&svc, 2).await.unwrap().len(), 1);
}

#[tokio::test]
async fn orders_past_the_book_cap_are_placed_counted_and_not_listed() {
    for path in PATHS {
        let config = path.config(ServerConfig {
            latency: Duration::ZERO,
            book_cap: 3,
            ..ServerConfig::default()
        });
        let (svc, _store) = service(&config);
        for i in 0..5 {
            let reply = path
                .call(&svc, req("u", 2, &format!("q{i}"), 0))
                .await
                .unwrap();
            assert_eq!(outcome(&reply), pb::Outcome::Purchased, "{path:?}");
            assert_eq!(reply.order_id, format!("r1-{}", i + 1));
        }
        let now = stock(&svc).await;
        assert_eq!(
            (
                now.orders,
                now.units_sold,
                now.book_cap,
                now.book_overflow,
                now.stock
            ),
            (5, 10, 3, 2, 90),
            "{path:?}"
        );
        let listed: Vec<_> = book(&svc).await.into_iter().map(|o| o.order_id).collect();
        assert_eq!(listed, ["r1-1", "r1-2", "r1-3"], "{path:?}");
        // A new round starts with an empty book and no overflow.
        let fresh = reset(&svc, 100).await;
        assert_eq!(
            (fresh.orders, fresh.book_overflow, fresh.book_cap),
            (0, 0, 3)
        );
    }
}

/// `users` concurrent purchases of one unit each by the same customer on a paused clock.
async fn same_user_rush(svc: &Arc<CheckoutService>, path: Path, users: usize) -> (u64, u64, u64) {
    let tasks: Vec<_> = (0..users)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(
                async move { path.call(&svc, req("greedy", 1, &format!("g{i}"), 0)).await },
            )
        })
        .collect();
    let (mut purchased, mut limited, mut sold_out) = (0, 0, 0);
    for task in tasks {
        match outcome(&task.await.unwrap().unwrap()) {
            pb::Outcome::Purchased => purchased += 1,
            pb::Outcome::LimitReached => limited += 1,
            pb::Outcome::SoldOut => sold_out += 1,
            other => panic!("{other:?}"),
        }
    }
    (purchased, limited, sold_out)
}

#[tokio::test(start_paused = true)]
async fn the_buggy_paths_race_past_the_per_user_limit() {
    for path in [Path::Buggy, Path::Unstable] {
        let config = path.config(ServerConfig {
            stock: 1000,
            per_user_limit: 2,
            ..ServerConfig::default()
        });
        let (svc, _store) = service(&config);
        // Every call reads the customer's total (0) before any of them adds to it.
        assert_eq!(same_user_rush(&svc, path, 20).await, (20, 0, 0), "{path:?}");
        let now = stock(&svc).await;
        assert_eq!((now.units_sold, now.per_user_limit), (20, 2));
        // Sequentially the check does hold.
        let reply = path.call(&svc, req("greedy", 1, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::LimitReached, "{path:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_safe_strategies_never_pass_the_per_user_limit() {
    for path in [Path::Mutex, Path::Atomic, Path::RowLock, Path::Serializable] {
        let config = path.config(ServerConfig {
            stock: 1000,
            per_user_limit: 2,
            ..ServerConfig::default()
        });
        let (svc, _store) = service(&config);
        assert_eq!(same_user_rush(&svc, path, 20).await, (2, 18, 0), "{path:?}");
        let now = stock(&svc).await;
        assert_eq!(
            (now.units_sold, now.orders, now.stock),
            (2, 2, 998),
            "{path:?}"
        );
        assert!(book(&svc).await.iter().all(|o| o.user_id == "greedy"));
        // Others are not affected; one order above the limit on its own is refused.
        let reply = path.call(&svc, req("other", 2, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased, "{path:?}");
        let reply = path.call(&svc, req("big", 3, "", 0)).await.unwrap();
        assert_eq!(
            (
                outcome(&reply),
                reply.round,
                reply.order_id.as_str(),
                reply.stock_after
            ),
            (pb::Outcome::LimitReached, 1, "", 996),
            "{path:?}"
        );
    }
}

#[tokio::test]
async fn the_limit_is_checked_before_the_stock_and_a_sold_out_order_reserves_nothing() {
    for path in PATHS {
        let config = path.config(ServerConfig {
            stock: 3,
            latency: Duration::ZERO,
            per_user_limit: 2,
            ..ServerConfig::default()
        });
        let (svc, _store) = service(&config);
        let reply = path.call(&svc, req("a", 2, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased, "{path:?}");
        // One unit left: "b" asks for two and is sold out; the refused order must not count
        // towards b's limit.
        let reply = path.call(&svc, req("b", 2, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::SoldOut, "{path:?}");
        let reply = path.call(&svc, req("b", 1, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::Purchased, "{path:?}");
        // Stock 0 and "a" at the limit: the limit answers.
        let reply = path.call(&svc, req("a", 1, "", 0)).await.unwrap();
        assert_eq!(
            (outcome(&reply), reply.stock_after),
            (pb::Outcome::LimitReached, 0),
            "{path:?}"
        );
        let reply = path.call(&svc, req("c", 1, "", 0)).await.unwrap();
        assert_eq!(outcome(&reply), pb::Outcome::SoldOut, "{path:?}");
        let now = stock(&svc).await;
        assert_eq!(
            (now.orders, now.units_sold, now.stock),
            (2, 3, 0),
            "{path:?}"
        );
    }
}

/// The stream over real gRPC (127.0.0.1:0): batches arrive in order and bounded.
#[tokio::test]
async fn list_orders_streams_over_grpc() {
    use flashsale::pb::checkout_client::CheckoutClient;
    let server = flashsale_server::spawn(Path::Atomic.config(ServerConfig {
        stock: 5000,
        latency: Duration::ZERO,
        ..ServerConfig::default()
    }))
    .await
    .unwrap();
    let mut client = CheckoutClient::connect(server.url()).await.unwrap();
    for i in 0..1500 {
        let reply = client
            .purchase_safe(req(&format!("u{}", i % 10), 1, &format!("id-{i}"), 1))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.order_id, format!("r1-{}", i + 1));
    }
    let mut stream = client
        .list_orders(pb::ListOrdersRequest { round: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        assert_eq!(batch.round, 1);
        sizes.push(batch.orders.len());
        ids.extend(batch.orders.into_iter().map(|o| o.request_id));
    }
    assert_eq!(sizes, [1024, 476]);
    assert!(
        ids.iter()
            .enumerate()
            .all(|(i, id)| *id == format!("id-{i}"))
    );
    let status = client
        .list_orders(pb::ListOrdersRequest { round: 2 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    server.shutdown().await.unwrap();
}
