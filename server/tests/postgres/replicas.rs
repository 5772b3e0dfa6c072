//! Three server replicas in this process, each with its own pool, on one database, driven by
//! concurrent gRPC clients: the process-local mutex oversells, the database strategies hold
//! with an exact reconciliation. Audited from the database through ListOrders and GetStock.

use std::sync::Arc;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::service::TOTAL_RETRIES_HEADER;
use flashsale_server::{ServerConfig, Strategy, run_with_store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::support::{Audit, Tally, cluster, config, fresh_database, open, req};

const REPLICAS: usize = 3;
const BUYERS_PER_REPLICA: usize = 4;
const STOCK: i64 = 3;
/// Long enough that every replica's first read happens before any replica's first write:
/// the requests all leave together, and a write comes only after a whole latency.
const LATENCY_MS: u64 = 100;

struct Replica {
    client: CheckoutClient<Channel>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flashsale_server::ServerError>>,
}

async fn replica(url: &str, config: &ServerConfig) -> Replica {
    let store = Arc::new(open(url, config).await);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_with_store(listener, store, config.clone(), async {
        let _ = stopped.await;
    }));
    let client = CheckoutClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Replica { client, stop, task }
}

/// Every replica's buyers at once, then the audit read through the first replica.
async fn sale_across_replicas(cluster: &str, strategy: Strategy) -> (Tally, Audit, u64) {
    let url = fresh_database(cluster).await;
    let config = config(STOCK, strategy, LATENCY_MS, 0);
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(replica(&url, &config).await);
    }
    let mut tasks = Vec::new();
    for (r, replica) in replicas.iter().enumerate() {
        for b in 0..BUYERS_PER_REPLICA {
            let mut client = replica.client.clone();
            let request = req(&format!("r{r}-u{b}"), &format!("r{r}-q{b}"));
            tasks.push(tokio::spawn(async move {
                client
                    .purchase_safe(request)
                    .await
                    .map(tonic::Response::into_inner)
            }));
        }
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await.unwrap());
    }
    let mut client = replicas[0].client.clone();
    let stock = client
        .get_stock(pb::GetStockRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .list_orders(pb::ListOrdersRequest { round: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut listed = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        listed.extend(batch.orders);
    }
    let mut retries = 0;
    for replica in &replicas {
        let reply = replica
            .client
            .clone()
            .get_stock(pb::GetStockRequest {})
            .await
            .unwrap();
        let header = reply.metadata().get(TOTAL_RETRIES_HEADER).unwrap();
        retries += header.to_str().unwrap().parse::<u64>().unwrap();
    }
    for replica in replicas {
        let _ = replica.stop.send(());
        replica.task.await.unwrap().unwrap();
    }
    eprintln!(
        "3 replicas, {strategy}: {tally:?}; initial {} stock {} units sold {}; \
         serializable retries {retries}",
        stock.initial_stock, stock.stock, stock.units_sold
    );
    (tally, Audit { stock, listed }, retries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn three_replicas_the_mutex_oversells() {
    let cluster = cluster();
    let (tally, audit, _) = sale_across_replicas(&cluster, Strategy::Mutex).await;
    // Each replica's lock serialises its own buyers only: the three first reads all see the
    // whole stock, so at least three orders are placed for the first unit alone.
    assert!(audit.oversold(), "{tally:?} {audit:?}");
    assert!(audit.stock.units_sold >= STOCK as u64 + 2, "{audit:?}");
    assert!(!audit.reconciles(), "{audit:?}");
    assert_eq!(audit.listed_units(), audit.stock.units_sold);
    assert_eq!(tally.purchased, audit.stock.units_sold);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: `source .ci/postgres.sh`, then `cargo test -p flashsale-server --test postgres -- --ignored`"]
async fn three_replicas_the_database_strategies_hold() {
    let cluster = cluster();
    for strategy in [Strategy::Atomic, Strategy::RowLock, Strategy::Serializable] {
        let (tally, audit, retries) = sale_across_replicas(&cluster, strategy).await;
        assert!(!audit.oversold(), "{strategy}: {tally:?} {audit:?}");
        assert!(audit.reconciles(), "{strategy}: {audit:?}");
        assert_eq!(tally.purchased, audit.stock.units_sold, "{strategy}");
        if strategy != Strategy::Serializable {
            assert_eq!(
                (tally.purchased, tally.sold_out),
                (
                    STOCK as u64,
                    (REPLICAS * BUYERS_PER_REPLICA) as u64 - STOCK as u64
                ),
                "{strategy}"
            );
            assert_eq!(retries, 0, "{strategy}");
        } else {
            // The replicas' transactions collide on the one stock row and are retried.
            assert!(tally.purchased > 0, "{tally:?}");
            assert!(retries > 0, "no serialization failure across 3 replicas?");
        }
    }
}
