//! The driver against checkouts served over TLS, with certificates made in the test (rcgen):
//! runs over https:// pass or fail the audit as the checkout deserves, mutual TLS, a CA that
//! did not sign the server's certificate (a clear connection error, exit 2), `--insecure`
//! (works, loudly), and `-H` metadata on every call, recorded by a double that wraps the real
//! checkout.

use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use flashsale::pb::{
    self,
    checkout_server::{Checkout, CheckoutServer},
};
use flashsale_driver::cli::{Cli, Command};
use flashsale_driver::{EXIT_ERROR, Verdict};
use flashsale_server::tls::TlsConfig;
use flashsale_server::{CheckoutService, MemoryStore, RunningServer, ServerConfig};
use rcgen::ExtendedKeyUsagePurpose;
use tonic::{Request, Response, Status};

#[path = "support/binary.rs"]
mod binary;
#[path = "../../server/tests/certs/mod.rs"]
mod certs;

use binary::driver;
use certs::{Ca, Files};

/// The real checkout over TLS with a certificate `ca` signed for localhost and 127.0.0.1;
/// with `client_ca`, clients must present a certificate it signed.
async fn tls_server(files: &Files, ca: &Ca, client_ca: Option<&Ca>) -> RunningServer {
    named_tls_server(files, ca, client_ca, &["localhost", "127.0.0.1"]).await
}

/// [`tls_server`] with a certificate for `names` only.
async fn named_tls_server(
    files: &Files,
    ca: &Ca,
    client_ca: Option<&Ca>,
    names: &[&str],
) -> RunningServer {
    let (cert, key) = ca.sign(names, ExtendedKeyUsagePurpose::ServerAuth);
    let config = ServerConfig {
        latency: Duration::from_millis(5),
        tls: TlsConfig {
            tls_cert: Some(files.write_arg("server.pem", &cert).into()),
            tls_key: Some(files.write_arg("server.key", &key).into()),
            client_ca: client_ca.map(|c| files.write_arg("client-ca.pem", &c.pem).into()),
        },
        ..ServerConfig::default()
    };
    flashsale_server::spawn(config).await.unwrap()
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("driver").chain(args.iter().copied())).unwrap()
}

