//! The lean client against hostile raw-TCP doubles (issue #25): PING and SETTINGS floods from a
//! server that never reads, a GOAWAY(0) loop, a PING before SETTINGS, a missing SETTINGS
//! acknowledgement, a small SETTINGS_MAX_HEADER_LIST_SIZE, a CONTINUATION flood, requests
//! taken and never read (the queued-bytes cap), 1xx responses, and violations that must be
//! named.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tonic::Code;

use super::limits::{MAX_PENDING_PING_ACKS, MAX_PENDING_SETTINGS_ACKS};
use super::tests::{call, connect, framed, reply_bytes};
use super::tests_raw::{
    CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, RST_STREAM, Raw, SETTINGS,
    frame, listener,
};
use super::{CallError, LeanClient};
use crate::spec::Metadata;

/// `frame` repeated until the client closes the connection (at most `cap` times); never reads.
/// How many were written.
async fn flood(mut raw: Raw, one: Vec<u8>, cap: usize) -> usize {
    let batch: Vec<u8> = one.repeat(1024);
    let mut sent = 0;
    while sent < cap && raw.tcp.write_all(&batch).await.is_ok() {
        sent += 1024;
    }
    sent
}

/// The cause the client's current connection recorded.
fn cause(client: &LeanClient) -> String {
    let state = client.conn.lock();
    state.stats.cause.as_deref().unwrap_or_default().to_string()
}

async fn flooded(one: Vec<u8>) -> (LeanClient, usize) {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let raw = Raw::accept(&listener).await;
        flood(raw, one, 50_000_000).await
    });
    let client = connect(&url).await;
    let sent = server.await.unwrap();
    (client, sent)
}

#[tokio::test]
async fn a_ping_flood_from_a_target_that_does_not_read_is_cut_off() {
    let (client, sent) = flooded(frame(PING, 0, 0, b"flooding")).await;
    assert!(sent < 50_000_000, "the client never cut the flood off");
    let state = client.conn.lock();
    assert!(state.closed);
    // Acknowledgements of 17 bytes, and the window update / SETTINGS ack of the opening.
    let bound = MAX_PENDING_PING_ACKS as usize * 17 + 64;
    assert!(
        state.stats.max_queued <= bound,
        "{} bytes queued",
        state.stats.max_queued
    );
    let cause = state.stats.cause.as_deref().unwrap_or_default();
    assert!(
        cause.starts_with("ENHANCE_YOUR_CALM: PING flood"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_settings_flood_from_a_target_that_does_not_read_is_cut_off() {
    let (client, sent) = flooded(frame(SETTINGS, 0, 0, &[])).await;
    assert!(sent < 50_000_000, "the client never cut the flood off");
    let state = client.conn.lock();
    let bound = MAX_PENDING_SETTINGS_ACKS as usize * 9 + 64;
    assert!(
        state.stats.max_queued <= bound,
        "{} bytes queued",
        state.stats.max_queued
    );
    let cause = state.stats.cause.as_deref().unwrap_or_default();
    assert!(
        cause.starts_with("ENHANCE_YOUR_CALM: SETTINGS flood"),
        "{cause}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_that_sends_goaway_at_once_is_redialled_with_backoff() {
    let (listener, url) = listener().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let mut raw = Raw::accept(&listener).await;
            counted.fetch_add(1, Ordering::SeqCst);
            raw.send(&frame(GOAWAY, 0, 0, &[0; 8])).await;
            open.push(raw);
        }
    });
    let mut client = connect(&url).await;
    let uri = client.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
    let request = flashsale::pb::PurchaseRequest::default();
    let window = Duration::from_secs(10);
    let start = tokio::time::Instant::now();
    let mut calls = 0;
    while start.elapsed() < window && calls < 10_000 {
        let result = client
            .unary::<flashsale::pb::PurchaseReply>(&uri, &request, Duration::from_secs(1))
            .await;
        assert_eq!(result, Err(CallError::Status(Code::Unavailable)));
        calls += 1;
    }
    // Delays of at least 50, 100, 200, 400, 800 ms, 1.6 s, then 2.5 s: at most 10 dials in
    // 10 s (without backoff, one per call).
    let dials = accepted.load(Ordering::SeqCst);
    assert!(
        (3..=11).contains(&dials),
        "{dials} connections, {calls} calls"
    );
    assert!(calls < 10_000);
}

#[tokio::test]
async fn a_ping_before_settings_in_one_read_is_refused() {
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let mut raw = Raw::accept_bare(&listener).await;
        let mut both = frame(PING, 0, 0, b"12345678");
        both.extend(frame(SETTINGS, 0, 0, &[]));
        raw.send(&both).await;
        raw.next_until_closed().await
    });
    let err = LeanClient::connect(&url, &Metadata::default(), Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the server's first frame was PING, not SETTINGS"),
        "{err}"
    );
}

