//! `shop.v1`: a checkout of a team's own for the custom-checkout tests, with its own proto
//! (shop.proto: another package, other names and fields, a status enum, sold out as the gRPC
//! error FAILED_PRECONDITION). A buggy variant (check the stock, wait for the "database", then
//! take the units: oversells under concurrency) and a safe one (one atomic update), serving
//! server reflection or not. It runs on a thread of its own, so a test can run the driver
//! binary while it serves.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

pub mod pb {
    tonic::include_proto!("shop.v1");
}

/// The descriptor set of shop.proto (for reflection), built by driver/build.rs.
pub const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shop_descriptor.bin"));

/// The shop.proto file itself, for `--proto`.
pub fn proto_path() -> String {
    format!("{}/tests/shop/shop.proto", env!("CARGO_MANIFEST_DIR"))
}

/// A customer whose orders are answered with a 200 KiB reply (and change nothing).
pub const HUGE_REPLY_CUSTOMER: &str = "huge-reply";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Check, then (after a simulated database latency) take: two buyers of the last unit
    /// both get it.
    Buggy,
    /// One atomic check-and-take.
    Safe,
}

/// The shop's state: one SKU's stock and its order counter.
#[derive(Debug)]
pub struct Shop {
    variant: Variant,
    stock: AtomicI64,
    orders: AtomicU64,
    /// Orders placed, whatever the stock said (what the shop believes it sold).
    units_sold: AtomicU64,
    /// The orders since the last Restock, as ListOrders shows them.
    book: Mutex<Vec<pb::PlacedOrder>>,
}

impl Shop {
    pub fn new(variant: Variant, stock: i64) -> Arc<Self> {
        Arc::new(Self {
            variant,
            stock: AtomicI64::new(stock),
            orders: AtomicU64::new(0),
            units_sold: AtomicU64::new(0),
            book: Mutex::new(Vec::new()),
        })
    }

    pub fn stock(&self) -> i64 {
        self.stock.load(Ordering::SeqCst)
    }

    pub fn units_sold(&self) -> u64 {
        self.units_sold.load(Ordering::SeqCst)
    }

    /// The order an idempotency key already placed, answered again (nothing taken; a scan, not
    /// atomic with the decrement: a test double's deduplication).
    fn replayed(&self, order: &pb::OrderRequest) -> Option<pb::OrderReply> {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let placed = book
            .iter()
            .find(|o| o.idempotency_key == order.idempotency_key)?;
        Some(pb::OrderReply {
            status: pb::order_reply::Status::Confirmed as i32,
            order_ref: placed.order_ref.clone(),
            remaining: self.stock(),
        })
    }

    fn confirm(&self, order: &pb::OrderRequest, remaining: i64) -> pb::OrderReply {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.orders.fetch_add(1, Ordering::SeqCst) + 1;
        self.units_sold
            .fetch_add(u64::from(order.qty), Ordering::SeqCst);
        let order_ref = format!("ord-{n}");
        book.push(pb::PlacedOrder {
            order_ref: order_ref.clone(),
            customer: order.customer.clone(),
            qty: order.qty,
            idempotency_key: order.idempotency_key.clone(),
        });
        pb::OrderReply {
            status: pb::order_reply::Status::Confirmed as i32,
            order_ref,
            remaining,
        }
    }
}

fn sold_out(available: i64) -> Status {
    Status::failed_precondition(format!("sold out: {available} left"))
}

#[tonic::async_trait]
impl pb::orders_server::Orders for Arc<Shop> {
    async fn place_order(
        &self,
        request: Request<pb::OrderRequest>,
    ) -> Result<Response<pb::OrderReply>, Status> {
        let order = request.into_inner();
        if order.qty == 0 || order.customer.is_empty() || order.idempotency_key.is_empty() {
            return Err(Status::invalid_argument(
                "customer, qty and idempotency_key are required",
            ));
        }
        if order.sku != "A1" {
            return Err(Status::not_found(format!("no SKU {}", order.sku)));
        }
        if order.customer == HUGE_REPLY_CUSTOMER {
            // A fault for the driver's reply-size cap: a reply far over 64 KiB.
            return Ok(Response::new(pb::OrderReply {
                status: pb::order_reply::Status::Confirmed as i32,
                order_ref: "x".repeat(200 * 1024),
                remaining: 0,
            }));
        }
        if let Some(reply) = self.replayed(&order) {
            return Ok(Response::new(reply));
        }
        let qty = i64::from(order.qty);
        match self.variant {
            Variant::Buggy => {
                let available = self.stock.load(Ordering::SeqCst);
                if available < qty {
                    return Err(sold_out(available));
                }
                // The "database" round trip between the check and the write.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let remaining = self.stock.fetch_sub(qty, Ordering::SeqCst) - qty;
                Ok(Response::new(self.confirm(&order, remaining)))
            }
            Variant::Safe => {
                let taken = self
                    .stock
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                        (s >= qty).then_some(s - qty)
                    });
                match taken {
                    Ok(before) => Ok(Response::new(self.confirm(&order, before - qty))),
                    Err(available) => Err(sold_out(available)),
                }
            }
        }
    }

    type WatchOrdersStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::OrderReply, Status>> + Send>>;

    async fn watch_orders(
        &self,
        _request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchOrdersStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::empty())))
    }

    async fn list_orders(
        &self,
        _request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersReply>, Status> {
        let orders = self.book.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(Response::new(pb::ListOrdersReply { orders }))
    }
}

