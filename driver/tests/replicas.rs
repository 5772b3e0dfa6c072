//! Several targets: the driver spreads its connections over server replicas and reports each
//! one's attempts; against 3 replicas on one PostgreSQL database it shows the process-local
//! mutex overselling and the database strategies holding, each with an exact reconciliation.
//!
//! The PostgreSQL tests need `FLASHSALE_TEST_DATABASE_URL` (`source .ci/postgres.sh`): they are
//! `#[ignore]`d with that reason, run with `-- --ignored`, and fail saying how to start a
//! database when it is not set (the rule of the server's PostgreSQL tests, whose support module
//! they reuse).

use std::sync::Arc;

use clap::Parser;
use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_driver::cli::Cli;
use flashsale_driver::{Report, Verdict};
use flashsale_server::{PgSettings, PgStore, ServerConfig, Strategy, run_with_store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[allow(dead_code)]
#[path = "../../server/tests/postgres/support.rs"]
mod support;

/// Runs the driver (as its command line would) against `targets`, comma-separated.
async fn drive(targets: &[String], args: &[&str]) -> Report {
    let joined = targets.join(",");
    let argv = [&["driver", "--target", joined.as_str()][..], args].concat();
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    assert_eq!(spec.targets.len(), targets.len());
    flashsale_driver::run(&spec).await.unwrap()
}

/// Every replica of the report received attempts, and they add up to the run's.
fn assert_spread(report: &Report, targets: &[String]) {
    let rows: Vec<&str> = report.replicas.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(rows, targets, "one row per target, in order");
    assert_eq!(report.run.targets, targets);
    assert_eq!(
        report.run.target, targets[0],
        "control calls go to the first"
    );
    for replica in &report.replicas {
        assert!(replica.attempts > 0, "{replica:?} got no attempts");
        assert!(replica.connections > 0, "{replica:?}");
    }
    let sum: u64 = report.replicas.iter().map(|r| r.attempts).sum();
    assert_eq!(sum, report.outcomes.attempts);
    let purchased: u64 = report.replicas.iter().map(|r| r.purchased).sum();
    assert_eq!(purchased, report.outcomes.purchased);
}

async fn stock_of(url: &str) -> pb::StockReply {
    CheckoutClient::connect(url.to_string())
        .await
        .unwrap()
        .get_stock(pb::GetStockRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Three servers of their own (memory stores, nothing shared): the driver's connections are
/// spread round-robin over all three, each server sees purchases (read from the servers
/// themselves, not from the driver's report), and the report says which replica answered
/// what. As the replicas share no state, the first replica's book cannot account for what the
/// two others sold: the audit fails (lost orders) instead of passing on a third of the
/// evidence. (The two others are reset once beforehand so that all three are in the round the
/// driver's Reset of the first one starts; otherwise they refuse the purchases as meant for
/// another round, FAILED_PRECONDITION.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_targets_spread_connections_over_every_replica() {
    let mut servers = Vec::new();
    for _ in 0..3 {
        let config = ServerConfig {
            stock: 1000,
            ..ServerConfig::default()
        };
        servers.push(flashsale_server::spawn(config).await.unwrap());
    }
    let targets: Vec<String> = servers.iter().map(|s| s.url()).collect();
    for url in &targets[1..] {
        CheckoutClient::connect(url.clone())
            .await
            .unwrap()
            .reset(pb::ResetRequest {
                stock: Some(1000),
                safe_strategy: 0,
            })
            .await
            .unwrap();
    }
    // Without probes: their Resets would move the first replica's round past the others'.
    let report = drive(
        &targets,
        &[
            "--no-probes",
            "--mode",
            "safe",
            "--users",
            "300",
            "--connections",
            "6",
            "--stock",
            "1000",
            "--settle",
            "1s",
        ],
    )
    .await;
    assert_spread(&report, &targets);
    // 6 connections over 3 replicas: 2 each, 50 users per connection, one attempt per user.
    for replica in &report.replicas {
        assert_eq!(
            (replica.connections, replica.attempts),
            (2, 100),
            "{replica:?}"
        );
    }
    for (url, replica) in targets.iter().zip(&report.replicas) {
        let seen = stock_of(url).await;
        assert_eq!(seen.orders, replica.purchased, "{url} by its own count");
    }
    assert_eq!(report.audit.verdict, Verdict::Fail, "{}", report.to_table());
    assert_eq!(report.audit.reconciliation.lost, 200, "{:?}", report.audit);
    assert_eq!(report.outcomes.purchased, 300);
    let table = report.to_table();
    for url in &targets {
        assert!(table.contains(url.as_str()), "{table}");
    }
    let html = flashsale_driver::report::html::report_page(&report);
    assert!(html.contains(r#"id="replicas""#));
    for server in servers {
        server.shutdown().await.unwrap();
    }
}

/// A server replica in this process on the PostgreSQL database at `url`.
struct Replica {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flashsale_server::ServerError>>,
}

/// Simulated latency of the replicas: long enough that one replica's read-latency-write
/// cycle always overlaps the others' (each replica's mutex admits one purchase at a time, so
/// three are always in flight at once, each writing back a stock the others already changed).
const LATENCY_MS: u64 = 20;
const STOCK: &str = "30";
const USERS: &str = "150";

async fn replica(database: &str) -> Replica {
    let config = support::config(30, Strategy::Atomic, LATENCY_MS, 0);
    let settings = PgSettings {
        url: database.to_string(),
        pool_size: 16,
    };
    let store = PgStore::open(&settings, config.stock, config.strategy, config.policy())
        .await
        .expect("open the PostgreSQL store");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_with_store(listener, Arc::new(store), config, async {
        let _ = stopped.await;
    }));
    Replica { url, stop, task }
}

/// Three replicas on a fresh database of `cluster`.
async fn replicas(cluster: &str) -> Vec<Replica> {
    let database = support::fresh_database(cluster).await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&database).await);
    }
    replicas
}

