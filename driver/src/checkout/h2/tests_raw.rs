//! The lean client against a raw-TCP HTTP/2 double that writes frames by hand, for the faults
//! the `h2` crate's server cannot inject: GOAWAY between calls, PING, header blocks over
//! CONTINUATION with padding and PRIORITY frames, HPACK dynamic-table references, a malformed
//! frame, and the RST_STREAM CANCEL of a dropped call.

use std::time::Duration;

use flashsale::pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

use super::tests::{call, connect, framed, reply_bytes};
use super::{CallError, LeanClient};
use crate::spec::Metadata;

pub(super) const DATA: u8 = 0;
pub(super) const HEADERS: u8 = 1;
pub(super) const PRIORITY: u8 = 2;
pub(super) const RST_STREAM: u8 = 3;
pub(super) const SETTINGS: u8 = 4;
pub(super) const PING: u8 = 6;
pub(super) const GOAWAY: u8 = 7;
pub(super) const CONTINUATION: u8 = 9;
pub(super) const END_STREAM: u8 = 1;
pub(super) const END_HEADERS: u8 = 4;
pub(super) const PADDED: u8 = 8;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `:status 200` (static index 8), then `grpc-status: 0` as a literal with incremental
/// indexing (it becomes dynamic entry 62).
const INDEXING_HEADERS: &[u8] = &[0x88];
fn grpc_status_indexed() -> Vec<u8> {
    let mut block = vec![0x40, 11];
    block.extend_from_slice(b"grpc-status");
    block.extend_from_slice(&[1, b'0']);
    block
}

/// One accepted connection of the double.
pub(super) struct Raw {
    pub(super) tcp: TcpStream,
}

/// A request the client sent: its stream and `user_id`.
pub(super) struct Request {
    pub(super) stream: u32,
    pub(super) user: String,
}

impl Raw {
    /// Accepts a connection: reads the client's preface and sends our SETTINGS (and the
    /// acknowledgement of the client's).
    pub(super) async fn accept(listener: &TcpListener) -> Raw {
        Raw::accept_with(listener, &[]).await
    }

    /// [`Raw::accept`] advertising `settings` (6-byte entries).
    pub(super) async fn accept_with(listener: &TcpListener, settings: &[u8]) -> Raw {
        let mut raw = Raw::accept_bare(listener).await;
        let mut opening = frame(SETTINGS, 0, 0, settings);
        opening.extend(frame(SETTINGS, 1, 0, &[]));
        raw.send(&opening).await;
        raw
    }

    /// Accepts a connection and reads the client's preface; sends nothing.
    pub(super) async fn accept_bare(listener: &TcpListener) -> Raw {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut preface = [0u8; 24];
        tcp.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        Raw { tcp }
    }

    /// The next frame: (type, flags, stream, payload); `None` once the client closed.
    pub(super) async fn next(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        self.tcp.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        self.tcp.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        Some((head[3], head[4], stream, payload))
    }

    /// Reads until `n` complete requests came; other frames are checked by `other`.
    pub(super) async fn requests(
        &mut self,
        n: usize,
        mut other: impl FnMut(u8, u8, u32, &[u8]),
    ) -> Vec<Request> {
        let mut body = std::collections::HashMap::<u32, Vec<u8>>::new();
        let mut done = Vec::new();
        while done.len() < n {
            let (kind, flags, stream, payload) = self.next().await.expect("client closed");
            match kind {
                HEADERS => {
                    body.insert(stream, Vec::new());
                }
                DATA => {
                    body.get_mut(&stream).unwrap().extend_from_slice(&payload);
                    if flags & END_STREAM != 0 {
                        let bytes = body.remove(&stream).unwrap();
                        let request = pb::PurchaseRequest::decode(&bytes[5..]).unwrap();
                        done.push(Request {
                            stream,
                            user: request.user_id,
                        });
                    }
                }
                _ => other(kind, flags, stream, &payload),
            }
        }
        done
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// A good reply with `grpc-status` from the dynamic table (entry 62) when `indexed`.
    pub(super) async fn reply(&mut self, stream: u32, order_id: &str, indexed: bool) {
        let mut out = frame(HEADERS, END_HEADERS, stream, INDEXING_HEADERS);
        out.extend(frame(DATA, 0, stream, &framed(&reply_bytes(order_id))));
        let trailers = if indexed {
            vec![0xbe]
        } else {
            grpc_status_indexed()
        };
        out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &trailers));
        self.send(&out).await;
    }
}

