//! A target that dies in the middle of a sustained run: the driver stops loading it within the
//! stated grace time and still reports every statistic, with an audit that says what could
//! not be audited. The "target" is a TCP proxy in front of a real checkout; killing the proxy
//! closes every connection and the port, as a crashed server does.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flashsale_driver::checkout::Control;
use flashsale_driver::run::reachability::GIVE_UP_AFTER;
use flashsale_server::{ServerConfig, spawn};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Forwards `127.0.0.1:<port>` to `upstream` until `kill` is cancelled, then drops the
/// listener and every connection at once.
async fn proxy(upstream: SocketAddr, kill: CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = kill.cancelled() => break,
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { continue };
                    connections.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        }
        connections.abort_all();
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_that_dies_mid_run_stops_the_load_and_still_reports() {
    let server = spawn(ServerConfig {
        stock: 1_000_000,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let upstream: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let kill = CancellationToken::new();
    let target = proxy(upstream, kill.clone()).await;

    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(["--target", &target, "--mode", "safe", "--users", "20"])
        .args([
            "--stock",
            "1000000",
            "--duration",
            "120s",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Kill the target once it has taken orders (the users are loading it).
    let mut direct = Control::connect(&server.url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stock = direct.stock().await.unwrap();
        if stock.orders >= 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the driver never loaded the target"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill.cancel();
    let killed = Instant::now();

    let out = tokio::task::spawn_blocking(move || {
        // The child ends by itself (well before its 120 s); the bound below says how soon.
        child.wait_with_output().unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the driver kept running after its target died")
        .unwrap();
    let after_kill = killed.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap();
    assert!(matches!(code, 1 | 4), "exit {code} (not 2): {stderr}");
    assert!(
        after_kill < GIVE_UP_AFTER + Duration::from_secs(10),
        "stopped {after_kill:?} after the kill"
    );
    assert!(started.elapsed() < Duration::from_secs(100));

    let json: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let checks = json["audit"]["checks"].as_array().unwrap();
    let check = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {json:#}"))
    };
    let final_state = check("final_state");
    assert_eq!(final_state["status"], "inconclusive");
    let why = final_state["detail"].as_str().unwrap();
    assert!(why.contains("stopped answering"), "{why}");
    assert_ne!(json["verdict"], "pass");
    // Nothing failed on the clients' side: a safe server sold within its stock.
    assert_eq!(check("no_oversell")["status"], "inconclusive");
    assert_eq!(check("conservation")["status"], "inconclusive");
    // Every statistic is kept: the purchases before the kill and the refusals after it.
    let outcomes = &json["outcomes"];
    let purchased = outcomes["purchased"].as_u64().unwrap();
    let orders = direct.stock().await.unwrap().orders;
    assert!(
        purchased >= 100 && purchased <= orders,
        "{purchased} of {orders}"
    );
    assert!(outcomes["by_status"]["UNAVAILABLE"].as_u64().unwrap() > 0);
    server.shutdown().await.unwrap();
}
