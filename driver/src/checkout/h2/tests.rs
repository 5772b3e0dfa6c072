//! The lean client against a fault-injecting HTTP/2 double (a raw `h2` server on :0) that
//! answers each call as its `user_id` says: a good reply, a status, a broken frame, a reset.

use std::time::Duration;

use bytes::Bytes;
use flashsale::pb;
use http::{HeaderMap, Response, StatusCode};
use prost::Message;
use tokio::net::TcpListener;
use tonic::Code;

use super::{CallError, LeanClient, MAX_REPLY_BYTES};
use crate::spec::Metadata;

pub(super) fn reply_bytes(order_id: &str) -> Vec<u8> {
    pb::PurchaseReply {
        outcome: pb::Outcome::Purchased as i32,
        order_id: order_id.into(),
        stock_after: 7,
        quantity: 1,
        round: 1,
    }
    .encode_to_vec()
}

pub(super) fn framed(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

pub(super) fn trailers(status: &str) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", status.parse().unwrap());
    t
}

/// Serves every connection: each request is answered as its user id asks; `close` drops the
/// connection it came on.
pub(super) async fn double() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    (url, task)
}

async fn serve(tcp: tokio::net::TcpStream) {
    {
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            let (parts, mut body) = request.into_parts();
            let mut data = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                data.extend_from_slice(&chunk);
            }
            let request = pb::PurchaseRequest::decode(&data[5..]).unwrap();
            // The request carried the run's metadata and deadline.
            assert_eq!(parts.headers["x-run"], "r1");
            assert_eq!(parts.headers["grpc-timeout"], "5000000u");
            assert_eq!(parts.uri.path(), "/flashsale.v1.Checkout/PurchaseSafe");
            let ok = Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            match request.user_id.as_str() {
                "good" | "split" => {
                    let mut send = respond.send_response(ok, false).unwrap();
                    let body = framed(&reply_bytes(&request.request_id));
                    if request.user_id == "split" {
                        send.send_data(body.slice(..3), false).unwrap();
                        send.send_data(body.slice(3..), false).unwrap();
                    } else {
                        send.send_data(body, false).unwrap();
                    }
                    send.send_trailers(trailers("0")).unwrap();
                }
                "trailers-only" => {
                    let mut only = Response::builder().status(200);
                    only = only.header("grpc-status", "9");
                    respond.send_response(only.body(()).unwrap(), true).unwrap();
                }
                "http-503" => {
                    let r = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
                    respond.send_response(r.body(()).unwrap(), true).unwrap();
                }
                "refused" => respond.send_reset(h2::Reason::REFUSED_STREAM),
                "no-status" => {
                    let mut send = respond.send_response(ok, false).unwrap();
                    send.send_data(framed(&reply_bytes("o")), true).unwrap();
                }
                "compressed" | "short" | "two" | "huge" => {
                    let mut body = framed(&reply_bytes("o")).to_vec();
                    match request.user_id.as_str() {
                        "compressed" => body[0] = 1,
                        "short" => body.truncate(body.len() - 1),
                        "two" => body.extend_from_within(..),
                        _ => body = vec![0; MAX_REPLY_BYTES + 1],
                    }
                    let mut send = respond.send_response(ok, false).unwrap();
                    let _ = send.send_data(body.into(), false);
                    let _ = send.send_trailers(trailers("0"));
                }
                "error-status" => {
                    let mut send = respond.send_response(ok, false).unwrap();
                    send.send_trailers(trailers("14")).unwrap();
                }
                "silent" => {
                    // Never answers: the caller's own timeout ends the call.
                    std::mem::forget(respond);
                }
                "close" => return,
                other => panic!("unexpected user {other}"),
            }
        }
    }
}

/// One PurchaseSafe call as `user`, with a 5 s deadline.
pub(super) async fn call(
    client: &mut LeanClient,
    user: &str,
) -> Result<pb::PurchaseReply, CallError> {
    let uri = client.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
    let request = pb::PurchaseRequest {
        user_id: user.into(),
        quantity: 1,
        request_id: format!("{user}.0"),
        round: 0,
    };
    client.unary(&uri, &request, Duration::from_secs(5)).await
}

