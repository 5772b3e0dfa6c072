//! The real `grpcurl`, with no proto files (server reflection), against an in-process server.

use flashsale_server::{ServerConfig, spawn};

use crate::support::{grpcurl, int, stock};

#[tokio::test]
#[ignore = "needs grpcurl: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn lists_and_describes_the_services() {
    let server = spawn(ServerConfig::default()).await.unwrap();

    let listed = grpcurl(server.addr(), &[], &["list"]).await;
    let services: Vec<&str> = listed.success().lines().collect();
    for wanted in ["flashsale.v1.Checkout", "grpc.health.v1.Health"] {
        assert!(services.contains(&wanted), "{wanted} not listed:\n{listed}");
    }

    let described = grpcurl(server.addr(), &[], &["describe", "flashsale.v1.Checkout"]).await;
    let text = described.success();
    assert!(
        text.contains("flashsale.v1.Checkout is a service:"),
        "{described}"
    );
    for (rpc, request, reply) in [
        ("PurchaseBuggy", "PurchaseRequest", "PurchaseReply"),
        ("PurchaseUnstable", "PurchaseRequest", "PurchaseReply"),
        ("PurchaseSafe", "PurchaseRequest", "PurchaseReply"),
        ("GetStock", "GetStockRequest", "StockReply"),
        ("Reset", "ResetRequest", "StockReply"),
    ] {
        let line =
            format!("rpc {rpc} ( .flashsale.v1.{request} ) returns ( .flashsale.v1.{reply} );");
        assert!(text.contains(&line), "missing `{line}`:\n{described}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs grpcurl: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn get_stock_purchase_and_reset() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let addr = server.addr();

    let before = stock(addr).await;
    assert_eq!(int(&before, "initialStock"), 100, "{before}");
    assert_eq!(int(&before, "stock"), 100, "{before}");
    assert_eq!(int(&before, "orders"), 0, "{before}");
    assert_eq!(before["safeStrategy"], "SAFE_STRATEGY_ATOMIC", "{before}");

    let purchase = grpcurl(
        addr,
        &["-d", r#"{"user_id":"alice"}"#],
        &["flashsale.v1.Checkout/PurchaseSafe"],
    )
    .await
    .json();
    assert_eq!(purchase["outcome"], "OUTCOME_PURCHASED", "{purchase}");
    assert_eq!(int(&purchase, "stockAfter"), 99, "{purchase}");
    assert_eq!(int(&purchase, "quantity"), 1, "{purchase}");
    assert!(
        !purchase["orderId"].as_str().unwrap_or_default().is_empty(),
        "{purchase}"
    );

    let after = stock(addr).await;
    assert_eq!(int(&after, "stock"), 99, "{after}");
    assert_eq!(int(&after, "orders"), 1, "{after}");
    assert_eq!(int(&after, "unitsSold"), 1, "{after}");

    // The README's Reset command.
    let reset = grpcurl(
        addr,
        &["-d", r#"{"stock":5}"#],
        &["flashsale.v1.Checkout/Reset"],
    )
    .await
    .json();
    assert_eq!(int(&reset, "initialStock"), 5, "{reset}");
    assert_eq!(int(&reset, "stock"), 5, "{reset}");
    assert!(int(&reset, "round") > int(&after, "round"), "{reset}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs grpcurl: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn invalid_purchases_get_invalid_argument_and_change_nothing() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let addr = server.addr();

    for (data, message) in [
        (r#"{"user_id":""}"#, "user_id is required"),
        (
            r#"{"user_id":"bob","quantity":11}"#,
            "quantity 11 exceeds the per-order maximum of 10",
        ),
    ] {
        let rejected = grpcurl(addr, &["-d", data], &["flashsale.v1.Checkout/PurchaseSafe"]).await;
        let stderr = rejected.failure();
        // grpcurl exits with 64 + the gRPC code; INVALID_ARGUMENT is 3.
        assert_eq!(rejected.status.code(), Some(64 + 3), "{rejected}");
        assert!(stderr.contains("Code: InvalidArgument"), "{rejected}");
        assert!(
            stderr.contains(&format!("Message: {message}")),
            "{rejected}"
        );
    }

    let after = stock(addr).await;
    assert_eq!(int(&after, "stock"), 100, "{after}");
    assert_eq!(int(&after, "orders"), 0, "{after}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs grpcurl: `bash .ci/tools.sh` (pinned, in CI's virtual environment)"]
async fn health_check_reports_serving() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    for data in [r#"{}"#, r#"{"service":"flashsale.v1.Checkout"}"#] {
        let health = grpcurl(
            server.addr(),
            &["-d", data],
            &["grpc.health.v1.Health/Check"],
        )
        .await
        .json();
        assert_eq!(health["status"], "SERVING", "{data}: {health}");
    }
    server.shutdown().await.unwrap();
}