async fn run(args: &[&str]) -> Result<flashsale_driver::Report, flashsale_driver::DriverError> {
    let spec = cli(args).run.to_spec()?;
    flashsale_driver::run(&spec).await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const LOAD: [&str; 6] = ["-u", "60", "--stock", "20", "--settle", "2s"];

#[tokio::test(flavor = "multi_thread")]
async fn runs_over_https_pass_safe_and_fail_buggy() {
    let files = Files::new("ca");
    let ca = Ca::new("test CA");
    let server = tls_server(&files, &ca, None).await;
    let url = server.url();
    let ca_file = files.write_arg("ca.pem", &ca.pem);
    let over_tls = |mode: &'static str| {
        let mut args = vec!["--mode", mode, "--target", &url, "--ca-cert", &ca_file];
        args.extend(LOAD);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = over_tls("safe");
    let safe = run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(safe.audit.verdict, Verdict::Pass, "{:?}", safe.audit);
    assert_eq!(safe.outcomes.purchased, 20);
    assert!(safe.run.target.starts_with("https://"));
    assert!(!safe.run.tls_unverified);
    let args = over_tls("buggy");
    let buggy = run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(buggy.audit.verdict, Verdict::Fail, "{:?}", buggy.audit);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_runs_with_a_client_certificate_and_is_refused_without() {
    let files = Files::new("mtls");
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    // A certificate for a name only: reached by address, verified through --authority.
    let server = named_tls_server(&files, &ca, Some(&clients), &["checkout.test"]).await;
    let url = server.url();
    let ca_file = files.write_arg("ca.pem", &ca.pem);
    let (cert, key) = clients.sign(&["driver"], ExtendedKeyUsagePurpose::ClientAuth);
    let (cert, key) = (
        files.write_arg("client.pem", &cert),
        files.write_arg("client.key", &key),
    );
    let mtls = ["--ca-cert", &ca_file, "--cert", &cert, "--key", &key];
    let mut args = vec!["--mode", "safe", "--target", &url];
    args.extend(mtls);
    args.extend(["--authority", "checkout.test"]);
    args.extend(LOAD);
    let report = run(&args).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);

    // Without --authority the address is checked against the certificate, and refused.
    let mut by_address = vec!["--mode", "safe", "--target", &url];
    by_address.extend(mtls);
    by_address.extend(LOAD);
    let output = driver(&by_address).await;
    assert_eq!(output.status.code(), Some(i32::from(EXIT_ERROR)));
    let err = stderr(&output);
    assert!(err.contains("not valid for name"), "{err}");

    // Without a client certificate.
    let mut anonymous = vec!["--mode", "safe", "--target", &url, "--ca-cert", &ca_file];
    anonymous.extend(["--authority", "checkout.test"]);
    anonymous.extend(LOAD);
    let output = driver(&anonymous).await;
    assert_eq!(output.status.code(), Some(i32::from(EXIT_ERROR)));
    let err = stderr(&output);
    assert!(err.contains("give --cert and --key"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_that_did_not_sign_the_server_is_a_clear_connection_error() {
    let files = Files::new("wrong");
    let ca = Ca::new("server CA");
    let server = tls_server(&files, &ca, None).await;
    let url = server.url();
    let wrong = files.write_arg("wrong.pem", &Ca::new("another CA").pem);
    let mut args = vec!["--mode", "safe", "--target", &url, "--ca-cert", &wrong];
    args.extend(LOAD);
    let output = driver(&args).await;
    assert_eq!(output.status.code(), Some(i32::from(EXIT_ERROR)));
    let err = stderr(&output);
    assert!(err.contains(&format!("cannot connect to {url}")), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_accepts_an_unknown_ca_and_says_so() {
    let files = Files::new("insecure");
    let server = tls_server(&files, &Ca::new("unknown CA"), None).await;
    let url = server.url();
    let mut args = vec!["--mode", "safe", "--target", &url, "--insecure"];
    args.extend(LOAD);
    let output = driver(&args).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(
        err.contains("--insecure") && err.contains("NOT verified"),
        "{err}"
    );
    // Without --insecure the same server is refused (the system roots do not know its CA).
    let mut verified = vec!["--mode", "safe", "--target", &url];
    verified.extend(LOAD);
    let refused = driver(&verified).await;
    assert_eq!(
        refused.status.code(),
        Some(i32::from(EXIT_ERROR)),
        "{}",
        stderr(&refused)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_checks_health_over_tls() {
    let files = Files::new("probe");
    let ca = Ca::new("test CA");
    let server = tls_server(&files, &ca, None).await;
    let url = server.url();
    let ca_file = files.write_arg("ca.pem", &ca.pem);
    let ok = driver(&["probe", &url, "--ca-cert", &ca_file]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let refused = driver(&["probe", &url]).await;
    assert_eq!(refused.status.code(), Some(i32::from(EXIT_ERROR)));
    server.shutdown().await.unwrap();
}

/// Per call: the method and the metadata the double saw.
type Seen = Arc<Mutex<Vec<(&'static str, tonic::metadata::MetadataMap)>>>;

/// The real checkout, recording every call's metadata first.
struct Recording {
    inner: CheckoutService,
    seen: Seen,
}

impl Recording {
    fn note<T>(&self, method: &'static str, request: &Request<T>) {
        self.seen
            .lock()
            .unwrap()
            .push((method, request.metadata().clone()));
    }
}

#[tonic::async_trait]
impl Checkout for Recording {
    async fn purchase_buggy(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.note("PurchaseBuggy", &request);
        self.inner.purchase_buggy(request).await
    }
    async fn purchase_unstable(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.note("PurchaseUnstable", &request);
        self.inner.purchase_unstable(request).await
    }
    async fn purchase_safe(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.note("PurchaseSafe", &request);
        self.inner.purchase_safe(request).await
    }
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        self.note("GetStock", &request);
        self.inner.get_stock(request).await
    }
    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        self.note("Reset", &request);
        self.inner.reset(request).await
    }
    type ListOrdersStream = <CheckoutService as Checkout>::ListOrdersStream;
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<Self::ListOrdersStream>, Status> {
        self.note("ListOrders", &request);
        self.inner.list_orders(request).await
    }
}

/// The recording double on a loopback port (plaintext): its URL, what it saw, its stop.
async fn recording_server() -> (String, Seen, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        latency: Duration::from_millis(2),
        ..ServerConfig::default()
    };
    let seen = Seen::default();
    let service = Recording {
        inner: CheckoutService::new(Arc::new(MemoryStore::from_config(&config)), &config),
        seen: seen.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CheckoutServer::new(service))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    (url, seen, stop)
}

fn values(map: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    map.get_all(key)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_goes_on_every_call_and_the_admin_token_wins_on_control_calls() {
    let (url, seen, stop) = recording_server().await;
    let mut args = vec![
        "--mode",
        "safe",
        "--target",
        &url,
        "--admin-token",
        "admin-1",
    ];
    args.extend(["-H", "x-tenant: acme", "-H", "X-Tenant: beta"]);
    args.extend(["-H", "authorization: Bearer user-7"]);
    // Without probes, so that every purchase seen is one of the load's attempts.
    args.extend(LOAD);
    args.push("--no-probes");
    let report = run(&args).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);

    let calls = std::mem::take(&mut *seen.lock().unwrap());
    let purchases = calls.iter().filter(|(m, _)| *m == "PurchaseSafe").count();
    assert_eq!(purchases as u64, report.outcomes.attempts);
    for method in ["Reset", "GetStock", "ListOrders", "PurchaseSafe"] {
        assert!(calls.iter().any(|(m, _)| *m == method), "no {method} call");
    }
    for (method, metadata) in &calls {
        assert_eq!(values(metadata, "x-tenant"), ["acme", "beta"], "{method}");
        let expected = if method.starts_with("Purchase") {
            "Bearer user-7"
        } else {
            "Bearer admin-1"
        };
        assert_eq!(values(metadata, "authorization"), [expected], "{method}");
    }

    // The recorder can tell: a run without -H leaves no x-tenant anywhere.
    let mut plain = vec!["--mode", "safe", "--target", &url];
    plain.extend(LOAD);
    run(&plain).await.unwrap();
    let calls = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|(_, m)| m.get("x-tenant").is_none()));
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flags_are_refused_before_any_call() {
    let (url, seen, stop) = recording_server().await;
    let files = Files::new("bad");
    let garbage = files.write_arg("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let missing = files.0.join("missing.pem").to_string_lossy().into_owned();
    let https = url.replace("http://", "https://");
    let cases: [(&[&str], &str); 6] = [
        (&["--target", &url, "-H", "bad key: v"], "--metadata"),
        (&["--target", &url, "-H", "grpc-timeout: 1S"], "reserved"),
        (&["--target", &url, "-H", "novalue"], "key: value"),
        (
            &["--target", &https, "--ca-cert", &missing],
            "cannot read --ca-cert",
        ),
        (
            &["--target", &https, "--ca-cert", &garbage],
            "is not valid PEM",
        ),
        (&["--target", &url, "--insecure"], "need an https://"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["--mode", "safe"];
        args.extend(flags);
        args.extend(LOAD);
        let output = driver(&args).await;
        let err = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(i32::from(EXIT_ERROR)),
            "{flags:?}: {err}"
        );
        assert!(err.contains(expected), "{flags:?}: {err}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "a refused run called the checkout"
    );
    let _ = stop.send(());
}

#[test]
fn compare_carries_the_connection_and_distributed_runs_refuse_it() {
    let parsed = cli(&[
        "compare",
        "--target",
        "https://localhost:1",
        "--insecure",
        "-H",
        "k: v",
    ]);
    let Some(Command::Compare(args)) = parsed.command else {
        panic!("not compare");
    };
    let spec = args.to_spec().unwrap();
    for run in &spec.runs {
        assert!(run.connection.insecure());
        assert_eq!(run.connection.metadata.keys().collect::<Vec<_>>(), ["k"]);
    }
    for flags in [
        &["--target", "https://localhost:1"][..],
        &["--target", "localhost:1", "-H", "k: v"],
        &["--target", "localhost:1", "--insecure"],
    ] {
        let mut args = vec!["--mode", "safe", "--coordinator", "localhost:2"];
        args.extend(flags);
        let err = cli(&args).run.to_spec().unwrap_err().to_string();
        assert!(
            err.contains("coordinator") || err.contains("distributed"),
            "{err}"
        );
    }
}
