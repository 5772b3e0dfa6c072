//! Stock shards (`--stock-shards N`): the stock of an `atomic` round split over N rows. An order
//! is refused for stock only when the round's *total* cannot cover it (the `NoSpread` fault, no
//! fallback across shards, shows the unsold stock these tests catch), and the single row's rules
//! hold: per-user limit, request-id replays, rounds ending, Reset, migration. Many concurrent
//! buyers on several replicas: `shards_load.rs`.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::store::postgres::ShardFault;
use flashsale_server::store::{Order, Purchase, Receipt, StoreError};
use flashsale_server::{CheckoutService, PgSettings, PgStore, ServerConfig, Store, Strategy};
use tonic::Request;

use crate::support::{cluster, config, connect, fresh_database};

pub async fn open_sharded(url: &str, config: &ServerConfig, shards: u16) -> PgStore {
    let settings = PgSettings {
        url: url.to_string(),
        pool_size: 32,
    };
    PgStore::open_sharded(
        &settings,
        config.stock,
        config.strategy,
        config.policy(),
        shards,
    )
    .await
    .expect("open the sharded PostgreSQL store")
}

fn order<'a>(user: &'a str, quantity: u32, request_id: &'a str, round: u64) -> Order<'a> {
    Order {
        user,
        quantity,
        request_id,
        round,
    }
}

async fn buy(store: &dyn Store, order: Order<'_>) -> Purchase {
    store
        .take_if_atomic(order)
        .await
        .expect("the purchase")
        .expect("the atomic strategy")
}

fn receipt(purchase: Purchase) -> Receipt {
    match purchase {
        Purchase::Purchased(receipt) => receipt,
        other => panic!("not purchased: {other:?}"),
    }
}

/// The shards of the current round, in shard order.
pub async fn shards(db: &tokio_postgres::Client) -> Vec<i64> {
    db.query(
        "SELECT sh.stock FROM sale_shards sh JOIN sale s ON s.round = sh.round ORDER BY shard",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// An order of 3 against shards holding 1, 1, 1 takes from all three; then the round is sold
/// out. With the `NoSpread` fault the same order is refused with 3 units left: the failure the
/// spread path exists for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn an_order_takes_across_shards_and_only_the_total_sells_out() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let store = open_sharded(&url, &config(3, Strategy::Atomic, 0, 0), 3).await;
    let db = connect(&url).await;
    assert_eq!(shards(&db).await, [1, 1, 1]);

    let faulty = open_sharded(&url, &config(3, Strategy::Atomic, 0, 0), 3)
        .await
        .with_fault(ShardFault::NoSpread);
    assert_eq!(
        buy(&faulty, order("a", 3, "", 0)).await,
        Purchase::SoldOut { stock: 3, round: 1 },
        "the fault must leave the stock unsold"
    );

    let bought = receipt(buy(&store, order("a", 3, "x", 0)).await);
    assert_eq!((bought.round, bought.stock_after), (1, 0));
    assert_eq!(shards(&db).await, [0, 0, 0]);
    assert_eq!(
        buy(&store, order("b", 1, "", 0)).await,
        Purchase::SoldOut { stock: 0, round: 1 }
    );
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        (snapshot.stock, snapshot.orders, snapshot.units_sold),
        (0, 1, 3)
    );
}

