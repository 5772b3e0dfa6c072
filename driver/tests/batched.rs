//! The batched strategy through the driver's audit: three server replicas on one PostgreSQL
//! database, `--strategy batched`, PASS exactly (standalone, with a quantity mix and with
//! double clicks under a per-customer limit); a batch that answers before it commits (a
//! test-only fault of the store) FAILS.
//!
//! Needs `FLASHSALE_TEST_DATABASE_URL` (`source .ci/postgres.sh`), like `replicas.rs`.

use std::sync::Arc;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::{Report, Verdict};
use flashsale_server::{BatchFault, PgSettings, PgStore, Strategy, run_with_store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[allow(dead_code)]
#[path = "../../server/tests/postgres/support.rs"]
mod support;

struct Replica {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flashsale_server::ServerError>>,
}

/// Three replicas of the batched strategy (per-user `limit`, `fault` in each) on a fresh
/// database.
async fn replicas(limit: u32, fault: BatchFault) -> Vec<Replica> {
    let database = support::fresh_database(&support::cluster()).await;
    let config = support::config(200, Strategy::Batched, 0, limit);
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let settings = PgSettings {
            url: database.clone(),
            pool_size: 8,
        };
        let store = PgStore::open(&settings, config.stock, config.strategy, config.policy())
            .await
            .expect("open the PostgreSQL store")
            .with_batch_fault(fault);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_with_store(
            listener,
            Arc::new(store),
            config.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        replicas.push(Replica { url, stop, task });
    }
    replicas
}

async fn stop(replicas: Vec<Replica>) {
    for replica in replicas {
        let _ = replica.stop.send(());
        replica.task.await.unwrap().unwrap();
    }
}

/// A safe sale of 500 users for 200 units over the replicas, `--strategy batched`, `args` added.
async fn sale(replicas: &[Replica], args: &[&str]) -> Report {
    let targets: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let joined = targets.join(",");
    let base = [
        "driver",
        "--target",
        joined.as_str(),
        "--mode",
        "safe",
        "--strategy",
        "batched",
        "--users",
        "500",
        "--stock",
        "200",
        "--connections",
        "6",
        "--settle",
        "2s",
        "--timeout",
        "30s",
    ];
    let argv = [&base[..], args].concat();
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    let report = flashsale_driver::run(&spec).await.unwrap();
    eprintln!("{}", report.to_table());
    report
}

fn assert_exact_pass(report: &Report) {
    let a = &report.audit;
    assert_eq!(report.run.strategy, Some("batched"));
    assert_eq!(a.verdict, Verdict::Pass, "{}", report.to_table());
    let r = &a.reconciliation;
    assert!(r.available, "{:?}", r.reason);
    assert_eq!(
        (r.lost, r.phantom, r.ghost, r.duplicate_order_ids),
        (0, 0, 0, 0),
        "{r:?}"
    );
    assert_eq!(r.book_units, report.outcomes.units_purchased);
    assert_eq!(a.oversold_units, 0);
    assert_eq!(report.outcomes.errors, 0, "{:?}", report.outcomes.by_status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-driver --test batched -- --ignored`"]
async fn batched_three_replicas_pass_exactly() {
    let three = replicas(0, BatchFault::None).await;
    let plain = sale(&three, &[]).await;
    assert_exact_pass(&plain);
    assert_eq!(plain.audit.units_sold, 200);
    let mix = sale(&three, &["--quantity", "1,2,3"]).await;
    assert_exact_pass(&mix);
    stop(three).await;
    let limited = replicas(2, BatchFault::None).await;
    let clicks = sale(&limited, &["--clicks", "3", "--quantity", "1,2"]).await;
    assert_exact_pass(&clicks);
    stop(limited).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-driver --test batched -- --ignored`"]
async fn batched_answering_before_the_commit_fails_the_audit() {
    let replicas = replicas(0, BatchFault::AnswerBeforeCommit).await;
    let report = sale(&replicas, &[]).await;
    assert_eq!(report.audit.verdict, Verdict::Fail, "{}", report.to_table());
    assert!(
        report.audit.reconciliation.lost > 0,
        "{}",
        report.to_table()
    );
    stop(replicas).await;
}
