//! The batched strategy (`store/postgres/batch.rs`): purchases queued within a window applied
//! by one statement and one commit. The members of a batch are queued in the order their
//! futures are first polled (`join_all` polls in order), so a batch's arrival order is the
//! test's; a batch of exactly `size` members runs as soon as it is full.

use std::sync::Arc;
use std::time::Duration;

use flashsale_server::store::{Order, Purchase, StoreError};
use flashsale_server::{BatchFault, Batching, CheckoutService, PgStore, Store, Strategy};
use futures::future::join_all;
use tokio::time::Instant;

use flashsale::pb::{self, checkout_server::Checkout};
use tonic::Request;

use crate::support::{audit, cluster, config, fresh_database, open};

/// A store on `url` with the batched strategy, `stock` units, per-user `limit`, batches of
/// `size` members and a window long enough that a full batch is what runs them.
async fn batched(url: &str, stock: i64, limit: u32, size: u16) -> PgStore {
    open(url, &config(stock, Strategy::Batched, 0, limit))
        .await
        .with_batching(Batching {
            window: Duration::from_secs(1),
            size,
        })
}

fn order<'a>(user: &'a str, quantity: u32, request_id: &'a str) -> Order<'a> {
    Order {
        user,
        quantity,
        request_id,
        round: 0,
    }
}

/// One batch of `orders`, in this order.
async fn batch(store: &PgStore, orders: &[Order<'_>]) -> Vec<Result<Purchase, StoreError>> {
    let answers = join_all(orders.iter().map(|o| store.purchase_batched(*o, None))).await;
    answers
        .into_iter()
        .map(|answer| answer.map(|purchase| purchase.expect("the strategy is batched")))
        .collect()
}

/// (order id, stock after) of a purchase; panics on anything else.
fn bought(answer: &Result<Purchase, StoreError>) -> (String, i64) {
    match answer {
        Ok(Purchase::Purchased(receipt)) => (receipt.order_id.clone(), receipt.stock_after),
        other => panic!("not purchased: {other:?}"),
    }
}

fn sold_out(answer: &Result<Purchase, StoreError>) -> bool {
    matches!(answer, Ok(Purchase::SoldOut { .. }))
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_exact_allocation_at_the_boundary() {
    let url = fresh_database(&cluster()).await;
    let store = batched(&url, 5, 0, 6).await;
    let orders = [
        order("a", 3, "q1"),
        order("b", 3, "q2"), // 2 left: refused, takes nothing
        order("c", 1, "q3"),
        order("d", 2, "q4"), // 1 left: refused
        order("e", 1, "q5"),
        order("f", 1, "q6"), // 0 left
    ];
    let answers = batch(&store, &orders).await;
    let (first, third, fifth) = (
        bought(&answers[0]),
        bought(&answers[2]),
        bought(&answers[4]),
    );
    assert_eq!(
        (first.1, third.1, fifth.1),
        (2, 1, 0),
        "stock after each, in order"
    );
    assert!(sold_out(&answers[1]) && sold_out(&answers[3]) && sold_out(&answers[5]));
    let ids: Vec<_> = [&first, &third, &fifth]
        .iter()
        .map(|b| b.0.clone())
        .collect();
    assert_eq!(ids, ["r1-1", "r1-2", "r1-3"], "order ids in arrival order");
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        (snapshot.stock, snapshot.units_sold, snapshot.orders),
        (0, 5, 3)
    );
    assert_eq!(snapshot.strategy, Strategy::Batched);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_request_id_twice_in_a_batch_and_across_batches() {
    let url = fresh_database(&cluster()).await;
    let store = batched(&url, 10, 0, 3).await;
    let answers = batch(
        &store,
        &[
            order("a", 2, "same"),
            order("a", 2, "same"),
            order("b", 1, ""),
        ],
    )
    .await;
    let (once, twice) = (bought(&answers[0]), bought(&answers[1]));
    assert_eq!(
        once, twice,
        "one order for the request id, both callers told so"
    );
    bought(&answers[2]);
    let answers = batch(
        &store,
        &[
            order("a", 2, "same"),
            order("c", 1, "other"),
            order("d", 1, ""),
        ],
    )
    .await;
    assert_eq!(bought(&answers[0]).0, once.0, "a later batch replays it");
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        (snapshot.stock, snapshot.orders, snapshot.units_sold),
        (5, 4, 5)
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_limit_inside_a_batch() {
    let url = fresh_database(&cluster()).await;
    let store = batched(&url, 100, 3, 4).await;
    let answers = batch(
        &store,
        &[
            order("a", 2, "1"),
            order("a", 2, "2"), // 4 > 3
            order("a", 1, "3"), // 3: fits
            order("b", 3, "4"),
        ],
    )
    .await;
    bought(&answers[0]);
    assert!(
        matches!(answers[1], Ok(Purchase::LimitReached { .. })),
        "{:?}",
        answers[1]
    );
    bought(&answers[2]);
    bought(&answers[3]);
    // The totals carry over to the next batch.
    let answers = batch(
        &store,
        &[
            order("a", 1, "5"),
            order("b", 1, "6"),
            order("c", 3, "7"),
            order("c", 1, "8"),
        ],
    )
    .await;
    assert!(matches!(answers[0], Ok(Purchase::LimitReached { .. })));
    assert!(matches!(answers[1], Ok(Purchase::LimitReached { .. })));
    bought(&answers[2]);
    assert!(matches!(answers[3], Ok(Purchase::LimitReached { .. })));
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.units_sold, snapshot.orders), (9, 4));
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_deadline_passed_before_the_batch_ran_is_not_applied() {
    let url = fresh_database(&cluster()).await;
    let store = open(&url, &config(10, Strategy::Batched, 0, 0))
        .await
        .with_batching(Batching {
            window: Duration::from_millis(300),
            size: 100,
        });
    let started = Instant::now();
    let soon = Some(started + Duration::from_millis(20));
    let (late, patient) = tokio::join!(
        store.purchase_batched(order("a", 1, "late"), soon),
        store.purchase_batched(order("b", 1, "patient"), None),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the batch waited its window"
    );
    assert!(
        matches!(late, Err(StoreError::DeadlineExceeded(_))),
        "{late:?}"
    );
    assert!(
        matches!(patient, Ok(Some(Purchase::Purchased(_)))),
        "{patient:?}"
    );
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.stock, snapshot.orders), (9, 1));
}

