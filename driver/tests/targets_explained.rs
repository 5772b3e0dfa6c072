//! Targets that are not checkouts get errors that name the cause: an HTTP/1 port ("this is not
//! an HTTP/2 (gRPC) server"), a gRPC server without `flashsale.v1.Checkout` such as the
//! coordinator's port ("does not offer flashsale.v1.Checkout (it offers: …)", from its server
//! reflection), and a mistyped scheme ("did you mean http://host:port?").

#[path = "support/binary.rs"]
mod binary;

use std::time::Duration;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::cluster::auth::ClusterToken;
use flashsale_driver::cluster::coordinator::{self, CoordinatorConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The error of a standalone run against `target`.
async fn run_error(target: &str) -> String {
    let argv = ["driver", "--target", target, "--mode", "safe"];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    match flashsale_driver::run(&spec).await {
        Ok(report) => panic!("a run against {target} reported:\n{}", report.to_table()),
        Err(err) => err.to_string(),
    }
}

/// An HTTP/1.1 server on a loopback port that answers everything with 400, as web servers
/// answer an HTTP/2 preface.
async fn http1_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http1_port_is_not_an_http2_server() {
    let target = http1_server().await;
    let err = run_error(&target).await;
    assert!(
        err.contains("this is not an HTTP/2 (gRPC) server")
            && err.contains("HTTP/1.1 400 Bad Request"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coordinators_port_does_not_offer_the_checkout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = CoordinatorConfig {
        expect_workers: 1,
        default_target: None,
        join_timeout: Duration::from_secs(5),
        admin_token: None,
        token: ClusterToken::generate(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(coordinator::run(listener, config, async {
        let _ = stopped.await;
    }));
    let err = run_error(&addr.to_string()).await;
    assert!(
        err.contains("this server does not offer flashsale.v1.Checkout (it offers: ")
            && err.contains("flashsale.v1.Coordinator"),
        "{err}"
    );
    assert!(!err.contains("flashsale.v1.Checkout,"), "{err}");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mistyped_scheme_is_named_by_the_binary() {
    let out = binary::driver(&["--target", "http//127.0.0.1:50051", "--mode", "safe"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("did you mean http://127.0.0.1:50051?"),
        "{stderr}"
    );
}

#[test]
fn no_arguments_in_a_compose_stack_print_the_stacks_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_driver"))
        .env("FLASHSALE_COMPOSE", "docker compose")
        .env("FLASHSALE_COORDINATOR", "http://coordinator:7000")
        .env("FLASHSALE_CLUSTER_TOKEN", "flashsale-demo-cluster-token")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("docker compose run --rm driver --mode safe"),
        "{stderr}"
    );
    assert!(!stderr.contains("Usage: driver --coordinator"), "{stderr}");
}
