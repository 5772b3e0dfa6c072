//! Nothing a peer says is trusted: run plans are validated once, before any side effect, on the
//! command line and on the wire alike; a worker whose report is impossible is named faulty and
//! cannot change the verdict; an oversized report does not grow the coordinator past its bound.

use std::process::{Command, Output};
use std::time::Duration;

use flashsale::pb::{self, coordinator_client::CoordinatorClient};
use flashsale_driver::checkout::Control;
use flashsale_driver::cluster::coordinator::{self, CoordinatorConfig};
use flashsale_server::{RunningServer, ServerConfig, spawn};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn driver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driver"))
        .args(args)
        .output()
        .expect("driver runs")
}

/// The server's round: a Reset moves it.
async fn round(server: &RunningServer) -> u64 {
    Control::connect(&server.url())
        .await
        .unwrap()
        .stock()
        .await
        .unwrap()
        .round
}

/// A driver run the CLI refuses: exit 2 with `message` on stderr, and the server untouched.
async fn refused_before_reset(server: &RunningServer, args: &[&str], message: &str) {
    let before = round(server).await;
    let url = server.url();
    let argv: Vec<String> = ["--target", &url, "--mode", "safe"]
        .iter()
        .chain(args)
        .map(|s| s.to_string())
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_driver"))
            .args(&argv)
            .output()
            .expect("driver runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(round(server).await, before, "{args:?} reset the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_refuses_impossible_plans_before_any_reset() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    // The control: a valid run does reset (so the round check can fail).
    let before = round(&server).await;
    let url = server.url();
    let ok = tokio::task::spawn_blocking(move || {
        driver(&[
            "--target", &url, "--mode", "safe", "-u", "10", "--stock", "5",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_ne!(round(&server).await, before);

    refused_before_reset(&server, &["--timeout", "1000000years"], "timeout").await;
    refused_before_reset(
        &server,
        &["--timeout", "1000000years", "-u", "10"],
        "timeout",
    )
    .await;
    refused_before_reset(&server, &["--duration", "2h"], "duration").await;
    refused_before_reset(&server, &["--settle", "61s"], "settle").await;
    // As long as one argument can be (the kernel caps one at 128 KiB).
    let huge = "x".repeat(100_000);
    refused_before_reset(&server, &["--user-prefix", &huge], "user prefix").await;
    refused_before_reset(&server, &["--user-prefix", "a.b"], "user prefix").await;
    refused_before_reset(
        &server,
        &["--users", "1000000", "--clicks", "2"],
        "in flight",
    )
    .await;
    server.shutdown().await.unwrap();
}

/// A coordinator in this process that expects one worker; stops when the sender is dropped.
async fn coordinator(target: String) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = CoordinatorConfig {
        expect_workers: 1,
        default_target: Some(target),
        join_timeout: Duration::from_secs(5),
        admin_token: None,
    };
    tokio::spawn(coordinator::run(listener, config, async {
        let _ = stopped.await;
    }));
    (url, stop)
}

fn plan() -> pb::LoadPlan {
    pb::LoadPlan {
        mode: pb::Mode::Safe.into(),
        users: 10,
        quantity: 1,
        timeout_ms: 1000,
        user_prefix: "t-".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinator_refuses_impossible_plans_with_invalid_argument() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let (url, _stop) = coordinator(server.url()).await;
    let before = round(&server).await;
    let mut client =
        CoordinatorClient::new(flashsale_driver::checkout::connect(&url).await.unwrap())
            .max_encoding_message_size(4 << 20);
    let cases: Vec<(&str, pb::RunRequest)> = vec![
        (
            "timeout",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    timeout_ms: u64::MAX,
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "user prefix",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    user_prefix: "x".repeat(1 << 20),
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "duration",
            pb::RunRequest {
                plan: Some(pb::LoadPlan {
                    duration_ms: u64::MAX,
                    ..plan()
                }),
                ..Default::default()
            },
        ),
        (
            "settle",
            pb::RunRequest {
                settle_ms: 61_000,
                plan: Some(plan()),
                ..Default::default()
            },
        ),
    ];
    for (what, mut request) in cases {
        request.users = 10;
        request.reset = true;
        request.stock = 5;
        let status = client.submit_run(request).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
        assert!(status.message().contains(what), "{what}: {status:?}");
    }
    assert_eq!(
        round(&server).await,
        before,
        "a refused plan reset the server"
    );
    server.shutdown().await.unwrap();
}
