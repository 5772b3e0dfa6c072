//! Randomized tests of the frame reader and HPACK decoding (issue #25): a server's traffic
//! for a few calls, mutated (bits flipped, bytes inserted, deleted or replaced, frames
//! dropped, duplicated, swapped or invented), fed to the reader in random pieces as the I/O
//! task would, with the acknowledgements sometimes written out and sometimes not. Properties:
//! no panic; what is queued and what waits to be read stay bounded; once the connection ends,
//! every call has an outcome. Seeded, so a failure names the case that reproduces it, and
//! bounded to a fixed number of cases (about a second each in a debug build). The traffic is
//! written by hand, and captured from an `h2` server.

use std::task::{Poll, Waker};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use super::frame::{HEAD_LEN, Head, kind};
use super::headers::Decoder;
use super::reader::Reader;
use super::state::State;
use super::tests::{framed, reply_bytes};

const CASES: u64 = 3000;
/// Calls open on the connection in each case.
const CALLS: u32 = 4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A literal header with incremental indexing and a new name (RFC 7541 §6.2.1).
fn indexed_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// What a server sends for `CALLS` good calls, frame by frame: its SETTINGS and the ACK of
/// ours, then per stream response headers, the reply, trailers (indexed after the first), with
/// a PING and a WINDOW_UPDATE in between, and a GOAWAY at the end.
fn capture() -> Vec<Vec<u8>> {
    let settings = [
        0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 0xff, 0xff, 0, 5, 0, 0, 0x40, 0,
    ];
    let mut frames = vec![
        frame(kind::SETTINGS, 0, 0, &settings),
        frame(kind::SETTINGS, 1, 0, &[]),
    ];
    for (n, id) in (0..CALLS).map(|n| (n, 2 * n + 1)) {
        let mut headers = vec![0x88];
        if n == 0 {
            indexed_literal(&mut headers, b"content-type", b"application/grpc");
        } else {
            headers.push(0xbf); // dynamic entry 63: content-type, once grpc-status is 62.
        }
        frames.push(frame(kind::HEADERS, 0x4, id, &headers));
        frames.push(frame(kind::DATA, 0, id, &framed(&reply_bytes("o"))));
        let mut trailers = Vec::new();
        if n == 0 {
            indexed_literal(&mut trailers, b"grpc-status", b"0");
        } else {
            trailers.push(0xbe);
        }
        frames.push(frame(kind::HEADERS, 0x5, id, &trailers));
        frames.push(frame(kind::PING, 0, 0, b"pingpong"));
        frames.push(frame(kind::WINDOW_UPDATE, 0, 0, &1000u32.to_be_bytes()));
    }
    frames.push(frame(kind::GOAWAY, 0, 0, &[0, 0, 0, 7, 0, 0, 0, 0]));
    frames
}

/// `frames` mutated a few times, as one byte stream.
fn mutate(rng: &mut StdRng, mut frames: Vec<Vec<u8>>) -> Vec<u8> {
    for _ in 0..rng.random_range(0..4) {
        let at = rng.random_range(0..frames.len());
        match rng.random_range(0..4) {
            0 => {
                frames.remove(at);
            }
            1 => frames.insert(at, frames[at].clone()),
            2 => {
                let other = rng.random_range(0..frames.len());
                frames.swap(at, other);
            }
            _ => {
                let kind = rng.random_range(0..12u8);
                let stream = [0, 1, 3, 5, 7, 9, 2, 0x7fff_ffff][rng.random_range(0..8)];
                let len = rng.random_range(0..40);
                let payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                frames.insert(at, frame(kind, rng.random(), stream, &payload));
            }
        }
        if frames.is_empty() {
            break;
        }
    }
    let mut bytes = frames.concat();
    for _ in 0..rng.random_range(0..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => bytes.insert(at, rng.random()),
            _ => {
                let end = (at + rng.random_range(1..16)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

/// One case: the calls opened, `bytes` read in random pieces, then the connection closed;
/// (whether the reader found a violation, how many calls had a good reply).
fn run(rng: &mut StdRng, bytes: &[u8]) -> (bool, usize) {
    let mut state = State::default();
    let mut reader = Reader::new();
    let waker = Waker::noop();
    let (block, size) =
        super::headers::request_block("h:1", "/p.S/M", Default::default(), &Default::default());
    let body = framed(b"request");
    // The opening: the server's first SETTINGS is read before any call (see `conn::dial`).
    let mut rbuf = Vec::new();
    let mut at = 0;
    let mut calls = Vec::new();
    let mut opened = false;
    let reads_acks = rng.random_bool(0.7);
    let ended = loop {
        if reader.settings_seen && !opened {
            opened = true;
            for _ in 0..CALLS {
                if let Ok(call) = state.open((&block, size), &body, waker) {
                    calls.push(call);
                }
            }
        }
        if at == bytes.len() {
            break None;
        }
        let piece = rng.random_range(1..=64).min(bytes.len() - at);
        rbuf.extend_from_slice(&bytes[at..at + piece]);
        at += piece;
        let result = if opened {
            reader.read(&mut state, &rbuf)
        } else {
            reader.read_opening(&mut state, &rbuf)
        };
        match result {
            Ok(used) => {
                assert!(used <= rbuf.len());
                rbuf.drain(..used);
            }
            Err(err) => break Some(err),
        }
        // A frame header names at most 16 KiB (larger is refused): that is all that waits.
        assert!(
            rbuf.len() <= HEAD_LEN + 16_384 + 64,
            "{} bytes wait",
            rbuf.len()
        );
        assert!(
            state.out.len() <= 64 * 1024,
            "{} bytes queued",
            state.out.len()
        );
        if reader.stalled.take().is_some() && !reads_acks {
            break None; // A flood: the I/O task would close the connection.
        }
        if reads_acks || rng.random_bool(0.2) {
            state.out.clear();
            state.acks.taken();
            state.acks.taken();
        }
    };
    if let Some(err) = &ended {
        // Every error names something.
        assert!(!err.to_string().is_empty());
    }
    // The connection ends: every call has an outcome.
    state.closed = true;
    state.fail_above(None, Code::Unknown);
    let mut reply = Vec::new();
    let mut good = 0;
    for (index, _) in calls {
        let polled = state.poll_done(index, waker, &mut reply);
        assert!(
            matches!(polled, Poll::Ready(_)),
            "a call without an outcome"
        );
        good += usize::from(matches!(polled, Poll::Ready((Ok(()), _))));
    }
    (ended.is_some(), good)
}

#[test]
fn mutated_server_traffic_never_panics_and_every_call_ends() {
    fuzz(&capture(), 0..CASES);
}

/// Cases `seeds` of `frames` mutated; asserts that they reach both ends (violations found,
/// calls completed).
fn fuzz(frames: &[Vec<u8>], seeds: std::ops::Range<u64>) {
    let cases = seeds.end - seeds.start;
    let (mut violations, mut good) = (0, 0);
    for case in seeds {
        let mut rng = StdRng::seed_from_u64(case);
        let bytes = mutate(&mut rng, frames.to_vec());
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut rng, &bytes)));

        let Ok((violation, replies)) = outcome else {
            panic!("case {case} failed (seed {case})");
        };
        violations += u64::from(violation);
        good += replies;
    }
    // The cases reach both ends: violations found, and calls completed.
    assert!(
        violations > cases / 10,
        "{violations} violations in {cases} cases"
    );
    assert!(good as u64 > cases, "{good} good replies in {cases} cases");
}

#[test]
fn unmutated_traffic_completes_every_call() {
    let bytes = capture().concat();
    let mut state = State::default();
    let mut reader = Reader::new();
    let used = reader.read_opening(&mut state, &bytes).unwrap();
    let (block, size) =
        super::headers::request_block("h:1", "/p.S/M", Default::default(), &Default::default());
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            state
                .open((&block, size), b"x", Waker::noop())
                .ok()
                .unwrap()
        })
        .collect();
    reader.read(&mut state, &bytes[used..]).unwrap();
    let mut reply = Vec::new();
    for (index, _) in calls {
        let polled = state.poll_done(index, Waker::noop(), &mut reply);
        assert!(matches!(polled, Poll::Ready((Ok(()), false))), "{polled:?}");
    }
}

