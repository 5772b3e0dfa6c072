//! A custom gRPC checkout over TLS: our own server, served with a certificate made in the test
//! (rcgen) and driven the generic way (reflection over the same TLS connection, dynamic
//! messages): a run with the right CA passes, a CA that did not sign the server is exit 2 with
//! the reason.

use std::time::Duration;

use flashsale_server::ServerConfig;
use flashsale_server::tls::TlsConfig;
use rcgen::ExtendedKeyUsagePurpose;

#[path = "../../../server/tests/certs/mod.rs"]
mod certs;

use crate::binary::driver;
use certs::{Ca, Files};

/// Our checkout as a custom gRPC checkout (PurchaseSafe; sold out is a field of the reply).
const OUR_SERVER: &[&str] = &[
    "--call",
    "flashsale.v1.Checkout/PurchaseSafe",
    "--data",
    r#"{"user_id":"{{user}}","quantity":{{quantity}},"request_id":"{{request_id}}"}"#,
    "--purchased",
    r#"reply.outcome == "OUTCOME_PURCHASED""#,
    "--sold-out",
    r#"reply.outcome == "OUTCOME_SOLD_OUT""#,
    "--order-id-field",
    "order_id",
    "--stock-call",
    "flashsale.v1.Checkout/GetStock",
    "--stock-field",
    "stock",
    "--reset-call",
    "flashsale.v1.Checkout/Reset",
    "--reset-data",
    r#"{"stock":{{stock}}}"#,
    "--users",
    "100",
    "--stock",
    "20",
    "--output",
    "json",
];

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_with_its_ca_it_passes_and_with_another_it_is_exit_2() {
    let files = Files::new("custom-grpc-tls");
    let ca = Ca::new("test CA");
    let (cert, key) = ca.sign(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server = flashsale_server::spawn(ServerConfig {
        latency: Duration::from_millis(5),
        tls: TlsConfig {
            tls_cert: Some(files.write_arg("server.pem", &cert).into()),
            tls_key: Some(files.write_arg("server.key", &key).into()),
            client_ca: None,
        },
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let url = server.url();
    assert!(url.starts_with("https://"));
    let with_ca = |ca_file: String| {
        let mut args: Vec<String> = ["--target", &url, "--ca-cert", &ca_file]
            .map(String::from)
            .to_vec();
        args.extend(OUR_SERVER.iter().map(|a| a.to_string()));
        args
    };

    let output = driver(&with_ca(files.write_arg("ca.pem", &ca.pem))).await;
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "pass", "{report:#}");
    assert_eq!(report["outcomes"]["purchased"], 20, "{report:#}");
    assert_eq!(report["outcomes"]["sold_out"], 80, "{report:#}");

    let wrong = files.write_arg("wrong.pem", &Ca::new("another CA").pem);
    let output = driver(&with_ca(wrong)).await;
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot connect to {url}")), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    server.shutdown().await.unwrap();
}
