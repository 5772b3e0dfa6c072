//! Requests that are not gRPC, messages that do not decode or come twice, connections that
//! never speak HTTP/2 or go idle.

use std::time::{Duration, Instant};

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::hardening::Hardening;
use prost::Message;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use crate::support::{Local, RawReply, frame, h2_connect, raw_call};

const PURCHASE: &str = "/flashsale.v1.Checkout/PurchaseSafe";

fn purchase() -> Vec<u8> {
    pb::PurchaseRequest {
        user_id: "raw".into(),
        quantity: 1,
        ..Default::default()
    }
    .encode_to_vec()
}

async fn stock(server: &Local) -> pb::StockReply {
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    CheckoutClient::new(channel)
        .get_stock(pb::GetStockRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn what_is_not_grpc_is_refused_and_changes_nothing() {
    let server = Local::start(Hardening::default()).await;
    let before = stock(&server).await;
    let h2 = h2_connect(server.addr).await;
    let call = |method: &'static str, content_type: &'static str, body: Vec<u8>| {
        raw_call(&h2, server.addr, method, PURCHASE, content_type, body)
    };
    for content_type in [
        "text/plain",
        "application/json",
        "application/grpc+json",
        "",
    ] {
        let reply = call("POST", content_type, frame(&purchase())).await;
        assert_eq!(reply.http, 415, "content-type {content_type:?}");
        assert_eq!(reply.grpc_status, None);
    }
    let reply = call("GET", "application/grpc", Vec::new()).await;
    assert_eq!(reply.http, 405);
    let reply = call("PUT", "application/grpc", frame(&purchase())).await;
    assert_eq!(reply.http, 405);
    assert_eq!(stock(&server).await, before, "nothing was bought");

    // The same purchase as gRPC is served.
    let ok = call("POST", "application/grpc", frame(&purchase())).await;
    assert_eq!(
        ok,
        RawReply {
            http: 200,
            grpc_status: Some(0)
        }
    );
    let ok = call("POST", "application/grpc+proto", frame(&purchase())).await;
    assert_eq!(ok.grpc_status, Some(0));
    assert_eq!(stock(&server).await.orders, before.orders + 2);
    server.stop().await;
}

#[tokio::test]
async fn malformed_or_repeated_messages_are_invalid_argument() {
    let server = Local::start(Hardening::default()).await;
    let before = stock(&server).await;
    let h2 = h2_connect(server.addr).await;
    let call =
        |body: Vec<u8>| raw_call(&h2, server.addr, "POST", PURCHASE, "application/grpc", body);
    // A field header announcing 100 bytes of user_id that never come.
    let garbage = call(frame(&[0x0a, 100, b'x'])).await;
    assert_eq!(garbage.grpc_status, Some(3), "{garbage:?}");
    let garbage = call(frame(&[0xff; 16])).await;
    assert_eq!(garbage.grpc_status, Some(3), "{garbage:?}");
    let mut twice = frame(&purchase());
    twice.extend(frame(&purchase()));
    let reply = call(twice).await;
    assert_eq!(reply.grpc_status, Some(3), "{reply:?}");
    assert_eq!(stock(&server).await, before, "nothing was bought");
    server.stop().await;
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    let server = Local::start(Hardening {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        ..Hardening::default()
    })
    .await;
    // Never sends the HTTP/2 preface.
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 64];
    // The server speaks first (its SETTINGS); read until it closes.
    let closed = async {
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("closed by the server");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    eprintln!("silent connection closed after {took:?} (handshake timeout 300ms)");

    // Speaks HTTP/2, makes one call, then stays idle.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let reply = raw_call(
        &send,
        server.addr,
        "POST",
        PURCHASE,
        "application/grpc",
        frame(&purchase()),
    )
    .await;
    assert_eq!(reply.grpc_status, Some(0));
    let idle_from = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("idle connection closed by the server")
        .unwrap()
        .ok();
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(400), "closed after {idle:?}");
    eprintln!("idle connection closed after {idle:?} (idle timeout 500ms)");
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let server = Local::start(Hardening {
        max_connections: 2,
        ..Hardening::default()
    })
    .await;
    let first = h2_connect(server.addr).await;
    let second = h2_connect(server.addr).await;
    // The third is accepted and closed without a byte of HTTP/2.
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The first two are still served.
    for h2 in [&first, &second] {
        let reply = raw_call(
            h2,
            server.addr,
            "POST",
            PURCHASE,
            "application/grpc",
            frame(&purchase()),
        )
        .await;
        assert_eq!(reply.grpc_status, Some(0));
    }
    drop((first, second));
    server.stop().await;
}
