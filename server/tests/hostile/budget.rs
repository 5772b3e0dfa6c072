//! The server-wide memory budget: a cap on streams across connections (past it, new streams are
//! answered UNAVAILABLE at once) and the read timeout of half-open streams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flashsale_server::budget::BYTES_PER_STREAM;
use flashsale_server::hardening::Hardening;

use crate::flood::Flood;
use crate::process::{get_stock, runtime};
use crate::support::{Local, Server, frame, h2_connect, raw_call};

const PURCHASE: &str = "/flashsale.v1.Checkout/PurchaseSafe";
const GET_STOCK: &str = "/flashsale.v1.Checkout/GetStock";

/// A purchase whose request body never comes.
fn held_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{PURCHASE}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

fn grpc_status(headers: &http::HeaderMap) -> Option<(i32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace("%20", " ");
    Some((code, message))
}

/// The `server` binary to run: `FLASHSALE_SERVER_BIN` (e.g. a release build, to measure), else
/// this build's.
fn server_bin() -> String {
    std::env::var("FLASHSALE_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_server").into())
}

/// Polls `done` every 20 ms until it holds, at most `limit`.
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_request_that_never_arrives_is_ended_after_the_read_timeout() {
    let server = Local::start(Hardening {
        request_read_timeout: Duration::from_millis(300),
        ..Hardening::default()
    })
    .await;
    let h2 = h2_connect(server.addr).await;
    let (response, mut body) = h2
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(held_request(server.addr), false)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("answered without its body")
        .unwrap();
    let (code, message) = grpc_status(response.headers()).expect("a trailers-only reply");
    assert_eq!(code, 14, "UNAVAILABLE: {message}");
    assert!(message.contains("read timeout"), "{message}");
    // The server resets the stream: the client may stop sending.
    let reset = tokio::time::timeout(
        Duration::from_secs(10),
        std::future::poll_fn(|cx| body.poll_reset(cx)),
    )
    .await
    .expect("the stream is reset")
    .unwrap();
    assert_eq!(reset, h2::Reason::NO_ERROR);
    // The connection still serves, and nothing was bought.
    let stock = raw_call(
        &h2,
        server.addr,
        "POST",
        GET_STOCK,
        "application/grpc",
        frame(&[]),
    )
    .await;
    assert_eq!(stock.grpc_status, Some(0));
    server.stop().await;
}

#[tokio::test]
async fn streams_past_the_total_cap_are_refused_until_one_ends() {
    let server = Local::start(Hardening {
        max_total_streams: Some(2),
        request_read_timeout: Duration::from_secs(120),
        ..Hardening::default()
    })
    .await;
    let h2 = h2_connect(server.addr).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let call = h2
            .clone()
            .ready()
            .await
            .unwrap()
            .send_request(held_request(server.addr), false)
            .unwrap();
        held.push(call);
    }
    // Both held streams take their permits as their tasks run: until then GetStock may pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let other = h2_connect(server.addr).await;
        let reply = raw_call(
            &other,
            server.addr,
            "POST",
            GET_STOCK,
            "application/grpc",
            frame(&[]),
        )
        .await;
        if reply.grpc_status == Some(14) {
            break reply;
        }
        assert_eq!(reply.grpc_status, Some(0));
        assert!(Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(refused.http, 200);
    // One held stream ends (the client resets it): its permit comes back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = raw_call(
            &h2,
            server.addr,
            "POST",
            GET_STOCK,
            "application/grpc",
            frame(&[]),
        )
        .await;
        if reply.grpc_status == Some(0) {
            break;
        }
        assert_eq!(reply.grpc_status, Some(14));
        assert!(
            Instant::now() < deadline,
            "still refused after a stream ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(held);
    server.stop().await;
}