pub(super) async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test]
async fn goaway_s_unprocessed_calls_are_retried_once_on_a_new_connection() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        let requests = raw.requests(3, |_, _, _, _| {}).await;
        let first = requests.iter().map(|r| r.stream).min().unwrap();
        // Only the first stream was processed; the others are refused by the GOAWAY.
        raw.send(&frame(GOAWAY, 0, 0, &[0, 0, 0, first as u8, 0, 0, 0, 0]))
            .await;
        raw.reply(first, "first", false).await;
        // The two refused calls come again, over one new connection, and then a third.
        let mut again = Raw::accept(&listener).await;
        for next in again.requests(2, |_, _, _, _| {}).await {
            again.reply(next.stream, "retried", false).await;
        }
        let next = again.requests(1, |_, _, _, _| {}).await;
        again.reply(next[0].stream, &next[0].user, false).await;
        // The first connection is left to drain: it closes once its last stream is done.
        assert!(raw.next_until_closed().await);
    });
    let client = connect(&url).await;
    let calls = (0..3).map(|_| {
        let mut c = client.clone();
        async move { call(&mut c, "u").await.map(|r| r.order_id) }
    });
    let results = futures::future::join_all(calls).await;
    let retried = Ok("retried".to_string());
    assert_eq!(
        results.iter().filter(|r| **r == retried).count(),
        2,
        "{results:?}"
    );
    assert!(results.contains(&Ok("first".to_string())), "{results:?}");
    assert_eq!(client.retried(), 2);
    let mut client = client;
    assert_eq!(call(&mut client, "again").await.unwrap().order_id, "again");
    assert_eq!(client.generation, 1);
    server.await.unwrap();
}

impl Raw {
    /// Reads until the client closes the connection; whether it did.
    pub(super) async fn next_until_closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[tokio::test]
async fn pings_are_answered_and_continued_padded_replies_are_read() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.send(&frame(PING, 0, 0, b"12345678")).await;
        let mut acked = false;
        let requests = raw
            .requests(1, |kind, flags, _, payload| {
                if kind == PING {
                    assert_eq!((flags, payload), (1, &b"12345678"[..]));
                    acked = true;
                }
            })
            .await;
        while !acked {
            let (kind, flags, _, payload) = raw.next().await.expect("client closed");
            acked = kind == PING && flags == 1 && payload == b"12345678";
        }
        let stream = requests[0].stream;
        // A PRIORITY frame (ignored), then the headers in three pieces, padded DATA in two
        // frames, and trailers in two pieces that reference the dynamic table.
        let mut out = frame(PRIORITY, 0, stream, &[0, 0, 0, 0, 16]);
        let mut headers = vec![0x88];
        headers.extend_from_slice(&[0x0f, 0x10, 16]);
        headers.extend_from_slice(b"application/grpc");
        out.extend(frame(
            HEADERS,
            PADDED,
            stream,
            &[[3].as_slice(), &headers[..2], &[0; 3]].concat(),
        ));
        out.extend(frame(CONTINUATION, 0, stream, &headers[2..10]));
        out.extend(frame(CONTINUATION, END_HEADERS, stream, &headers[10..]));
        let body = framed(&reply_bytes("continued"));
        out.extend(frame(
            DATA,
            PADDED,
            stream,
            &[[2].as_slice(), &body[..4], &[0, 0]].concat(),
        ));
        out.extend(frame(DATA, 0, stream, &body[4..]));
        let status = grpc_status_indexed();
        out.extend(frame(HEADERS, END_STREAM, stream, &status[..5]));
        out.extend(frame(CONTINUATION, END_HEADERS, stream, &status[5..]));
        raw.send(&out).await;
        // The second reply's trailers are dynamic entry 62.
        let again = raw.requests(1, |_, _, _, _| {}).await;
        raw.reply(again[0].stream, "indexed", true).await;
        acked
    });
    let mut client = connect(&url).await;
    assert_eq!(call(&mut client, "u").await.unwrap().order_id, "continued");
    assert_eq!(call(&mut client, "u").await.unwrap().order_id, "indexed");
    assert!(server.await.unwrap(), "the PING was not acknowledged");
}

