//! A fresh database per test, the services over it, and the audit every test applies.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use flashsale_server::{CheckoutService, PgSettings, PgStore, ServerConfig, Strategy};
use tokio_postgres::NoTls;
use tokio_stream::StreamExt;
use tonic::Request;

pub const URL_VAR: &str = "FLASHSALE_TEST_DATABASE_URL";

/// The test cluster's URL. The tests that need it are `#[ignore]`d with the reason, so a plain
/// `cargo test` reports them as ignored, never as passed; asked to run them (`--ignored`)
/// without a cluster, this fails and says how to start one.
pub fn cluster() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs PostgreSQL and {URL_VAR} is not set: run `source .ci/postgres.sh` \
             (a throwaway cluster, stopped when the shell exits), then `cargo test -p \
             flashsale-server --test postgres -- --ignored`"
        ),
    }
}

/// A database of its own for one test: created empty in the cluster, its URL returned.
pub async fn fresh_database(cluster: &str) -> String {
    let (client, connection) = tokio_postgres::connect(cluster, NoTls)
        .await
        .expect("connect to the test cluster");
    tokio::spawn(connection);
    let name = format!("flashsale_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let (base, _) = cluster
        .split_once('?')
        .map_or((cluster, ""), |(b, q)| (b, q));
    let (server, _) = base.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/{name}")
}

/// A plain client on `url`, for what the tests read or break directly.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

pub fn config(stock: i64, strategy: Strategy, latency_ms: u64, limit: u32) -> ServerConfig {
    ServerConfig {
        stock,
        strategy,
        latency: Duration::from_millis(latency_ms),
        failure_rate: 0.0,
        per_user_limit: limit,
        ..ServerConfig::default()
    }
}

pub async fn open(url: &str, config: &ServerConfig) -> PgStore {
    let settings = PgSettings {
        url: url.to_string(),
        pool_size: 32,
    };
    PgStore::open(&settings, config.stock, config.strategy, config.policy())
        .await
        .expect("open the PostgreSQL store")
}

/// A checkout service over a fresh PostgreSQL store.
pub async fn service(url: &str, config: &ServerConfig) -> Arc<CheckoutService> {
    let store = open(url, config).await;
    Arc::new(CheckoutService::new(Arc::new(store), config))
}

pub fn req(user: &str, request_id: &str) -> pb::PurchaseRequest {
    pb::PurchaseRequest {
        user_id: user.into(),
        quantity: 1,
        request_id: request_id.into(),
        round: 0,
    }
}

/// How a set of purchases ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub purchased: u64,
    pub sold_out: u64,
    pub limited: u64,
    pub errors: u64,
}

impl Tally {
    pub fn add(&mut self, reply: Result<pb::PurchaseReply, tonic::Status>) {
        match reply.map(|r| pb::Outcome::try_from(r.outcome)) {
            Ok(Ok(pb::Outcome::Purchased)) => self.purchased += 1,
            Ok(Ok(pb::Outcome::SoldOut)) => self.sold_out += 1,
            Ok(Ok(pb::Outcome::LimitReached)) => self.limited += 1,
            Ok(_) => panic!("a reply with no outcome"),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::Aborted,
                    "only conflicts may fail: {status:?}"
                );
                self.errors += 1;
            }
        }
    }
}

/// `users` concurrent safe (or buggy) purchases of one unit, by `user(i)`.
pub async fn rush(
    svc: &Arc<CheckoutService>,
    buggy: bool,
    users: usize,
    user: impl Fn(usize) -> String,
) -> Tally {
    let tasks: Vec<_> = (0..users)
        .map(|i| {
            let svc = svc.clone();
            let request = req(&user(i), &format!("q{i}"));
            tokio::spawn(async move {
                let request = Request::new(request);
                let reply = if buggy {
                    svc.purchase_buggy(request).await
                } else {
                    svc.purchase_safe(request).await
                };
                reply.map(tonic::Response::into_inner)
            })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await.unwrap());
    }
    tally
}

/// What the server's own records say after a run: GetStock and the whole ListOrders.
#[derive(Debug)]
pub struct Audit {
    pub stock: pb::StockReply,
    pub listed: Vec<pb::Order>,
}

impl Audit {
    /// Units the book holds.
    pub fn listed_units(&self) -> u64 {
        self.listed.iter().map(|o| u64::from(o.quantity)).sum()
    }

    /// More units sold than the round had.
    pub fn oversold(&self) -> bool {
        self.stock.units_sold > u64::try_from(self.stock.initial_stock).unwrap()
    }

    /// The book, the totals and the stock agree exactly: every unit that left the stock is
    /// in the book, and nothing else is; no order id twice.
    pub fn reconciles(&self) -> bool {
        let ids: std::collections::HashSet<_> = self.listed.iter().map(|o| &o.order_id).collect();
        ids.len() == self.listed.len()
            && self.listed.len() as u64 == self.stock.orders
            && self.listed_units() == self.stock.units_sold
            && self.stock.initial_stock - self.stock.stock
                == i64::try_from(self.stock.units_sold).unwrap()
    }
}

pub async fn audit(svc: &CheckoutService) -> Audit {
    let stock = svc
        .get_stock(Request::new(pb::GetStockRequest {}))
        .await
        .unwrap()
        .into_inner();
    let listed = list(svc, 0).await.unwrap();
    Audit { stock, listed }
}

pub async fn list(svc: &CheckoutService, round: u64) -> Result<Vec<pb::Order>, tonic::Status> {
    let mut stream = svc
        .list_orders(Request::new(pb::ListOrdersRequest { round }))
        .await?
        .into_inner();
    let mut orders = Vec::new();
    while let Some(batch) = stream.next().await {
        orders.extend(batch?.orders);
    }
    Ok(orders)
}
