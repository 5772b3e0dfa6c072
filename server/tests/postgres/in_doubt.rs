//! Never a wrong "no" (issue #22): a purchase whose connection to PostgreSQL is cut while its
//! commit is in flight is answered with the order it placed, or UNKNOWN when that cannot be
//! learnt in time; UNAVAILABLE ("nothing was written") only where nothing was. Every path and
//! strategy, through a proxy (`proxy.rs`) that cuts the connection at an exact message.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, PgSettings, PgStore, Strategy};
use tonic::{Code, Request};

use crate::proxy::{Cut, On, Proxy, upstream};
use crate::support::{cluster, config, connect, fresh_database};

/// The one-statement purchase (autocommit: the statement is the commit).
const ONE_STATEMENT: On = On::Statement("INSERT INTO orders");

/// A purchase path on a sale set up for it, and the message that commits its purchase.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    buggy: bool,
    strategy: Strategy,
    limit: u32,
    shards: u16,
    stock: i64,
    quantity: u32,
    commits: On,
}

const fn case(name: &'static str, strategy: Strategy, commits: On) -> Case {
    Case {
        name,
        buggy: false,
        strategy,
        limit: 0,
        shards: 1,
        stock: 10,
        quantity: 1,
        commits,
    }
}

/// Every path and strategy, each committing its purchase its own way.
const CASES: &[Case] = &[
    Case {
        buggy: true,
        ..case("buggy (unchecked write-back)", Strategy::Mutex, On::Commit)
    },
    case("mutex", Strategy::Mutex, On::Commit),
    case("atomic, one statement", Strategy::Atomic, ONE_STATEMENT),
    Case {
        limit: 5,
        ..case("atomic with a per-user limit", Strategy::Atomic, On::Commit)
    },
    case("row-lock", Strategy::RowLock, On::Commit),
    case("serializable", Strategy::Serializable, On::Commit),
    Case {
        shards: 4,
        ..case("atomic on 4 shards", Strategy::Atomic, ONE_STATEMENT)
    },
    Case {
        shards: 4,
        limit: 5,
        ..case("atomic on 4 shards, limit", Strategy::Atomic, On::Commit)
    },
    Case {
        shards: 4,
        stock: 4,
        quantity: 2,
        ..case("atomic across 4 shards", Strategy::Atomic, On::Commit)
    },
    // A batch of one: its lock, its statement, then its COMMIT.
    case("batched", Strategy::Batched, On::Commit),
];

/// A sale of its own, its store reaching PostgreSQL through a proxy.
struct Sale {
    svc: Arc<CheckoutService>,
    proxy: Proxy,
    /// The database, directly.
    url: String,
}

async fn open_sale(cluster: &str, case: &Case) -> Sale {
    let url = fresh_database(cluster).await;
    let proxy = Proxy::start(upstream(&url)).await;
    let config = config(case.stock, case.strategy, 0, case.limit);
    let settings = PgSettings {
        url: proxy.url(&url),
        pool_size: 4,
    };
    let store = PgStore::open_sharded(
        &settings,
        config.stock,
        config.strategy,
        config.policy(),
        case.shards,
    )
    .await
    .expect("open the PostgreSQL store");
    let svc = Arc::new(CheckoutService::new(Arc::new(store), &config));
    Sale { svc, proxy, url }
}

impl Sale {
    /// One purchase in round 1 through `case`'s path.
    async fn buy(&self, case: &Case, request_id: &str) -> Result<pb::PurchaseReply, tonic::Status> {
        let request = Request::new(pb::PurchaseRequest {
            user_id: "u1".into(),
            quantity: case.quantity,
            request_id: request_id.into(),
            round: 1,
        });
        let reply = if case.buggy {
            self.svc.purchase_buggy(request).await
        } else {
            self.svc.purchase_safe(request).await
        };
        reply.map(tonic::Response::into_inner)
    }