#[tokio::test]
async fn a_dropped_call_is_cancelled_and_the_connection_keeps_serving() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        let silent = raw.requests(1, |_, _, _, _| {}).await[0].stream;
        let mut cancelled = None;
        let next = raw
            .requests(1, |kind, _, stream, payload| {
                if kind == RST_STREAM {
                    cancelled = Some((stream, payload.to_vec()));
                }
            })
            .await;
        assert_eq!(
            cancelled,
            Some((silent, vec![0, 0, 0, 8])),
            "RST_STREAM CANCEL"
        );
        // A late reply to the cancelled stream is ignored; the live one is answered.
        raw.reply(silent, "late", false).await;
        raw.reply(next[0].stream, "live", false).await;
    });
    let mut client = connect(&url).await;
    let dropped =
        tokio::time::timeout(Duration::from_millis(100), call(&mut client, "silent")).await;
    assert!(dropped.is_err());
    assert_eq!(call(&mut client, "live").await.unwrap().order_id, "live");
    server.await.unwrap();
}

#[tokio::test]
async fn a_malformed_frame_closes_the_connection_and_fails_its_calls() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.requests(1, |_, _, _, _| {}).await;
        // A SETTINGS frame of 5 bytes: FRAME_SIZE_ERROR for the whole connection.
        raw.send(&frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0])).await;
        let mut goaway = None;
        while let Some((kind, _, _, payload)) = raw.next().await {
            if kind == GOAWAY {
                goaway = Some(payload);
            }
        }
        assert_eq!(
            goaway,
            Some(vec![0, 0, 0, 0, 0, 0, 0, 6]),
            "GOAWAY FRAME_SIZE_ERROR"
        );
        // The next call comes over a new connection.
        let mut again = Raw::accept(&listener).await;
        let next = again.requests(1, |_, _, _, _| {}).await;
        again.reply(next[0].stream, "again", false).await;
    });
    let mut client = connect(&url).await;
    assert_eq!(
        call(&mut client, "u").await,
        Err(CallError::Status(Code::Internal))
    );
    assert_eq!(call(&mut client, "u").await.unwrap().order_id, "again");
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_that_does_not_speak_http2_is_a_connect_error() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        let mut sink = Vec::new();
        let _ = tcp.read_to_end(&mut sink).await;
    });
    let err = LeanClient::connect(&url, &Metadata::default(), Duration::from_secs(5)).await;
    assert!(err.is_err());
    server.abort();
}

#[tokio::test]
async fn the_connection_closes_when_its_last_user_is_gone() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        let mut goaway = None;
        while let Some((kind, _, _, payload)) = raw.next().await {
            if kind == GOAWAY {
                goaway = Some(payload);
            }
        }
        goaway
    });
    let client = connect(&url).await;
    let other = client.clone();
    drop(client);
    // One user is left: the connection still serves (the double would see no GOAWAY yet).
    assert!(!server.is_finished());
    drop(other);
    let goaway = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert_eq!(
        goaway.unwrap().unwrap(),
        Some(vec![0; 8]),
        "GOAWAY NO_ERROR, then closed"
    );
}

#[tokio::test]
async fn an_answer_before_the_whole_request_resets_the_rest_of_it() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        // A 4-byte stream window: the request's DATA waits for a WINDOW_UPDATE never sent.
        let mut raw = Raw::accept_with(&listener, &[0, 4, 0, 0, 0, 4]).await;
        let stream = loop {
            let (kind, _, stream, _) = raw.next().await.expect("client closed");
            if kind == HEADERS {
                break stream;
            }
        };
        // Trailers-only RESOURCE_EXHAUSTED (grpc-status 8), before reading the body.
        let mut only = vec![0x88];
        only.extend_from_slice(&[0x00, 11]);
        only.extend_from_slice(b"grpc-status");
        only.extend_from_slice(&[1, b'8']);
        raw.send(&frame(HEADERS, END_HEADERS | END_STREAM, stream, &only))
            .await;
        loop {
            let (kind, flags, id, payload) = raw.next().await.expect("client closed");
            assert!(kind != DATA || flags & END_STREAM == 0, "the rest was sent");
            if kind == RST_STREAM {
                return (id == stream, payload);
            }
        }
    });
    let mut client = connect(&url).await;
    let refused = call(&mut client, "u").await;
    assert_eq!(refused, Err(CallError::Status(Code::ResourceExhausted)));
    let (same, code) = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(same);
    assert_eq!(code, vec![0, 0, 0, 8], "RST_STREAM CANCEL");
}
