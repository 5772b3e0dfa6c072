//! The driver's control calls carry the server's admin token: Reset is refused without it and
//! works with it, and a run with it reconciles against the (admin-only) order book.

use std::time::Duration;

use clap::Parser;
use flashsale_driver::checkout::Control;
use flashsale_driver::cli::Cli;
use flashsale_driver::error::DriverError;
use flashsale_server::hardening::{AdminToken, Hardening};
use flashsale_server::{ServerConfig, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test]
async fn control_sends_the_admin_token() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        latency: Duration::ZERO,
        hardening: Hardening {
            admin_token: Some(AdminToken::new("driver-token").unwrap()),
            ..Hardening::default()
        },
        ..ServerConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, config, async {
        let _ = stopped.await;
    }));

    let mut anonymous = Control::connect(&url).await.unwrap();
    match anonymous.reset(5, None).await {
        Err(DriverError::Rpc { status, .. }) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
        other => panic!("Reset without the token: {other:?}"),
    }
    let mut wrong = anonymous.clone().with_admin_token(Some("nope")).unwrap();
    assert!(wrong.reset(5, None).await.is_err());
    assert!(
        anonymous
            .clone()
            .with_admin_token(Some("not valid"))
            .is_err()
    );

    let mut admin = anonymous.with_admin_token(Some("driver-token")).unwrap();
    assert_eq!(admin.reset(5, None).await.unwrap().stock, 5);
    assert_eq!(admin.stock().await.unwrap().stock, 5);

    // A whole run with the token: Reset verified, and the order book (ListOrders is admin)
    // read and reconciled. Without the token the run stops before any load.
    let argv = [
        "driver", "--target", &url, "--mode", "safe", "-u", "50", "--stock", "20",
    ];
    let spec = Cli::try_parse_from(argv).unwrap().run.to_spec().unwrap();
    assert!(flashsale_driver::run(&spec).await.is_err());
    let with_token = [&argv[..], &["--admin-token", "driver-token"]].concat();
    let spec = Cli::try_parse_from(with_token)
        .unwrap()
        .run
        .to_spec()
        .unwrap();
    let report = flashsale_driver::run(&spec).await.unwrap();
    assert!(report.audit.passed(), "{}", report.to_table());
    assert!(
        report.audit.reconciliation.available,
        "{}",
        report.to_table()
    );
    assert_eq!(report.audit.reconciliation.book_orders, 20);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