    /// The wire ids of the orders in the database: those of `request_id`, or all.
    async fn placed(&self, request_id: Option<&str>) -> Vec<String> {
        let db = connect(&self.url).await;
        db.query(
            "SELECT 'r' || round || '-' || order_id FROM orders \
             WHERE $1::text IS NULL OR request_id = $1 ORDER BY order_id",
            &[&request_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_purchase_cut_after_its_commit_was_sent_is_answered_with_its_order() {
    let cluster = cluster();
    for case in CASES {
        let sale = open_sale(&cluster, case).await;
        sale.proxy.arm(case.commits, Cut::Reply, false);
        let reply = sale.buy(case, "cut-after").await;
        assert!(sale.proxy.fired(), "{}: the cut never happened", case.name);
        let placed = sale.placed(Some("cut-after")).await;
        assert_eq!(placed.len(), 1, "{}: the commit was sent", case.name);
        let reply = reply.unwrap_or_else(|status| {
            panic!(
                "{}: answered {:?} ({}) for a placed order",
                case.name,
                status.code(),
                status.message()
            )
        });
        assert_eq!(
            reply.outcome,
            pb::Outcome::Purchased as i32,
            "{}",
            case.name
        );
        assert_eq!(reply.order_id, placed[0], "{}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_purchase_cut_before_its_commit_was_sent_is_unavailable_and_placed_nothing() {
    let cluster = cluster();
    for case in CASES {
        let sale = open_sale(&cluster, case).await;
        sale.proxy.arm(case.commits, Cut::Before, false);
        let status = sale.buy(case, "cut-before").await.unwrap_err();
        assert!(sale.proxy.fired(), "{}: the cut never happened", case.name);
        assert_eq!(
            status.code(),
            Code::Unavailable,
            "{}: {status:?}",
            case.name
        );
        assert!(sale.placed(None).await.is_empty(), "{}", case.name);
        // UNAVAILABLE is the one "no" a client retries: the retry buys.
        let reply = sale.buy(case, "cut-before").await.unwrap();
        assert_eq!(
            reply.outcome,
            pb::Outcome::Purchased as i32,
            "{}",
            case.name
        );
        assert_eq!(sale.placed(None).await, [reply.order_id], "{}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_purchase_cut_while_it_waits_for_a_row_lock_is_ended_before_it_is_answered() {
    let cluster = cluster();
    let case = &CASES[2]; // one statement: it waits for the sale row's lock
    let sale = open_sale(&cluster, case).await;
    let locker = connect(&sale.url).await;
    locker
        .batch_execute("BEGIN; SELECT stock FROM sale FOR UPDATE")
        .await
        .unwrap();
    sale.proxy.arm(case.commits, Cut::InFlight, false);
    let answer = sale.buy(case, "locked").await;
    assert!(sale.proxy.fired());
    // The lock goes; a backend still running the purchase would now commit it.
    locker.batch_execute("COMMIT").await.unwrap();
    sale.proxy.settled().await;
    agrees(case, answer, &sale.placed(Some("locked")).await);
}

/// A purchase's answer agrees with the book (the backend that ran it has exited): its order,
/// or UNAVAILABLE and none.
fn agrees(case: &Case, answer: Result<pb::PurchaseReply, tonic::Status>, placed: &[String]) {
    match answer {
        Ok(reply) => assert_eq!(placed, [reply.order_id], "{}", case.name),
        Err(status) => {
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "{}: {status:?}",
                case.name
            );
            assert!(
                placed.is_empty(),
                "{}: answered UNAVAILABLE, yet the purchase placed {placed:?}",
                case.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_purchase_cut_with_its_commit_in_flight_is_answered_as_the_book_says() {
    let cluster = cluster();
    for case in CASES {
        let sale = open_sale(&cluster, case).await;
        sale.proxy.arm(case.commits, Cut::InFlight, false);
        let answer = sale.buy(case, "in-flight").await;
        assert!(sale.proxy.fired(), "{}: the cut never happened", case.name);
        sale.proxy.settled().await;
        agrees(case, answer, &sale.placed(Some("in-flight")).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_purchase_that_cannot_be_resolved_is_unknown_never_unavailable() {
    let cluster = cluster();
    // No request id to look it up by.
    let case = &CASES[2];
    let sale = open_sale(&cluster, case).await;
    sale.proxy.arm(case.commits, Cut::Reply, false);
    let status = sale.buy(case, "").await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert!(status.message().contains("outcome unknown"), "{status:?}");
    assert_eq!(sale.placed(None).await.len(), 1);

    // The database unreachable for longer than the resolution waits.
    let case = &CASES[4]; // row-lock: a transaction's COMMIT
    let away = open_sale(&cluster, case).await;
    away.proxy.arm(case.commits, Cut::Reply, true);
    let started = tokio::time::Instant::now();
    let status = away.buy(case, "away").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert!(
        waited >= flashsale_server::RESOLVE_WITHIN.mul_f64(0.9)
            && waited < flashsale_server::RESOLVE_WITHIN + Duration::from_secs(5),
        "resolution gave up after {waited:?}"
    );
    away.proxy.set(true);
    let placed = away.placed(Some("away")).await;
    assert_eq!(placed.len(), 1, "the commit was sent");
    // The client's retry with the same request id gets that order, and places no other.
    let reply = away.buy(case, "away").await.unwrap();
    assert_eq!(reply.order_id, placed[0]);
    assert_eq!(away.placed(None).await, placed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn a_reset_whose_commit_is_in_doubt_is_unknown_never_unavailable() {
    let cluster = cluster();
    let case = &CASES[4];
    let sale = open_sale(&cluster, case).await;
    sale.proxy.arm(On::Commit, Cut::Reply, false);
    let status = sale
        .svc
        .reset(Request::new(pb::ResetRequest {
            stock: Some(3),
            safe_strategy: 0,
        }))
        .await
        .unwrap_err();
    assert!(sale.proxy.fired());
    // A retried Reset would start yet another round: the client must not be told "nothing
    // happened" when round 2 was started.
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert!(status.message().contains("round 2"), "{status:?}");
    let db = connect(&sale.url).await;
    let round: i64 = db
        .query_one("SELECT round FROM sale", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(round, 2);
}
