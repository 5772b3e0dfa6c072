//! The server over real gRPC on 127.0.0.1:0: health, reflection, graceful shutdown.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use std::sync::Arc;

use flashsale_server::latency::Latency;
use flashsale_server::store::{
    Attempt, Current, Order, OrderStream, Peek, Purchase, Receipt, Snapshot, StoreError,
};
use flashsale_server::{MemoryStore, ServerConfig, Store, Strategy, run_with_store, spawn};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_reports_serving() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "flashsale.v1.Checkout"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
    server.shutdown().await.unwrap();
}

/// A store whose purchases wait at a gate, so a test knows a call is inside the server.
struct GateStore {
    inner: MemoryStore,
    entered: Notify,
    gate: Notify,
}

#[tonic::async_trait]
impl Store for GateStore {
    async fn current(&self, requested: u64) -> Result<Current, StoreError> {
        self.inner.current(requested).await
    }
    async fn peek(&self, order: Order<'_>) -> Result<Peek, StoreError> {
        self.inner.peek(order).await
    }
    async fn decrement_unchecked(
        &self,
        order: Order<'_>,
        seen: &Peek,
    ) -> Result<Receipt, StoreError> {
        self.inner.decrement_unchecked(order, seen).await
    }
    async fn compare_and_decrement(&self, order: Order<'_>) -> Result<Purchase, StoreError> {
        self.entered.notify_one();
        self.gate.notified().await;
        self.inner.compare_and_decrement(order).await
    }
    async fn purchase_locked(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, StoreError> {
        self.inner.purchase_locked(order, work).await
    }
    async fn try_serializable(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, StoreError> {
        self.inner.try_serializable(order, work).await
    }
    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError> {
        self.inner.reset(stock, strategy).await
    }
    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.inner.snapshot().await
    }
    async fn list_orders(&self, round: u64, batch: usize) -> Result<OrderStream, StoreError> {
        self.inner.list_orders(round, batch).await
    }
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls() {
    let config = ServerConfig {
        latency: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let store = Arc::new(GateStore {
        inner: MemoryStore::from_config(&config),
        entered: Notify::new(),
        gate: Notify::new(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = {
        let store = store.clone();
        async move {
            let _ = stopped.await;
            // Shutdown has begun; only now may the in-flight purchase (which has spent its
            // 100 ms latency and is at the compare-and-decrement) go on.
            store.gate.notify_one();
        }
    };
    let server = tokio::spawn(run_with_store(
        listener,
        store.clone(),
        config.clone(),
        shutdown,
    ));

    let mut client = CheckoutClient::connect(url).await.unwrap();
    let in_flight = tokio::spawn(async move {
        client
            .purchase_safe(pb::PurchaseRequest {
                user_id: "late".into(),
                quantity: 1,
                ..Default::default()
            })
            .await
    });
    store.entered.notified().await;
    stop.send(()).unwrap();
    let reply = in_flight.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.outcome, pb::Outcome::Purchased as i32);
    server.await.unwrap().unwrap();
    assert_eq!(store.inner.snapshot().await.unwrap().units_sold, 1);
}

#[tokio::test]
async fn a_purchase_cut_off_by_the_end_of_the_grace_is_unknown_never_unavailable() {
    let mut config = ServerConfig::default();
    config.hardening.shutdown_grace = Duration::from_millis(200);
    let store = Arc::new(GateStore {
        inner: MemoryStore::from_config(&config),
        entered: Notify::new(),
        gate: Notify::new(), // never opened: the purchase is still in the store at the end
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run_with_store(
        listener,
        store.clone(),
        config.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut client = CheckoutClient::connect(url).await.unwrap();
    let in_flight = tokio::spawn(async move {
        client
            .purchase_safe(pb::PurchaseRequest {
                user_id: "cut".into(),
                quantity: 1,
                request_id: "cut-1".into(),
                round: 0,
            })
            .await
    });
    store.entered.notified().await;
    stop.send(()).unwrap();
    // Its request reached the store, which may have applied it: never the "nothing was
    // written" of UNAVAILABLE.
    let status = in_flight.await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown, "{status:?}");
    assert!(status.message().contains("outcome unknown"), "{status:?}");
    server.await.unwrap().unwrap();
}
