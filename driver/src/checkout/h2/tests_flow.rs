//! The lean client's stream limit and flow control against `h2` servers that advertise
//! MAX_CONCURRENT_STREAMS = 2, or a 10-byte stream window and small frames, with messages
//! larger than the connection's default window in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flashsale::pb;
use http::Response;
use prost::Message;
use tokio::net::TcpListener;

use super::LeanClient;
use super::tests::{connect, framed, reply_bytes, trailers};

/// Streams open now and at most, as the double counts them.
#[derive(Default)]
struct Count {
    open: AtomicUsize,
    max: AtomicUsize,
}

/// A server configured by `builder` whose replies echo each request's `request_id`, each
/// stream held open for `hold` (its service time).
async fn echo(builder: h2::server::Builder, hold: Duration) -> (String, Arc<Count>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(Count::default());
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut conn = builder.handshake::<_, bytes::Bytes>(tcp).await.unwrap();
            let count = Arc::clone(&counted);
            tokio::spawn(async move {
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    let open = count.open.fetch_add(1, Ordering::SeqCst) + 1;
                    count.max.fetch_max(open, Ordering::SeqCst);
                    let count = Arc::clone(&count);
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        let mut data = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            data.extend_from_slice(&chunk);
                        }
                        let request = pb::PurchaseRequest::decode(&data[5..]).unwrap();
                        tokio::time::sleep(hold).await;
                        let ok = Response::builder().status(200).body(()).unwrap();
                        let mut send = respond.send_response(ok, false).unwrap();
                        let reply = framed(&reply_bytes(&request.request_id));
                        count.open.fetch_sub(1, Ordering::SeqCst);
                        send.send_data(reply, false).unwrap();
                        send.send_trailers(trailers("0")).unwrap();
                    });
                }
            });
        }
    });
    (url, count)
}

/// `n` concurrent calls on clones of `client`, each with a `request_id` of `size` bytes; the
/// ids that came back, in order.
async fn calls(client: &LeanClient, n: usize, size: usize) -> Vec<String> {
    let calls = (0..n).map(|i| {
        let mut client = client.clone();
        async move {
            let uri = client.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
            let request = pb::PurchaseRequest {
                user_id: "u".into(),
                quantity: 1,
                request_id: format!("{i:0>size$}"),
                round: 0,
            };
            let reply = client
                .unary::<pb::PurchaseReply>(&uri, &request, Duration::from_secs(10))
                .await;
            reply.map(|r| r.order_id).unwrap_or_else(|e| format!("{e}"))
        }
    });
    futures::future::join_all(calls).await
}

fn expected(n: usize, size: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i:0>size$}")).collect()
}

#[tokio::test]
async fn calls_wait_for_the_server_s_stream_limit() {
    let mut builder = h2::server::Builder::new();
    builder.max_concurrent_streams(2);
    let (url, count) = echo(builder, Duration::from_millis(1)).await;
    let client = connect(&url).await;
    // The server refuses streams above its limit: a call that did not wait would fail.
    assert_eq!(calls(&client, 50, 4).await, expected(50, 4));
    assert_eq!(
        count.max.load(Ordering::SeqCst),
        2,
        "never more than 2 open"
    );
}

#[tokio::test]
async fn tiny_windows_and_frames_still_carry_every_call() {
    let mut builder = h2::server::Builder::new();
    builder.initial_window_size(10).max_frame_size(16_384);
    let (url, _) = echo(builder, Duration::ZERO).await;
    let client = connect(&url).await;
    // Each message takes several WINDOW_UPDATEs of its stream.
    assert_eq!(calls(&client, 20, 40).await, expected(20, 40));

    // Messages larger than a frame and, together, than the connection's window (65,535).
    let (url, _) = echo(h2::server::Builder::new(), Duration::ZERO).await;
    let client = connect(&url).await;
    assert_eq!(calls(&client, 8, 20_000).await, expected(8, 20_000));
}
