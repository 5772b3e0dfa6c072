//! The original demo's checkout as an HTTP/JSON service (axum), for the driver's HTTP transport
//! and its custom-checkout audit: `POST /api/v1/checkout/buggy` (reads the stock, awaits a
//! simulated database latency, then decrements: oversells under load), `POST
//! /api/v1/checkout/safe` (an atomic check-and-decrement), `GET /api/v1/debug/stock`, `POST
//! /api/v1/debug/reset` (`{"stock": N}`) and `GET /api/v1/debug/orders` (the orders since the
//! reset: `{"orders":[{"order_id","user","qty","request_id"}]}`, the user and request id as the
//! purchase's body gave them). A purchase whose `request_id` is in the book is answered that
//! order and takes nothing. Replies as the demo's: 200
//! `{"status":"success","remaining":N,"order_id":"o-7"}`, 409 `{"status":"sold_out"}`.
//!
//! Served over HTTP/1.1 and HTTP/2 (prior knowledge or ALPN) on one port, plaintext or TLS.
//! [`Fault`]s make it a double that misbehaves in one way.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// How the checkout misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// `POST /api/v1/debug/reset` answers 200 and changes nothing.
    ResetIgnored,
    /// Every `every`-th safe purchase is applied, then answered with a 500.
    ErrorAfterApply {
        every: u64,
    },
    /// Purchases answer 200 with a body of 100 KiB.
    HugeReply,
    /// The order listing leaves out the first order (an acknowledged one).
    ListingOmitsFirst,
    /// The order listing shows one more order, which nobody sent.
    ListingGhost,
}

/// How the checkout is served.
pub struct Options {
    pub stock: i64,
    /// The simulated database latency of a purchase.
    pub latency: Duration,
    pub fault: Fault,
    /// (certificate chain, key) as PEM: serve TLS.
    pub tls: Option<(String, String)>,
    /// With TLS: clients must present a certificate this CA (PEM) signed.
    pub client_ca: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stock: 100,
            latency: Duration::from_millis(5),
            fault: Fault::None,
            tls: None,
            client_ca: None,
        }
    }
}

/// The checkout's state.
pub struct Shop {
    pub stock: AtomicI64,
    /// Purchases applied.
    pub orders: AtomicU64,
    /// Purchase requests received.
    pub requests: AtomicU64,
    /// The headers of the last purchase request.
    pub last_headers: Mutex<HeaderMap>,
    /// The orders since the reset, as the listing shows them.
    pub book: Mutex<Vec<Value>>,
    latency: Duration,
    fault: Fault,
}

/// A running checkout; stops when dropped.
pub struct HttpCheckout {
    pub addr: SocketAddr,
    pub shop: Arc<Shop>,
    stop: watch::Sender<bool>,
}

impl HttpCheckout {
    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub fn stock(&self) -> i64 {
        self.shop.stock.load(Ordering::SeqCst)
    }
}

impl Drop for HttpCheckout {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts the checkout on a loopback port.
pub async fn serve(options: Options) -> HttpCheckout {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    serve_on(any_port, options).await.unwrap()
}

/// Starts the checkout on `addr`.
pub async fn serve_on(addr: SocketAddr, options: Options) -> std::io::Result<HttpCheckout> {
    let shop = Arc::new(Shop {
        stock: AtomicI64::new(options.stock),
        orders: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        last_headers: Mutex::new(HeaderMap::new()),
        book: Mutex::new(Vec::new()),
        latency: options.latency,
        fault: options.fault,
    });
    let router = Router::new()
        .route("/api/v1/checkout/buggy", post(buggy))
        .route("/api/v1/checkout/safe", post(safe))
        .route("/api/v1/debug/stock", get(stock))
        .route("/api/v1/debug/reset", post(reset))
        .route("/api/v1/debug/orders", get(orders))
        .with_state(shop.clone());
    let client_ca = options.client_ca;
    let acceptor = options
        .tls
        .map(|(cert, key)| acceptor(&cert, &key, client_ca.as_deref()));
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (socket, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                _ = stopped.changed() => return,
            };
            let _ = socket.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let acceptor = acceptor.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let served = async {
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(socket).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        }
                    }
                };
                tokio::select! {
                    _ = served => {}
                    _ = stopped.changed() => {}
                }
            });
        }
    });
    Ok(HttpCheckout { addr, shop, stop })
}

fn acceptor(cert: &str, key: &str, client_ca: Option<&str>) -> TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// A purchase's body: `{"user": "...", "qty": N}` (qty defaults to 1).
fn quantity(body: &Value) -> Option<i64> {
    match body.get("qty") {
        None => Some(1),
        Some(q) => q.as_i64().filter(|q| *q > 0),
    }
}

fn note(shop: &Shop, headers: HeaderMap) {
    shop.requests.fetch_add(1, Ordering::SeqCst);
    *shop.last_headers.lock().unwrap() = headers;
}

type Answer = (StatusCode, Json<Value>);

fn bad_request() -> Answer {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "bad_request"})),
    )
}

fn sold(shop: &Shop, remaining: i64, body: &Value, qty: i64) -> Answer {
    let n = {
        // Numbered and booked in one step, so that the book is in the order placed.
        let mut book = shop.book.lock().unwrap();
        let n = shop.orders.fetch_add(1, Ordering::SeqCst) + 1;
        book.push(json!({
            "order_id": format!("o-{n}"),
            "user": body.get("user").cloned().unwrap_or(Value::Null),
            "qty": qty,
            "request_id": body.get("request_id").cloned().unwrap_or(Value::Null),
        }));
        n
    };
    if shop.fault == Fault::HugeReply {
        let padding = "x".repeat(100 * 1024);
        return (
            StatusCode::OK,
            Json(json!({"status": "success", "remaining": remaining, "padding": padding})),
        );
    }
    if let Fault::ErrorAfterApply { every } = shop.fault
        && n.is_multiple_of(every.max(1))
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"status": "error", "detail": "database timeout"})),
        );
    }
    (
        StatusCode::OK,
        Json(json!({"status": "success", "remaining": remaining, "order_id": format!("o-{n}")})),
    )
}