#[tonic::async_trait]
impl pb::inventory_server::Inventory for Arc<Shop> {
    async fn get_inventory(
        &self,
        request: Request<pb::InventoryRequest>,
    ) -> Result<Response<pb::InventoryReply>, Status> {
        Ok(Response::new(pb::InventoryReply {
            sku: request.into_inner().sku,
            available: self.stock(),
        }))
    }

    async fn restock(
        &self,
        request: Request<pb::RestockRequest>,
    ) -> Result<Response<pb::InventoryReply>, Status> {
        let restock = request.into_inner();
        if restock.available < 0 {
            return Err(Status::invalid_argument("available must not be negative"));
        }
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.clear();
        self.stock.store(restock.available, Ordering::SeqCst);
        self.orders.store(0, Ordering::SeqCst);
        self.units_sold.store(0, Ordering::SeqCst);
        Ok(Response::new(pb::InventoryReply {
            sku: restock.sku,
            available: restock.available,
        }))
    }
}

/// A shop serving on 127.0.0.1 (an ephemeral port) on a thread of its own; told to stop when
/// dropped (not waited for: its graceful shutdown waits for the clients' connections, which
/// may belong to the runtime of the test that is dropping it).
pub struct RunningShop {
    pub shop: Arc<Shop>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningShop {
    /// Starts `variant` with `stock` units; with `reflection`, it also serves
    /// grpc.reflection.v1 and v1alpha.
    pub fn start(variant: Variant, stock: i64, reflection: bool) -> Self {
        let shop = Shop::new(variant, stock);
        let served = shop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the shop");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind :0");
                ready_tx
                    .send(listener.local_addr().expect("its address"))
                    .ok();
                let mut router = tonic::transport::Server::builder()
                    .add_service(pb::orders_server::OrdersServer::new(served.clone()))
                    .add_service(pb::inventory_server::InventoryServer::new(served));
                if reflection {
                    let v1 = tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(DESCRIPTOR)
                        .build_v1()
                        .expect("reflection v1");
                    let v1alpha = tonic_reflection::server::Builder::configure()
                        .register_encoded_file_descriptor_set(DESCRIPTOR)
                        .build_v1alpha()
                        .expect("reflection v1alpha");
                    router = router.add_service(v1).add_service(v1alpha);
                }
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("the shop serves");
            });
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the shop is listening");
        Self {
            shop,
            addr,
            stop: Some(stop),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningShop {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An address where nothing listens (bound, then released).
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("its address")
}

/// The driver's flags that describe this checkout (calls, rules, stock, reset; neither target
/// nor `--proto`), as docs/custom.md shows them.
pub fn checkout_flags() -> Vec<String> {
    [
        "--call",
        "shop.v1.Orders/PlaceOrder",
        "--data",
        r#"{"customer":"{{user}}","sku":"A1","qty":{{quantity}},"idempotency_key":"{{request_id}}"}"#,
        "--purchased",
        r#"reply.status == "CONFIRMED""#,
        "--sold-out",
        "code == FAILED_PRECONDITION",
        "--order-id-field",
        "order_ref",
        "--stock-call",
        "shop.v1.Inventory/GetInventory",
        "--stock-data",
        r#"{"sku":"A1"}"#,
        "--stock-field",
        "available",
        "--reset-call",
        "shop.v1.Inventory/Restock",
        "--reset-data",
        r#"{"sku":"A1","available":{{stock}}}"#,
    ]
    .map(String::from)
    .to_vec()
}