#[tokio::test]
async fn settings_never_acknowledged_close_the_connection() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept_bare(&listener).await;
        raw.send(&frame(SETTINGS, 0, 0, &[])).await;
        goaway_of(&mut raw).await
    });
    let timeout = Duration::from_millis(300);
    let client = LeanClient::connect(&url, &Metadata::default(), timeout)
        .await
        .unwrap();
    assert_eq!(server.await.unwrap(), Some(vec![0, 0, 0, 0, 0, 0, 0, 4]));
    assert!(cause(&client).starts_with("SETTINGS_TIMEOUT"));
}

/// The payload of the GOAWAY the client sends before closing, if any.
async fn goaway_of(raw: &mut Raw) -> Option<Vec<u8>> {
    let mut goaway = None;
    while let Some((kind, _, _, payload)) = raw.next().await {
        if kind == GOAWAY {
            goaway = Some(payload);
        }
        assert_ne!(kind, HEADERS, "a request was sent");
    }
    goaway
}

#[tokio::test]
async fn a_request_over_the_target_s_header_list_limit_is_not_sent() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        // SETTINGS_MAX_HEADER_LIST_SIZE = 100: less than any request's.
        let mut raw = Raw::accept_with(&listener, &[0, 6, 0, 0, 0, 100]).await;
        goaway_of(&mut raw).await
    });
    let mut client = connect(&url).await;
    assert_eq!(
        call(&mut client, "u").await,
        Err(CallError::Status(Code::Internal))
    );
    drop(client);
    assert_eq!(server.await.unwrap(), Some(vec![0; 8]));
}

/// A double that answers the first request with `answer(stream)`, then reads until closed;
/// the GOAWAY the client sent.
async fn answering(
    answer: impl FnOnce(u32) -> Vec<u8> + Send + 'static,
) -> (String, tokio::task::JoinHandle<Option<Vec<u8>>>) {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        let stream = raw.requests(1, |_, _, _, _| {}).await[0].stream;
        raw.send(&answer(stream)).await;
        let mut goaway = None;
        while let Some((kind, _, _, payload)) = raw.next().await {
            if kind == GOAWAY {
                goaway = Some(payload);
            }
        }
        goaway
    });
    (url, server)
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off() {
    let (url, server) = answering(|stream| {
        let mut out = frame(HEADERS, 0, stream, &[0x88]);
        for _ in 0..100 {
            out.extend(frame(CONTINUATION, 0, stream, &[]));
        }
        out
    })
    .await;
    let mut client = connect(&url).await;
    assert_eq!(
        call(&mut client, "u").await,
        Err(CallError::Status(Code::Internal))
    );
    assert_eq!(server.await.unwrap(), Some(vec![0, 0, 0, 0, 0, 0, 0, 0xb]));
    assert!(
        cause(&client).contains("CONTINUATION frames"),
        "{}",
        cause(&client)
    );
}