fn sold_out(remaining: i64) -> Answer {
    (
        StatusCode::CONFLICT,
        Json(json!({"status": "sold_out", "remaining": remaining})),
    )
}

/// A purchase whose request id is already in the book is answered that order and takes
/// nothing (the contract's deduplication; a linear scan, and not atomic with the decrement:
/// two tries of one request in flight together may both buy, which a demo may leave be).
fn replayed(shop: &Shop, body: &Value) -> Option<Answer> {
    let id = body.get("request_id").and_then(Value::as_str)?;
    if id.is_empty() {
        return None;
    }
    let book = shop.book.lock().unwrap();
    let order = book.iter().find(|o| o["request_id"].as_str() == Some(id))?;
    Some((
        StatusCode::OK,
        Json(json!({
            "status": "success",
            "remaining": shop.stock.load(Ordering::SeqCst),
            "order_id": order["order_id"].clone(),
        })),
    ))
}

/// The demo's naive handler: check, wait for the "database", then decrement.
async fn buggy(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Json<Value>) -> Answer {
    note(&shop, headers);
    let Some(qty) = quantity(&body) else {
        return bad_request();
    };
    if let Some(answer) = replayed(&shop, &body) {
        return answer;
    }
    let seen = shop.stock.load(Ordering::SeqCst);
    if seen < qty {
        return sold_out(seen);
    }
    tokio::time::sleep(shop.latency).await;
    let remaining = shop.stock.fetch_sub(qty, Ordering::SeqCst) - qty;
    sold(&shop, remaining, &body, qty)
}

/// The fix: the check and the decrement are one atomic step.
async fn safe(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Json<Value>) -> Answer {
    note(&shop, headers);
    let Some(qty) = quantity(&body) else {
        return bad_request();
    };
    if let Some(answer) = replayed(&shop, &body) {
        return answer;
    }
    tokio::time::sleep(shop.latency).await;
    match shop
        .stock
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
            (s >= qty).then_some(s - qty)
        }) {
        Ok(before) => sold(&shop, before - qty, &body, qty),
        Err(now) => sold_out(now),
    }
}

async fn stock(State(shop): State<Arc<Shop>>) -> Json<Value> {
    Json(json!({
        "remaining": shop.stock.load(Ordering::SeqCst),
        "orders": shop.orders.load(Ordering::SeqCst),
    }))
}

async fn reset(State(shop): State<Arc<Shop>>, body: Json<Value>) -> Answer {
    let Some(stock) = body.get("stock").and_then(Value::as_i64) else {
        return bad_request();
    };
    if shop.fault != Fault::ResetIgnored {
        shop.stock.store(stock, Ordering::SeqCst);
        let mut book = shop.book.lock().unwrap();
        book.clear();
        shop.orders.store(0, Ordering::SeqCst);
    }
    (
        StatusCode::OK,
        Json(json!({"status": "reset", "remaining": stock})),
    )
}

/// The orders since the reset, with the listing faults applied.
async fn orders(State(shop): State<Arc<Shop>>) -> Json<Value> {
    let mut orders = shop.book.lock().unwrap().clone();
    match shop.fault {
        Fault::ListingOmitsFirst if !orders.is_empty() => {
            orders.remove(0);
        }
        Fault::ListingGhost => orders.push(json!({
            "order_id": "o-ghost",
            "user": "somebody-else",
            "qty": 1,
            "request_id": "somebody-else.0",
        })),
        _ => {}
    }
    Json(json!({ "orders": orders }))
}

/// The purchase body the README shows.
pub const BODY: &str = r#"{"user":"{{user}}","qty":{{quantity}}}"#;
/// The same with the request id, which the order listing reports back.
pub const BODY_WITH_REQUEST_ID: &str =
    r#"{"user":"{{user}}","qty":{{quantity}},"request_id":"{{request_id}}"}"#;

/// The driver's flags for this checkout at `target`, buying through
/// `/api/v1/checkout/{mode}` with `body`, `users` users and a stock of 40, as the README shows
/// them (each test adds what it varies: `--http2`, `--order-id-field`, TLS).
pub fn demo_flags(target: &str, mode: &str, body: &str, users: u32) -> Vec<String> {
    let post = format!("/api/v1/checkout/{mode}");
    let users = users.to_string();
    [
        "--target",
        target,
        "--http-post",
        &post,
        "--body",
        body,
        "--sold-out",
        "code == 409",
        "--stock-url",
        "/api/v1/debug/stock",
        "--stock-field",
        "remaining",
        "--reset-url",
        "/api/v1/debug/reset",
        "--reset-body",
        r#"{"stock":{{stock}}}"#,
        "-u",
        &users,
        "--stock",
        "40",
        "--settle",
        "1s",
        "--timeout",
        "20s",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// The flags of this checkout's order listing (`GET /api/v1/debug/orders`).
pub const LISTING: [&str; 12] = [
    "--orders-url",
    "/api/v1/debug/orders",
    "--orders-list",
    "orders",
    "--orders-order-id",
    "order_id",
    "--orders-user",
    "user",
    "--orders-quantity",
    "qty",
    "--orders-request-id",
    "request_id",
];