/// A client of `url` without metadata.
pub(super) async fn connect(url: &str) -> LeanClient {
    let timeout = Duration::from_secs(5);
    LeanClient::connect(url, &Metadata::default(), timeout)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_answer_comes_to_the_right_outcome() {
    let (url, _server) = double().await;
    let metadata = Metadata::parse(&["x-run: r1"]).unwrap();
    let timeout = Duration::from_secs(5);
    let mut client = LeanClient::connect(&url, &metadata, timeout).await.unwrap();

    let good = call(&mut client, "good").await.unwrap();
    assert_eq!((good.order_id.as_str(), good.stock_after), ("good.0", 7));
    let split = call(&mut client, "split").await.unwrap();
    assert_eq!(split.order_id, "split.0");

    let status = |code| Err(CallError::Status(code));
    assert_eq!(
        call(&mut client, "trailers-only").await,
        status(Code::FailedPrecondition)
    );
    assert_eq!(
        call(&mut client, "http-503").await,
        status(Code::Unavailable)
    );
    // Refused (never processed): retried once, refused again.
    assert_eq!(
        call(&mut client, "refused").await,
        status(Code::Unavailable)
    );
    assert_eq!(client.retried(), 1);
    assert_eq!(call(&mut client, "no-status").await, status(Code::Unknown));
    assert_eq!(
        call(&mut client, "error-status").await,
        status(Code::Unavailable)
    );
    for broken in ["compressed", "short", "two"] {
        assert_eq!(
            call(&mut client, broken).await,
            status(Code::Internal),
            "{broken}"
        );
    }
    assert_eq!(
        call(&mut client, "huge").await,
        status(Code::ResourceExhausted)
    );

    // Concurrent calls on clones of one connection, and a silent stream that times out
    // without holding the others up.
    let mut silent = client.clone();
    let stuck = tokio::time::timeout(Duration::from_millis(200), call(&mut silent, "silent"));
    let calls = (0..50).map(|_| {
        let mut c = client.clone();
        async move { call(&mut c, "good").await.map(|r| r.order_id) }
    });
    let (stuck, replies) = tokio::join!(stuck, futures::future::join_all(calls));
    assert!(stuck.is_err(), "the silent stream must not answer");
    assert!(replies.iter().all(|r| r.as_deref() == Ok("good.0")));
}

#[tokio::test]
async fn a_dead_target_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let timeout = Duration::from_secs(5);
    let err = LeanClient::connect(&url, &Metadata::default(), timeout)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let https = LeanClient::connect("https://x:1", &Metadata::default(), timeout).await;
    assert!(https.is_err());
}

#[tokio::test]
async fn a_lost_connection_is_replaced_once_and_a_dead_target_fails_fast() {
    let (url, server) = double().await;
    let timeout = Duration::from_secs(5);
    let mut client = LeanClient::connect(&url, &Metadata::parse(&["x-run: r1"]).unwrap(), timeout)
        .await
        .unwrap();
    let mut other = client.clone();
    // The server drops the connection mid-call: the call's fate is unknown.
    let lost = call(&mut client, "close").await;
    assert!(
        matches!(lost, Err(CallError::Status(Code::Unknown | Code::Internal))),
        "{lost:?}"
    );
    // Both users go on over one new connection.
    assert_eq!(call(&mut client, "good").await.unwrap().order_id, "good.0");
    assert_eq!(call(&mut other, "good").await.unwrap().order_id, "good.0");
    assert_eq!(client.generation, other.generation);
    assert_eq!(client.generation, 1);

    // The target goes away for good: calls are UNAVAILABLE (never sent), and they yield.
    server.abort();
    let _ = server.await;
    let _ = call(&mut client, "close").await;
    for _ in 0..3 {
        let dead = call(&mut client, "good").await;
        assert_eq!(dead, Err(CallError::Status(Code::Unavailable)));
    }
}
