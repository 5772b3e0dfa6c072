//! `/metrics` end to end: a server with metrics on 127.0.0.1:0, real gRPC calls, then a
//! scrape over a raw HTTP/1.1 GET, parsed and checked against the calls made.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::{ServerConfig, spawn_with_metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// `GET /metrics` over a fresh connection: the status line and the body.
async fn scrape(addr: SocketAddr) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Every sample line of `text`: `name{labels}` to its value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn purchase(user: &str, quantity: u32) -> pb::PurchaseRequest {
    pb::PurchaseRequest {
        user_id: user.into(),
        quantity,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_rpcs_by_method_and_code_and_reads_the_round() {
    let server = spawn_with_metrics(ServerConfig {
        latency: Duration::ZERO,
        stock: 5,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let metrics = server.metrics_addr().unwrap();
    let mut client = CheckoutClient::connect(server.url()).await.unwrap();
    let invalid = client.purchase_safe(purchase("", 1)).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    for user in 0..8 {
        client
            .purchase_safe(purchase(&format!("u{user}"), 1))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        client.get_stock(pb::GetStockRequest {}).await.unwrap();
    }

    let (status, text) = scrape(metrics).await;
    assert!(status.contains("200"), "{status}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let get = |k: &str| {
        s.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    let safe = "flashsale.v1.Checkout/PurchaseSafe";
    assert_eq!(
        get(&format!(
            "flashsale_rpc_requests_total{{method=\"{safe}\",code=\"OK\"}}"
        )),
        8.0
    );
    assert_eq!(
        get(&format!(
            "flashsale_rpc_requests_total{{method=\"{safe}\",code=\"INVALID_ARGUMENT\"}}"
        )),
        1.0
    );
    assert_eq!(
        get("flashsale_rpc_requests_total{method=\"flashsale.v1.Checkout/GetStock\",code=\"OK\"}"),
        3.0
    );
    assert_eq!(
        get("flashsale_rpc_requests_total{method=\"flashsale.v1.Checkout/Reset\",code=\"OK\"}"),
        0.0,
        "every label set exists from the start"
    );
    assert_eq!(
        get(&format!(
            "flashsale_rpc_duration_seconds_count{{method=\"{safe}\"}}"
        )),
        9.0
    );
    assert_eq!(
        get(&format!(
            "flashsale_rpc_duration_seconds_bucket{{le=\"+Inf\",method=\"{safe}\"}}"
        )),
        9.0
    );
    assert_eq!(get("flashsale_rpc_in_flight"), 0.0);
    // Five units for sale, eight buyers of one: five orders, the stock at zero.
    assert_eq!(get("flashsale_orders"), 5.0);
    assert_eq!(get("flashsale_units_sold"), 5.0);
    assert_eq!(get("flashsale_stock"), 0.0);
    assert_eq!(get("flashsale_initial_stock"), 5.0);
    assert_eq!(get("flashsale_round"), 1.0);
    assert_eq!(get("flashsale_strategy{strategy=\"atomic\"}"), 1.0);
    assert_eq!(get("flashsale_store_up"), 1.0);
    server.shutdown().await.unwrap();
}