#[test]
fn forty_thousand_half_open_streams_stay_within_the_budget() {
    let budget_mib: u64 = 64;
    let cap = usize::try_from(budget_mib * 1024 * 1024 / BYTES_PER_STREAM).unwrap();
    let server = Server::spawn_bin(
        &server_bin(),
        &["--memory-budget", "64MiB", "--request-read-timeout", "10m"],
        &[],
        None,
    );
    let addr = server.addr();
    let rt = runtime();
    rt.block_on(get_stock(addr)).unwrap();
    let before = server.rss_kib();
    // The default per-connection limit (256): 160 connections of 250 streams.
    let floods: Vec<Flood> = (0..160).map(|_| Flood::open(addr, 250)).collect();
    // Every stream past the cap is answered at once (UNAVAILABLE), the others are held.
    let answered = || floods.iter().map(Flood::answered).sum::<usize>();
    wait_until(
        "streams past the cap answered",
        Duration::from_secs(60),
        || answered() >= 40_000 - cap,
    );
    let after = server.rss_kib();
    let refused_by_h2: usize = floods
        .iter()
        .map(|f| {
            f.counts
                .refused_by_h2
                .load(std::sync::atomic::Ordering::Acquire)
        })
        .sum();
    eprintln!(
        "40,000 half-open streams on 160 connections, cap {cap} ({budget_mib} MiB): server RSS \
         {before} KiB -> {after} KiB; {} answered at once, {refused_by_h2} refused by h2",
        answered()
    );
    assert_eq!(refused_by_h2, 0, "all within the per-connection limit");
    // The budget pays for the held streams; the 160 connections and the stream tables h2 keeps
    // at their high-water mark come on top (docs/server.md): a generous margin for those. Without
    // the cap the 40,000 streams took ~260 MB.
    let growth_kib = after.saturating_sub(before);
    assert!(
        growth_kib < (budget_mib + budget_mib * 3 / 4) * 1024,
        "RSS grew by {growth_kib} KiB with a {budget_mib} MiB budget"
    );
    // A new stream is refused while the cap is taken...
    let refused = rt.block_on(get_stock(addr));
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("server busy")),
        "{refused:?}"
    );
    // ...and served again once a flood's connection is gone.
    let mut floods = floods;
    floods.truncate(100);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = rt.block_on(get_stock(addr)) {
        assert!(Instant::now() < deadline, "not served again: {err}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(floods);
}

#[test]
fn half_open_streams_are_dropped_after_the_read_timeout() {
    let server = Server::spawn(
        &[
            "--max-streams",
            "5000",
            "--max-total-streams",
            "6000",
            "--request-read-timeout",
            "500ms",
        ],
        None,
    );
    let addr = server.addr();
    let floods: Vec<Flood> = (0..2).map(|_| Flood::open(addr, 5_000)).collect();
    // 4,000 are refused at once, the 6,000 held ones ended by the read timeout: every stream
    // gets an answer although the client never sends a body.
    wait_until(
        "every half-open stream answered",
        Duration::from_secs(60),
        || floods.iter().map(Flood::answered).sum::<usize>() == 10_000,
    );
    let rt = runtime();
    let reply = rt.block_on(get_stock(addr));
    assert!(
        reply.is_ok(),
        "served once the held streams are gone: {reply:?}"
    );
    drop(floods);
}

/// Bytes per held half-open stream, for docs/server.md: `FLASHSALE_SERVER_BIN=PATH` (a release
/// build) `cargo test -p flashsale-server --test hostile measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_bytes_per_held_stream() {
    let bin = server_bin();
    for total in [10_000u32, 20_000, 40_000] {
        let per_conn = (total / 4).to_string();
        // Env vars, so that a build without these flags still starts.
        let server = Server::spawn_bin(
            &bin,
            &["--max-streams", &per_conn],
            &[
                ("FLASHSALE_MAX_TOTAL_STREAMS", "1000000"),
                ("FLASHSALE_REQUEST_READ_TIMEOUT", "10m"),
                ("FLASHSALE_REQUEST_TIMEOUT", "10m"),
            ],
            None,
        );
        let addr = server.addr();
        let rt = runtime();
        rt.block_on(get_stock(addr)).unwrap();
        let before = server.rss_kib();
        let floods: Vec<Flood> = (0..4).map(|_| Flood::open(addr, total / 4)).collect();
        // The streams' tasks may still be starting: wait until RSS stops growing.
        let mut last = server.rss_kib();
        let mut stable = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stable < 5 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = server.rss_kib();
            stable = if now <= last + 64 { stable + 1 } else { 0 };
            last = now;
        }
        let answered: usize = floods.iter().map(Flood::answered).sum();
        let per_stream = (last - before) * 1024 / u64::from(total);
        eprintln!(
            "{total} half-open streams: RSS {before} KiB -> {last} KiB, {per_stream} bytes per \
             stream ({answered} answered)"
        );
        drop(floods);
    }
    // What a connection costs without streams, for comparison.
    let server = Server::spawn_bin(&bin, &[], &[], None);
    let addr = server.addr();
    runtime().block_on(get_stock(addr)).unwrap();
    let before = server.rss_kib();
    let floods: Vec<Flood> = (0..160).map(|_| Flood::open(addr, 0)).collect();
    let after = server.rss_kib();
    eprintln!(
        "160 connections without streams: RSS {before} KiB -> {after} KiB, {} bytes each",
        (after - before) * 1024 / 160
    );
    drop(floods);
}

#[tokio::test]
async fn request_messages_over_the_bound_are_refused() {
    let server = Local::start(Hardening::default()).await;
    let h2 = h2_connect(server.addr).await;
    let max = flashsale_server::budget::MAX_REQUEST_MESSAGE;
    // A GetStock request is empty: an unknown field of any size decodes, so only the bound
    // refuses the large one.
    let padded = |len: usize| {
        let mut message = vec![0x1a]; // field 3, length-delimited
        prost::encoding::encode_varint(len as u64, &mut message);
        message.extend(std::iter::repeat_n(b'x', len));
        frame(&message)
    };
    let big = raw_call(
        &h2,
        server.addr,
        "POST",
        GET_STOCK,
        "application/grpc",
        padded(max),
    )
    .await;
    assert_eq!(big.grpc_status, Some(11), "OUT_OF_RANGE: {big:?}");
    let small = raw_call(
        &h2,
        server.addr,
        "POST",
        GET_STOCK,
        "application/grpc",
        padded(1000),
    )
    .await;
    assert_eq!(small.grpc_status, Some(0), "{small:?}");
    server.stop().await;
}
