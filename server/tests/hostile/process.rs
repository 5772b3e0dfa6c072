//! The real `server` binary: a stream flood (memory), signals with streams open (shutdown
//! time), file-descriptor exhaustion (CPU time while accept fails).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use flashsale::pb::{self, checkout_client::CheckoutClient};
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::flood::Flood;
use crate::support::{Server, frame, h2_connect, raw_call};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub async fn get_stock(addr: SocketAddr) -> Result<pb::StockReply, String> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    CheckoutClient::new(channel)
        .get_stock(pb::GetStockRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| e.to_string())
}

/// A purchase whose client never sends its request, holding a stream open on `h2`. Returns
/// once the server has it: a later stream on the same connection (GetStock) was answered.
async fn hold_call(
    h2: &h2::client::SendRequest<bytes::Bytes>,
    addr: SocketAddr,
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/flashsale.v1.Checkout/PurchaseSafe"))
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let held = h2
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(request, false)
        .unwrap();
    let stock = raw_call(
        h2,
        addr,
        "POST",
        "/flashsale.v1.Checkout/GetStock",
        "application/grpc",
        frame(&[]),
    )
    .await;
    assert_eq!(stock.grpc_status, Some(0));
    held
}

#[test]
fn half_open_stream_flood_stays_bounded() {
    let server = Server::spawn(&[], None);
    let addr = server.addr();
    let rt = runtime();
    rt.block_on(get_stock(addr)).unwrap();
    let before = server.rss_kib();
    let floods: Vec<Flood> = (0..2).map(|_| Flood::open(addr, 10_000)).collect();
    let after = server.rss_kib();
    let reply = rt.block_on(get_stock(addr));
    assert!(reply.is_ok(), "others are still served: {reply:?}");
    eprintln!("20,000 half-open streams on 2 connections: server RSS {before} KiB -> {after} KiB");
    assert!(after < 32 * 1024, "RSS {after} KiB after the flood");
    assert!(
        after - before.min(after) < 16 * 1024,
        "RSS grew by {} KiB",
        after - before
    );
    drop(floods);
}

#[test]
fn sigterm_ends_streams_and_exits_within_the_grace_period() {
    let grace = Duration::from_secs(1);
    let mut server = Server::spawn(&["--shutdown-grace", "1s"], None);
    let addr = server.addr();
    let rt = runtime();
    let signalled = rt.block_on(async {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut watch = HealthClient::new(channel)
            .watch(HealthCheckRequest {
                service: "flashsale.v1.Checkout".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32);

        // A call whose client never sends its request: it holds a stream open.
        let h2 = h2_connect(addr).await;
        let (held, _body) = hold_call(&h2, addr).await;

        server.signal(libc::SIGTERM);
        let signalled = Instant::now();
        let mut statuses = Vec::new();
        while let Ok(Some(update)) = watch.message().await {
            statuses.push(update.status);
        }
        assert_eq!(statuses.last(), Some(&(ServingStatus::NotServing as i32)));
        let watch_ended = signalled.elapsed();
        assert!(watch_ended < grace, "watch ended after {watch_ended:?}");
        let held = held.await.unwrap();
        let status = held
            .headers()
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            status.as_deref(),
            Some("14"),
            "held call ended with UNAVAILABLE"
        );
        eprintln!(
            "health watch ended {watch_ended:?} after SIGTERM; held call ended {:?} after",
            signalled.elapsed()
        );
        signalled
    });
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    eprintln!("server exited {took:?} after SIGTERM (grace {grace:?}), status {code:?}");
    assert_eq!(code, Some(0));
    assert!(
        took < grace + Duration::from_millis(1500),
        "exit took {took:?}"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = Server::spawn(&["--shutdown-grace", "60s"], None);
    let addr = server.addr();
    let rt = runtime();
    let _held = rt.block_on(async {
        let h2 = h2_connect(addr).await;
        let held = hold_call(&h2, addr).await;
        (h2, held)
    });
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down", Duration::from_secs(10));
    let second = Instant::now();
    server.signal(libc::SIGINT);
    let (code, _) = server.wait_exit(Duration::from_secs(10));
    let took = second.elapsed();
    eprintln!("exited {took:?} after the second signal, status {code:?}");
    assert_eq!(code, Some(flashsale_server::shutdown::FORCED_EXIT_STATUS));
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn fd_exhaustion_backs_off_instead_of_spinning() {
    let server = Server::spawn(&["--handshake-timeout", "60s"], Some(64));
    let addr = server.addr();
    let clients: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    server.wait_for_log("cannot accept connections", Duration::from_secs(10));
    let window = Duration::from_millis(1500);
    let cpu_before = server.cpu_time();
    let lines_before = server.count_log("cannot accept connections");
    std::thread::sleep(window);
    let cpu = server.cpu_time() - cpu_before;
    let lines = server.count_log("cannot accept connections") - lines_before;
    eprintln!("at the fd limit: {cpu:?} CPU over {window:?}, {lines} log lines");
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} CPU over {window:?}"
    );
    assert!(lines <= 1, "{lines} log lines over {window:?}");

    // Once the clients go, it serves again.
    drop(clients);
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match rt.block_on(get_stock(addr)) {
            Ok(_) => break,
            Err(err) => assert!(Instant::now() < deadline, "not serving again: {err}"),
        }
    }
}