/// The per-user limit counts a user's units across shards and paths (one shard, spread);
/// concurrent purchases of one user stop exactly at the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn the_per_user_limit_holds_across_shards() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let store = Arc::new(open_sharded(&url, &config(40, Strategy::Atomic, 0, 3), 4).await);
    // b: 3 units, no shard short of 10: one shard; a: 1 + 2, then over the limit.
    receipt(buy(&*store, order("a", 1, "", 0)).await);
    receipt(buy(&*store, order("a", 2, "", 0)).await);
    assert!(matches!(
        buy(&*store, order("a", 1, "", 0)).await,
        Purchase::LimitReached { stock: 37, .. }
    ));
    // Shards 9, 9, 9, 10 left... drain them to 1 each so that 3 units must be spread.
    let db = connect(&url).await;
    db.execute("UPDATE sale_shards SET stock = 1", &[])
        .await
        .unwrap();
    let spread = receipt(buy(&*store, order("b", 3, "", 0)).await);
    assert_eq!(spread.stock_after, 1);
    assert!(matches!(
        buy(&*store, order("b", 1, "", 0)).await,
        Purchase::LimitReached { stock: 1, .. }
    ));
    db.execute("UPDATE sale_shards SET stock = 10", &[])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("c{i}");
                store.take_if_atomic(order("c", 1, &id, 0)).await
            })
        })
        .collect();
    let mut bought = 0;
    for task in tasks {
        match task.await.unwrap().unwrap().unwrap() {
            Purchase::Purchased(_) => bought += 1,
            Purchase::LimitReached { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(bought, 3);
    let units: Vec<(String, i64)> = db
        .query("SELECT user_id, units FROM buyers ORDER BY user_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(units, [("a".into(), 3), ("b".into(), 3), ("c".into(), 3)]);
}

/// A retried request id gets its order back and takes nothing, whether it was placed from one
/// shard or across shards, with and without a per-user limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_retried_request_id_gets_its_order_back_on_shards() {
    let cluster = cluster();
    for limit in [0, 20] {
        let url = fresh_database(&cluster).await;
        let store = open_sharded(&url, &config(12, Strategy::Atomic, 0, limit), 3).await;
        let db = connect(&url).await;
        let one = receipt(buy(&store, order("a", 1, "one", 0)).await);
        let again = receipt(buy(&store, order("a", 1, "one", 0)).await);
        assert_eq!(again.order_id, one.order_id, "limit {limit}");
        assert_eq!(shards(&db).await.iter().sum::<i64>(), 11);
        // No shard holds 5 (4 each at most): taken across shards, and so is its retry.
        let spread = receipt(buy(&store, order("a", 5, "five", 0)).await);
        let again = receipt(buy(&store, order("a", 5, "five", 0)).await);
        assert_eq!(again.order_id, spread.order_id, "limit {limit}");
        let snapshot = store.snapshot().await.unwrap();
        assert_eq!(
            (snapshot.stock, snapshot.orders, snapshot.units_sold),
            (6, 2, 6),
            "limit {limit}"
        );
        assert_eq!(shards(&db).await.iter().sum::<i64>(), 6);
    }
}

/// A spread purchase waiting for the shards while the round ends (the shards of round 1
/// deleted, round 2 started, as Reset does) is refused and changes nothing: pinned to round 1
/// it gets `RoundMismatch`; for any round it buys in round 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_round_ending_under_a_spread_purchase_changes_nothing() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let store = Arc::new(open_sharded(&url, &config(4, Strategy::Atomic, 0, 0), 4).await);
    let mut db = connect(&url).await;
    let tx = db.transaction().await.unwrap();
    tx.query(
        "SELECT 1 FROM sale_shards WHERE round = 1 ORDER BY shard FOR UPDATE",
        &[],
    )
    .await
    .unwrap();
    let pinned = {
        let store = store.clone();
        tokio::spawn(async move { store.take_if_atomic(order("p", 2, "", 1)).await })
    };
    let any = {
        let store = store.clone();
        tokio::spawn(async move { store.take_if_atomic(order("q", 2, "", 0)).await })
    };
    // Both waiting for a shard of round 1 (no shard holds 2 units: in the spread path).
    let watch = connect(&url).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{waiting} waiting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.batch_execute(
        "UPDATE sale SET round = 2, initial_stock = 4; DELETE FROM sale_shards WHERE round = 1; \
         INSERT INTO sale_shards SELECT 2, g, 1 FROM generate_series(0, 3) g",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    match pinned.await.unwrap() {
        Err(StoreError::RoundMismatch {
            requested: 1,
            current: 2,
        }) => {}
        other => panic!("{other:?}"),
    }
    let bought = receipt(any.await.unwrap().unwrap().unwrap());
    assert_eq!(bought.round, 2);
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!((snapshot.round, snapshot.stock, snapshot.orders), (2, 2, 1));
    let stray: i64 = watch
        .query_one("SELECT count(*) FROM orders WHERE round = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stray, 0);
}

/// Reset spreads the new stock over the shards (remainder to the first ones) in the same
/// transaction as the next round; a round of another strategy keeps one row, and the naive
/// paths refuse a sharded round clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn reset_spreads_the_stock_and_other_strategies_keep_one_row() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let config = config(10, Strategy::Atomic, 0, 0);
    let store = Arc::new(open_sharded(&url, &config, 4).await);
    let svc = CheckoutService::new(store.clone(), &config);
    let db = connect(&url).await;
    assert_eq!(shards(&db).await, [3, 3, 2, 2]);
    receipt(buy(&*store, order("a", 2, "", 0)).await);

    let next = store.reset(7, None).await.unwrap();
    assert_eq!(
        (next.round, next.stock, next.initial_stock, next.orders),
        (2, 7, 7, 0)
    );
    assert_eq!(shards(&db).await, [2, 2, 2, 1]);
    let old: i64 = db
        .query_one("SELECT count(*) FROM sale_shards WHERE round < 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "the ended round's shards are deleted");

    // The naive paths read and write the one row: refused, not silently sold out.
    let status = svc
        .purchase_buggy(Request::new(crate::support::req("b", "")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("--stock-shards"), "{status:?}");

    // Mutex: one row, the buggy path works again; back to atomic: shards again.
    let mutex = store.reset(5, Some(Strategy::Mutex)).await.unwrap();
    assert_eq!((mutex.stock, mutex.strategy), (5, Strategy::Mutex));
    assert!(shards(&db).await.is_empty());
    let reply = svc
        .purchase_safe(Request::new(crate::support::req("c", "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.outcome, pb::Outcome::Purchased as i32);
    assert_eq!(store.snapshot().await.unwrap().stock, 4);
    store.reset(9, Some(Strategy::Atomic)).await.unwrap();
    assert_eq!(shards(&db).await, [3, 2, 2, 2]);
    let reply = svc
        .purchase_safe(Request::new(crate::support::req("d", "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.outcome, pb::Outcome::Purchased as i32);
    assert_eq!(store.snapshot().await.unwrap().stock, 8);
}

/// A replica with `--stock-shards 1` on a sharded round (and the other way round) takes from
/// what the round has: the database's shard count decides, not the replica's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn replicas_with_other_shard_counts_follow_the_round() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let config = config(6, Strategy::Atomic, 0, 0);
    // The first replica seeds round 1 on one row.
    let single = open_sharded(&url, &config, 1).await;
    let sharded = open_sharded(&url, &config, 3).await;
    let db = connect(&url).await;
    assert!(shards(&db).await.is_empty(), "a single-row round");
    let bought = receipt(buy(&sharded, order("a", 4, "", 0)).await);
    assert_eq!(bought.stock_after, 2);
    // The sharded replica's Reset: round 2 on 3 shards, which the other replica finds.
    sharded.reset(5, None).await.unwrap();
    assert_eq!(shards(&db).await, [2, 2, 1]);
    let bought = receipt(buy(&single, order("b", 5, "", 0)).await);
    assert_eq!((bought.round, bought.stock_after), (2, 0));
    assert_eq!(
        buy(&single, order("c", 1, "", 0)).await,
        Purchase::SoldOut { stock: 0, round: 2 }
    );
    // And back: round 3 on one row, found by the sharded replica.
    single.reset(3, None).await.unwrap();
    assert!(shards(&db).await.is_empty());
    let bought = receipt(buy(&sharded, order("d", 3, "", 0)).await);
    assert_eq!((bought.round, bought.stock_after), (3, 0));
}

/// `--stock-shards` needs the PostgreSQL store (no database needed).
#[tokio::test]
async fn shards_on_the_memory_store_are_refused() {
    let store = flashsale_server::StoreConfig {
        kind: flashsale_server::StoreKind::Memory,
        database_url: None,
        pool_size: 2,
        stock_shards: 4,
        batch_window: flashsale_server::store::postgres::DEFAULT_BATCH_WINDOW,
        batch_size: flashsale_server::store::postgres::DEFAULT_BATCH_SIZE,
    };
    let err = flashsale_server::open_store(&store, &Default::default())
        .await
        .err()
        .expect("shards on the memory store must fail start-up");
    assert!(
        err.to_string()
            .contains("--stock-shards 4 needs --store postgres"),
        "{err}"
    );
}

/// A database a version-1 server made (no shards) is migrated to version 2 at start-up: its
/// round goes on, on the one sale row, until a Reset splits the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_version_one_database_is_migrated_and_its_round_goes_on() {
    let cluster = cluster();
    let url = fresh_database(&cluster).await;
    let db = connect(&url).await;
    let (version, name, sql) = flashsale_server::store::postgres::migrate::MIGRATIONS[0];
    assert_eq!(version, 1);
    db.batch_execute(&format!(
        "CREATE TABLE flashsale_migrations (version integer PRIMARY KEY, name text NOT NULL, \
         applied_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO flashsale_migrations (version, name) VALUES (1, '{name}'); {sql}; \
         INSERT INTO sale (round, stock, initial_stock, strategy) VALUES (3, 5, 9, 'atomic'); \
         INSERT INTO orders (round, user_id, quantity) VALUES (3, 'old', 4)"
    ))
    .await
    .unwrap();
    let store = open_sharded(&url, &config(100, Strategy::Atomic, 0, 0), 4).await;
    let versions: Vec<i32> = db
        .query(
            "SELECT version FROM flashsale_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(
        (
            snapshot.round,
            snapshot.stock,
            snapshot.orders,
            snapshot.units_sold
        ),
        (3, 5, 1, 4)
    );
    assert!(shards(&db).await.is_empty());
    let bought = receipt(buy(&store, order("a", 2, "", 0)).await);
    assert_eq!((bought.round, bought.stock_after), (3, 3));
    store.reset(10, None).await.unwrap();
    assert_eq!(shards(&db).await, [3, 3, 2, 2]);
}