/// Three replicas (stores of their own) batching at once on one database, `fault` in each:
/// 120 buyers per replica (quantities 1, 2, 3, each its own request id) for 150 units. The
/// audit from the database, and the units the buyers were told they bought.
async fn three_replicas(fault: BatchFault) -> (crate::support::Audit, u64) {
    const STOCK: i64 = 150;
    let url = fresh_database(&cluster()).await;
    let config = config(STOCK, Strategy::Batched, 0, 0);
    let mut services = Vec::new();
    for _ in 0..3 {
        let store = open(&url, &config).await.with_batch_fault(fault);
        services.push(Arc::new(CheckoutService::new(Arc::new(store), &config)));
    }
    let mut tasks = Vec::new();
    for (r, svc) in services.iter().enumerate() {
        for i in 0..120u32 {
            let svc = svc.clone();
            let request = pb::PurchaseRequest {
                user_id: format!("r{r}-u{i}"),
                quantity: 1 + i % 3,
                request_id: format!("r{r}-q{i}"),
                round: 0,
            };
            tasks.push(tokio::spawn(async move {
                svc.purchase_safe(Request::new(request))
                    .await
                    .map(tonic::Response::into_inner)
            }));
        }
    }
    let mut told = 0;
    for task in tasks {
        let reply = task.await.expect("the purchase task").expect("an answer");
        if reply.outcome == pb::Outcome::Purchased as i32 {
            told += u64::from(reply.quantity);
        }
    }
    (audit(&services[0]).await, told)
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_three_replicas_never_oversell() {
    let (audit, told) = three_replicas(BatchFault::None).await;
    assert!(!audit.oversold(), "{audit:?}");
    assert!(audit.reconciles(), "{audit:?}");
    assert_eq!(
        told, audit.stock.units_sold,
        "every unit told is in the book"
    );
    assert!(audit.stock.stock < 3, "sold until no order fit: {audit:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_faulty_batches_fail_the_audit() {
    // Each member checked against the stock before the batch: oversold.
    let (audit, told) = three_replicas(BatchFault::StaleStock).await;
    assert!(audit.oversold() && told > 150, "{told} {audit:?}");
    // Answered before the commit, which never came: buyers told PURCHASED, nothing sold.
    let (audit, told) = three_replicas(BatchFault::AnswerBeforeCommit).await;
    assert!(told > audit.stock.units_sold, "{told} {audit:?}");
}

/// A batch whose COMMIT went through but whose reply was cut: every member is resolved by its
/// request id, answered with its own order; one without a request id is UNKNOWN, never a "no".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_commit_in_doubt_is_resolved_member_by_member() {
    use crate::proxy::{Cut, On, Proxy, upstream};
    let url = fresh_database(&cluster()).await;
    let proxy = Proxy::start(upstream(&url)).await;
    let config = config(10, Strategy::Batched, 0, 0);
    let settings = flashsale_server::PgSettings {
        url: proxy.url(&url),
        pool_size: 4,
    };
    let store = PgStore::open(&settings, config.stock, config.strategy, config.policy())
        .await
        .expect("open the PostgreSQL store")
        .with_batching(Batching {
            window: Duration::from_secs(1),
            size: 3,
        });
    proxy.arm(On::Commit, Cut::Reply, false);
    let answers = batch(
        &store,
        &[order("a", 2, "d1"), order("b", 1, ""), order("c", 3, "d3")],
    )
    .await;
    assert!(proxy.fired(), "the cut never happened");
    let db = crate::support::connect(&url).await;
    let placed: Vec<String> = db
        .query(
            "SELECT 'r' || round || '-' || order_id FROM orders ORDER BY order_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(placed.len(), 3, "the commit went through");
    assert_eq!(bought(&answers[0]).0, placed[0]);
    assert!(
        matches!(answers[1], Err(StoreError::OutcomeUnknown(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(bought(&answers[2]).0, placed[2]);
}

/// A Reset through another replica switches the strategy: a batch then changes nothing and
/// sends its members back to the safe path (`None`); a member pinned to the ended round is
/// refused with the round it asked for.
#[tokio::test]
#[ignore = "needs PostgreSQL: source .ci/postgres.sh"]
async fn batched_members_follow_a_strategy_switched_by_another_replica() {
    let url = fresh_database(&cluster()).await;
    let store = batched(&url, 10, 0, 1).await;
    let other = open(&url, &config(10, Strategy::Batched, 0, 0)).await;
    bought(&batch(&store, &[order("a", 1, "1")]).await[0]);
    other.reset(10, Some(Strategy::Atomic)).await.unwrap();
    let answer = store.purchase_batched(order("a", 1, "2"), None).await;
    assert!(matches!(answer, Ok(None)), "{answer:?}");
    let pinned = Order {
        round: 1,
        ..order("a", 1, "3")
    };
    let answer = store.purchase_batched(pinned, None).await;
    assert!(
        matches!(
            answer,
            Err(StoreError::RoundMismatch {
                requested: 1,
                current: 2
            })
        ),
        "{answer:?}"
    );
    assert_eq!(store.snapshot().await.unwrap().orders, 0);
}
