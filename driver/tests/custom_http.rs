//! HTTP/JSON checkouts (issue #12): the driver, given only flags or a spec file, against the
//! demo's HTTP checkout (`support/http_checkout.rs`): buggy fails the audit and safe passes,
//! over HTTP/1.1 and HTTP/2, plaintext and TLS; doubles whose reset does nothing or that answer
//! 500 after applying; a certificate that fails verification (exit 2). The transport on its
//! own is tested in `custom_http_transport.rs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use flashsale_driver::cli::Cli;
use flashsale_driver::{DriverError, EXIT_ERROR, Report, Verdict};
use rcgen::ExtendedKeyUsagePurpose;

#[path = "support/binary.rs"]
mod binary;
#[path = "../../server/tests/certs/mod.rs"]
mod certs;
#[path = "support/http_checkout.rs"]
mod http_checkout;

use binary::driver;
use certs::{Ca, Files};
use http_checkout::{BODY, Fault, HttpCheckout, Options, serve};

/// The demo's flags for `mode` (buggy or safe) with order ids, 300 users.
fn demo_flags(target: &str, mode: &str) -> Vec<String> {
    let flags = http_checkout::demo_flags(target, mode, BODY, 300);
    with(flags, &["--order-id-field", "order_id"])
}

async fn run(args: &[String]) -> Result<Report, DriverError> {
    let cli = Cli::try_parse_from(std::iter::once("driver").chain(args.iter().map(String::as_str)))
        .unwrap();
    let spec = cli.run.to_spec()?;
    flashsale_driver::run(&spec).await
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// The demo checkout with a latency long enough for the buggy handler to oversell.
async fn demo(fault: Fault, tls: Option<(String, String)>) -> HttpCheckout {
    serve(Options {
        latency: Duration::from_millis(50),
        fault,
        tls,
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn by_flags_buggy_fails_and_safe_passes_over_http1_and_http2() {
    for version in [&[][..], &["--http2"][..]] {
        let shop = demo(Fault::None, None).await;
        let url = shop.url(false);
        let safe = run(&with(demo_flags(&url, "safe"), version)).await.unwrap();
        assert_eq!(
            safe.audit.verdict,
            Verdict::Pass,
            "{version:?} {:?}",
            safe.audit
        );
        assert_eq!(safe.outcomes.purchased, 40);
        assert_eq!(safe.outcomes.sold_out, 260);
        assert_eq!(shop.stock(), 0);
        let buggy = run(&with(demo_flags(&url, "buggy"), version))
            .await
            .unwrap();
        assert_eq!(
            buggy.audit.verdict,
            Verdict::Fail,
            "{version:?} {:?}",
            buggy.audit
        );
        assert!(buggy.outcomes.purchased > 40, "{:?}", buggy.outcomes);
        assert!(shop.stock() < 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn by_spec_file_with_headers_over_http2() {
    let shop = demo(Fault::None, None).await;
    let files = Files::new("http-spec");
    let spec = files.write(
        "demo.toml",
        r#"
[purchase]
url = "/api/v1/checkout/safe"
body = '{"user":"{{user}}","qty":{{quantity}}}'
[stock]
url = "/api/v1/debug/stock"
field = "remaining"
[reset]
url = "/api/v1/debug/reset"
body = '{"stock":{{stock}}}'
[outcome]
purchased = 'code == 200 && reply.status == "success"'
sold_out = 'code == 409 && reply.status == "sold_out"'
order_id = "reply.order_id"
stock_after = "reply.remaining"
[http]
version = "2"
"#,
    );
    let args: Vec<String> = [
        "--checkout",
        &spec.display().to_string(),
        "--target",
        &shop.url(false),
        "-H",
        "authorization: Bearer demo-token",
        "-u",
        "200",
        "--stock",
        "30",
        "--settle",
        "1s",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let report = run(&args).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);
    assert_eq!(report.outcomes.purchased, 30);
    assert_eq!(report.outcomes.bad_replies, 0);
    let headers = shop.shop.last_headers.lock().unwrap().clone();
    assert_eq!(headers["authorization"], "Bearer demo-token");
    // The same file pointed at the buggy handler by a flag fails.
    let buggy = with(args, &["--http-post", "/api/v1/checkout/buggy"]);
    let report = run(&buggy).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Fail, "{:?}", report.audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_that_does_nothing_stops_the_run() {
    let shop = demo(Fault::ResetIgnored, None).await;
    let err = run(&demo_flags(&shop.url(false), "safe"))
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::ResetNotApplied { .. }), "{err}");
    assert_eq!(shop.shop.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_after_applying_is_indeterminate_not_a_pass() {
    let shop = demo(Fault::ErrorAfterApply { every: 4 }, None).await;
    let report = run(&demo_flags(&shop.url(false), "safe")).await.unwrap();
    // 40 units applied; every fourth answered 500 (indeterminate, may have been applied).
    assert_eq!(shop.stock(), 0);
    assert_eq!(report.outcomes.indeterminate, 10, "{:?}", report.outcomes);
    assert_eq!(report.outcomes.purchased, 30);
    assert_eq!(
        report.audit.verdict,
        Verdict::Inconclusive,
        "{:?}",
        report.audit
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_with_a_ca_and_a_refused_certificate_exits_2() {
    let files = Files::new("http-tls-run");
    let ca = Ca::new("demo CA");
    let shop = demo(
        Fault::None,
        Some(ca.sign(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )),
    )
    .await;
    let url = shop.url(true);
    let ca_file = files.write_arg("ca.pem", &ca.pem);
    for version in [&[][..], &["--http2"][..]] {
        let args = with(demo_flags(&url, "safe"), &["--ca-cert", &ca_file]);
        let safe = run(&with(args, version)).await.unwrap();
        assert_eq!(
            safe.audit.verdict,
            Verdict::Pass,
            "{version:?} {:?}",
            safe.audit
        );
        assert!(safe.run.target.starts_with("https://"));
    }
    let args = with(demo_flags(&url, "buggy"), &["--ca-cert", &ca_file]);
    let buggy = run(&args).await.unwrap();
    assert_eq!(buggy.audit.verdict, Verdict::Fail, "{:?}", buggy.audit);

    let before = shop.shop.requests.load(Ordering::SeqCst);
    let other = files.write_arg("other.pem", &Ca::new("another CA").pem);
    let output = driver(&with(demo_flags(&url, "safe"), &["--ca-cert", &other])).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(i32::from(EXIT_ERROR)),
        "{stderr}"
    );
    assert!(stderr.contains("invalid peer certificate"), "{stderr}");
    assert!(
        stderr.contains("give --ca-cert with the CA that signed it"),
        "{stderr}"
    );
    assert_eq!(shop.shop.requests.load(Ordering::SeqCst), before);
}
