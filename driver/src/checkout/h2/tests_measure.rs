//! Figures for issue #25's closing note, measured by hand (ignored by default):
//! `cargo test -p flashsale-driver --lib checkout::h2::tests_measure -- --ignored --nocapture`.
//! Connections and attempts against a target that answers every connection with GOAWAY(0),
//! and the process's peak RSS under a PING or SETTINGS flood from a target that never reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::LeanClient;
use crate::spec::Metadata;

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// Accepts connections, reads the preface, sends SETTINGS and its ACK and then `then`
/// (`flood`: over and over, never reading).
async fn hostile(then: Vec<u8>, flood: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            let then = then.clone();
            tokio::spawn(async move {
                let mut preface = [0u8; 24];
                if tcp.read_exact(&mut preface).await.is_err() {
                    return;
                }
                let mut opening = frame(4, 0, &[]);
                opening.extend(frame(4, 1, &[]));
                opening.extend_from_slice(&then);
                if tcp.write_all(&opening).await.is_err() {
                    return;
                }
                if flood {
                    let batch = then.repeat(1024);
                    while tcp.write_all(&batch).await.is_ok() {}
                    return;
                }
                let mut sink = vec![0; 4096];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (url, accepted)
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_goaway_zero_loop() {
    let (url, accepted) = hostile(frame(7, 0, &[0; 8]), false).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let window = Duration::from_secs(5);
    let start = Instant::now();
    let mut users = Vec::new();
    for _ in 0..8 {
        let client = LeanClient::connect(&url, &Metadata::default(), Duration::from_secs(5))
            .await
            .unwrap();
        for _ in 0..125 {
            let mut client = client.clone();
            let attempts = Arc::clone(&attempts);
            users.push(tokio::spawn(async move {
                let uri = client.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
                let request = flashsale::pb::PurchaseRequest::default();
                while start.elapsed() < window {
                    let call = client.unary::<flashsale::pb::PurchaseReply>(
                        &uri,
                        &request,
                        Duration::from_secs(1),
                    );
                    let _ = tokio::time::timeout(Duration::from_secs(1), call).await;
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for user in users {
        user.await.unwrap();
    }
    println!(
        "GOAWAY(0) target, 1000 users on 8 connections, {:?}: {} connections, {} attempts",
        start.elapsed(),
        accepted.load(Ordering::Relaxed),
        attempts.load(Ordering::Relaxed)
    );
}

async fn measure_flood(what: &str, one: Vec<u8>) {
    let before = rss_kib("VmRSS:");
    let (url, _) = hostile(one, true).await;
    let client = LeanClient::connect(&url, &Metadata::default(), Duration::from_secs(5))
        .await
        .unwrap();
    let start = Instant::now();
    let mut peak = before;
    // Until the client cuts the flood off (the connection is gone) or 5 s.
    while start.elapsed() < Duration::from_secs(5) {
        peak = peak.max(rss_kib("VmRSS:"));
        if client.conn.lock().closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{what} flood, non-reading target: RSS {} MiB before, peak {} MiB within {:?}",
        before / 1024,
        peak / 1024,
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_ping_flood() {
    measure_flood("PING", frame(6, 0, b"flooding")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_settings_flood() {
    measure_flood("SETTINGS", frame(4, 0, &[])).await;
}