#[tokio::test]
async fn informational_responses_are_skipped() {
    let (url, _server) = answering(|stream| {
        // `:status: 100` (a literal with the static name 8), then the real reply.
        let mut out = frame(HEADERS, END_HEADERS, stream, &[0x08, 3, b'1', b'0', b'0']);
        out.extend(frame(HEADERS, END_HEADERS, stream, &[0x88]));
        out.extend(frame(DATA, 0, stream, &framed(&reply_bytes("after-100"))));
        let mut status = vec![0x00, 11];
        status.extend_from_slice(b"grpc-status");
        status.extend_from_slice(&[1, b'0']);
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &status));
        out
    })
    .await;
    let mut client = connect(&url).await;
    assert_eq!(call(&mut client, "u").await.unwrap().order_id, "after-100");
}

#[tokio::test]
async fn violations_are_named() {
    // A 3-byte RST_STREAM.
    let (url, server) = answering(|stream| frame(RST_STREAM, 0, stream, &[0, 0, 8])).await;
    let mut client = connect(&url).await;
    assert_eq!(
        call(&mut client, "u").await,
        Err(CallError::Status(Code::Internal))
    );
    assert_eq!(server.await.unwrap(), Some(vec![0, 0, 0, 0, 0, 0, 0, 6]));
    assert_eq!(
        cause(&client),
        "FRAME_SIZE_ERROR: RST_STREAM frame of invalid size (3 bytes) on stream 1"
    );

    // GOAWAY PROTOCOL_ERROR with debug data (escaped): the stream above its last stream id is
    // retried once, on a new connection.
    let (listener, url) = listener().await;
    tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.requests(1, |_, _, _, _| {}).await;
        let mut payload = vec![0, 0, 0, 0, 0, 0, 0, 1];
        payload.extend_from_slice(b"bad \x1b[31m thing");
        raw.send(&frame(GOAWAY, 0, 0, &payload)).await;
        let mut again = Raw::accept(&listener).await;
        let next = again.requests(1, |_, _, _, _| {}).await;
        again.reply(next[0].stream, "again", false).await;
        again.next_until_closed().await
    });
    let mut client = connect(&url).await;
    let first = client.conn.clone();
    assert_eq!(call(&mut client, "u").await.unwrap().order_id, "again");
    assert_eq!(client.retried(), 1);
    assert_eq!(
        first.lock().stats.cause.as_deref(),
        Some("GOAWAY PROTOCOL_ERROR from the target: bad \\u{1b}[31m thing")
    );
}

#[tokio::test]
async fn a_target_that_takes_requests_without_reading_them_is_cut_off() {
    // A small receive buffer: the kernel takes little of what the double never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        // Windows as large as they go: nothing holds the requests' DATA back but the socket.
        let mut raw = Raw::accept_with(&listener, &[0, 4, 0x7f, 0xff, 0xff, 0xff]).await;
        let raise = (0x7fff_ffffu32 - 65_535).to_be_bytes();
        raw.send(&frame(super::frame::kind::WINDOW_UPDATE, 0, 0, &raise))
            .await;
        // Never reads; once the calls are queued, one PING makes the client read.
        let _ = ready.await;
        raw.send(&frame(PING, 0, 0, b"12345678")).await;
        std::future::pending::<()>().await;
    });
    let client = connect(&url).await;
    let uri = client.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
    // 24 requests of 1 MiB: more than the socket's buffers and MAX_QUEUED_BYTES together.
    let calls = (0..24).map(|_| {
        let mut client = client.clone();
        let uri = uri.clone();
        async move {
            let request = flashsale::pb::PurchaseRequest {
                user_id: "u".repeat(1 << 20),
                ..Default::default()
            };
            client
                .unary::<flashsale::pb::PurchaseReply>(&uri, &request, Duration::from_secs(5))
                .await
        }
    });
    let all = futures::future::join_all(calls);
    tokio::pin!(all);
    // One poll opens every stream (nothing waits for a stream or a window).
    assert!(futures::poll!(&mut all).is_pending());
    go.send(()).unwrap();
    let results = all.await;
    assert!(
        results
            .iter()
            .all(|r| *r == Err(CallError::Status(Code::Internal))),
        "{results:?}"
    );
    let cause = cause(&client);
    assert!(cause.starts_with("ENHANCE_YOUR_CALM: "), "{cause}");
    assert!(cause.contains("it does not read"), "{cause}");
}