#[test]
fn random_header_blocks_decode_or_fail_without_panicking() {
    let mut rng = StdRng::seed_from_u64(25);
    let mut decoder = Decoder::new();
    for _ in 0..20_000 {
        let len = rng.random_range(0..48);
        let block: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if decoder.decode(&block).is_err() {
            // The table may be torn: a connection would end; start a new one.
            decoder = Decoder::new();
        }
    }
    // A frame header parses from any 9 bytes.
    assert!(Head::parse(&[0xff; 9]).is_some());
}

/// What an `h2` server (the crate under tonic's and hyper's servers: a dynamic table, Huffman
/// coding, its own SETTINGS and WINDOW_UPDATEs) sends for `CALLS` good calls, frame by frame,
/// as a raw client that sent them sees it.
async fn h2_capture() -> Vec<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((request, mut respond))) = conn.accept().await {
            let mut body = request.into_body();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let ok = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(ok, false).unwrap();
            send.send_data(framed(&reply_bytes("captured")), false)
                .unwrap();
            send.send_trailers(super::tests::trailers("0")).unwrap();
        }
    });
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    super::frame::put_opening(&mut out, 1 << 20, 1 << 20, 16 * 1024);
    tcp.write_all(&out).await.unwrap();
    let mut frames = Vec::new();
    let mut ended = 0;
    let mut sent = false;
    while ended < CALLS {
        let mut head = [0u8; HEAD_LEN];
        tcp.read_exact(&mut head).await.unwrap();
        let head_of = Head::parse(&head).unwrap();
        let mut bytes = head.to_vec();
        bytes.resize(HEAD_LEN + head_of.len as usize, 0);
        tcp.read_exact(&mut bytes[HEAD_LEN..]).await.unwrap();
        if head_of.kind == kind::SETTINGS && !head_of.has(1) && !sent {
            // Acknowledged, then the calls.
            let mut calls = Vec::new();
            super::frame::put_settings_ack(&mut calls);
            let (block, _) = super::headers::request_block(
                &addr.to_string(),
                "/p.S/M",
                Default::default(),
                &Default::default(),
            );
            for id in (0..CALLS).map(|n| 2 * n + 1) {
                super::frame::put_headers(&mut calls, id, &block, 16_384);
                super::frame::put_data(&mut calls, id, &framed(b"request"), 16_384, true);
            }
            tcp.write_all(&calls).await.unwrap();
            sent = true;
        }
        if head_of.kind == kind::HEADERS && head_of.has(0x1) {
            ended += 1;
        }
        frames.push(bytes);
    }
    frames
}

#[tokio::test]
async fn mutated_captures_of_an_h2_server_never_panic_and_every_call_ends() {
    let frames = h2_capture().await;
    // As captured, every call ends well.
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(run(&mut rng, &frames.concat()), (false, CALLS as usize));
    fuzz(&frames, CASES..CASES + CASES / 2);
}