async fn stop(replicas: Vec<Replica>) {
    for replica in replicas {
        let _ = replica.stop.send(());
        replica.task.await.unwrap().unwrap();
    }
}

/// One sale of `USERS` users for `STOCK` units over the three replicas with `args` added.
async fn sale(replicas: &[Replica], mode: &str, args: &[&str]) -> Report {
    let targets: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let base = [
        "--mode",
        mode,
        "--users",
        USERS,
        "--stock",
        STOCK,
        "--connections",
        "3",
        "--settle",
        "2s",
        "--timeout",
        "30s",
    ];
    let report = drive(&targets, &[&base[..], args].concat()).await;
    eprintln!("{}", report.to_table());
    assert_spread(&report, &targets);
    report
}

fn assert_oversold(report: &Report) {
    let a = &report.audit;
    assert_eq!(a.verdict, Verdict::Fail, "{}", report.to_table());
    assert!(a.oversold_units > 0, "{}", report.to_table());
    assert!(
        a.with_status(flashsale_driver::audit::Status::Fail)
            .contains(&"no_oversell")
    );
}

/// The exact reconciliation: every acknowledged purchase is in the book and nothing else is;
/// the stock, the book and the server's counters agree.
fn assert_exact(report: &Report) {
    let a = &report.audit;
    let r = &a.reconciliation;
    assert!(r.available, "{:?}", r.reason);
    assert_eq!(
        (
            r.lost,
            r.phantom,
            r.ghost,
            r.duplicate_order_ids,
            r.unresolved
        ),
        (0, 0, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.book_units, report.outcomes.units_purchased);
    assert_eq!(a.initial_stock - a.final_stock, a.units_sold);
    assert!(a.conservation.holds && a.ledger.holds, "{a:?}");
    assert_eq!(a.oversold_units, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-driver --test replicas -- --ignored`"]
async fn three_replicas_the_mutex_oversells_and_buggy_too() {
    let cluster = support::cluster();
    let replicas = replicas(&cluster).await;
    let mutex = sale(&replicas, "safe", &["--strategy", "mutex"]).await;
    assert_eq!(mutex.run.strategy, Some("mutex"));
    assert_oversold(&mutex);
    // Three locks, three purchases in flight at once: about three times the stock is sold.
    assert!(mutex.audit.units_sold >= 2 * 30, "{}", mutex.to_table());
    let buggy = sale(&replicas, "buggy", &[]).await;
    assert_oversold(&buggy);
    stop(replicas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-driver --test replicas -- --ignored`"]
async fn three_replicas_the_database_strategies_pass_exactly() {
    let cluster = support::cluster();
    let replicas = replicas(&cluster).await;
    for strategy in ["atomic", "row-lock"] {
        let report = sale(&replicas, "safe", &["--strategy", strategy]).await;
        assert_eq!(report.run.strategy, Some(strategy));
        assert_eq!(report.audit.verdict, Verdict::Pass, "{}", report.to_table());
        assert_exact(&report);
        // More users than stock, every unit sold, the rest told "sold out".
        assert_eq!(report.audit.units_sold, 30, "{strategy}");
        assert_eq!(report.audit.final_stock, 0, "{strategy}");
        assert_eq!(report.outcomes.errors, 0, "{strategy}");
    }
    // Serializable: the replicas' transactions collide on the one stock row; a purchase that
    // runs out of retries answers ABORTED (nothing changed), so errors are allowed here and
    // the audit must still hold exactly.
    let report = sale(
        &replicas,
        "safe",
        &["--strategy", "serializable", "--max-error-rate", "1"],
    )
    .await;
    assert_eq!(report.run.strategy, Some("serializable"));
    assert_eq!(report.audit.verdict, Verdict::Pass, "{}", report.to_table());
    assert_exact(&report);
    assert!(report.outcomes.purchased > 0);
    assert_eq!(
        report.outcomes.errors,
        report
            .outcomes
            .by_status
            .get("ABORTED")
            .copied()
            .unwrap_or(0),
        "only conflicts may fail: {:?}",
        report.outcomes.by_status
    );
    stop(replicas).await;
}

/// The memory store too takes row-lock and serializable through Reset, and GetStock says so:
/// the new contract values round-trip through a real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_switches_to_row_lock_and_serializable() {
    let server = flashsale_server::spawn(ServerConfig::default())
        .await
        .unwrap();
    let targets = [server.url()];
    for strategy in ["row-lock", "serializable"] {
        let report = drive(
            &targets,
            &[
                "--mode",
                "safe",
                "--strategy",
                strategy,
                "--users",
                "50",
                "--stock",
                "20",
                "--settle",
                "1s",
                "--max-error-rate",
                "1",
            ],
        )
        .await;
        assert_eq!(report.run.strategy, Some(strategy));
        assert_eq!(report.audit.verdict, Verdict::Pass, "{}", report.to_table());
        assert_eq!(report.replicas.len(), 1);
    }
    server.shutdown().await.unwrap();
}
