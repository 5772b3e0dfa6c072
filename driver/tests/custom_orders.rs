//! A custom checkout reconciled against its own order listing (issue #12: "reconciliation where
//! the spec says how to list orders"): the demo's HTTP checkout (`support/http_checkout.rs`,
//! `GET /api/v1/debug/orders`) by flags and by spec file. A complete listing lets the audit PASS
//! where replies were indeterminate (the listing resolves them); a listing that leaves out an
//! acknowledged order fails `no_lost_orders`, one with an order nobody sent fails
//! `no_ghost_orders`; a listing that cannot be used leaves the audit range-based, with the reason.
//! Over gRPC: `grpc.rs`, with the suite's own shop (`shop.v1.Orders/ListOrders`).

use std::time::Duration;

use clap::Parser;
use flashsale_driver::audit::Status;
use flashsale_driver::cli::Cli;
use flashsale_driver::{DriverError, Report, Verdict};

#[path = "../../server/tests/certs/mod.rs"]
mod certs;
#[path = "custom_orders/grpc.rs"]
mod grpc;
#[path = "support/http_checkout.rs"]
mod http_checkout;
mod shop;

use http_checkout::{BODY_WITH_REQUEST_ID, Fault, HttpCheckout, LISTING, Options, serve};

/// The demo's flags for `mode`, its purchases carrying their request ids, 200 users.
fn demo_flags(target: &str, mode: &str) -> Vec<String> {
    let flags = http_checkout::demo_flags(target, mode, BODY_WITH_REQUEST_ID, 200);
    with(flags, &["--order-id-field", "order_id"])
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

async fn run(args: &[String]) -> Result<Report, DriverError> {
    let cli = Cli::try_parse_from(std::iter::once("driver").chain(args.iter().map(String::as_str)))
        .unwrap();
    let spec = cli.run.to_spec()?;
    flashsale_driver::run(&spec).await
}

async fn demo(fault: Fault) -> HttpCheckout {
    serve(Options {
        latency: Duration::from_millis(20),
        fault,
        ..Options::default()
    })
    .await
}

fn failed(report: &Report) -> Vec<&str> {
    report.audit.with_status(Status::Fail)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_listing_is_reconciled_order_by_order() {
    let shop = demo(Fault::None).await;
    let url = shop.url(false);
    let safe = run(&with(demo_flags(&url, "safe"), &LISTING))
        .await
        .unwrap();
    let rec = &safe.audit.reconciliation;
    assert_eq!(safe.audit.verdict, Verdict::Pass, "{:?}", safe.audit);
    assert!(rec.available, "{rec:?}");
    assert_eq!((rec.book_orders, rec.book_units), (40, 40));
    assert_eq!((rec.lost, rec.phantom, rec.ghost), (0, 0, 0));
    for name in ["no_lost_orders", "no_phantom_sales", "no_ghost_orders"] {
        let check = safe.audit.checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(check.status, Status::Pass, "{check:?}");
    }
    // No counters: books_balance stays skipped.
    let balance = safe.audit.checks.iter().find(|c| c.name == "books_balance");
    assert_eq!(balance.unwrap().status, Status::Skipped);

    let buggy = run(&with(demo_flags(&url, "buggy"), &LISTING))
        .await
        .unwrap();
    assert_eq!(buggy.audit.verdict, Verdict::Fail, "{:?}", buggy.audit);
    assert!(buggy.audit.reconciliation.book_units > 40);
    assert!(
        failed(&buggy).contains(&"no_oversell"),
        "{:?}",
        failed(&buggy)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_after_applying_is_resolved_by_the_listing() {
    let shop = demo(Fault::ErrorAfterApply { every: 4 }).await;
    let url = shop.url(false);
    let report = run(&with(demo_flags(&url, "safe"), &LISTING))
        .await
        .unwrap();
    assert_eq!(report.outcomes.indeterminate, 10, "{:?}", report.outcomes);
    let rec = &report.audit.reconciliation;
    assert_eq!(rec.resolved_applied, 10, "{rec:?}");
    assert_eq!(rec.unresolved, 0);
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);
    // Without the listing, the same run is only INCONCLUSIVE.
    let ranged = run(&demo_flags(&url, "safe")).await.unwrap();
    assert_eq!(ranged.audit.verdict, Verdict::Inconclusive);
    assert!(!ranged.audit.reconciliation.available);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_omits_an_acknowledged_order_fails() {
    let shop = demo(Fault::ListingOmitsFirst).await;
    let report = run(&with(demo_flags(&shop.url(false), "safe"), &LISTING))
        .await
        .unwrap();
    assert_eq!(report.audit.verdict, Verdict::Fail, "{:?}", report.audit);
    assert_eq!(report.audit.reconciliation.lost, 1);
    assert!(
        failed(&report).contains(&"no_lost_orders"),
        "{:?}",
        failed(&report)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_with_an_order_nobody_sent_fails() {
    let shop = demo(Fault::ListingGhost).await;
    let report = run(&with(demo_flags(&shop.url(false), "safe"), &LISTING))
        .await
        .unwrap();
    assert_eq!(report.audit.verdict, Verdict::Fail, "{:?}", report.audit);
    assert_eq!(report.audit.reconciliation.ghost, 1);
    assert!(
        failed(&report).contains(&"no_ghost_orders"),
        "{:?}",
        failed(&report)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn by_spec_file_and_an_unusable_listing_says_why() {
    let shop = demo(Fault::None).await;
    let files = certs::Files::new("orders-spec");
    let spec = files.write(
        "demo.toml",
        &format!(
            r#"
[purchase]
url = "/api/v1/checkout/safe"
body = '{BODY_WITH_REQUEST_ID}'
[stock]
url = "/api/v1/debug/stock"
field = "remaining"
[reset]
url = "/api/v1/debug/reset"
body = '{{"stock":{{{{stock}}}}}}'
[outcome]
sold_out = 'code == 409'
order_id = "reply.order_id"
[orders]
url = "/api/v1/debug/orders"
list = "orders"
order_id = "order_id"
user = "user"
quantity = "qty"
request_id = "request_id"
"#
        ),
    );
    let base: Vec<String> = [
        "--checkout",
        &spec.display().to_string(),
        "--target",
        &shop.url(false),
        "-u",
        "100",
        "--stock",
        "30",
        "--settle",
        "1s",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    let report = run(&base).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);
    assert_eq!(report.audit.reconciliation.book_orders, 30);

    // The array somewhere else: the listing exists but cannot be read, so the checks that need
    // the book are inconclusive (never a PASS), and say why.
    let report = run(&with(base.clone(), &["--orders-list", "items"]))
        .await
        .unwrap();
    let rec = &report.audit.reconciliation;
    assert!(!rec.available);
    let reason = rec.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("nothing at `items`"), "{reason}");
    assert_eq!(
        report.audit.verdict,
        Verdict::Inconclusive,
        "{:?}",
        report.audit
    );
    // A reply that is not an array (the stock reply read as the listing) likewise.
    let report = run(&with(
        base,
        &["--orders-url", "/api/v1/debug/stock", "--orders-list", "."],
    ))
    .await
    .unwrap();
    let reason = report
        .audit
        .reconciliation
        .reason
        .clone()
        .unwrap_or_default();
    assert!(reason.contains("not a JSON array"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_listing_over_64_kib_is_read_with_its_own_cap() {
    let shop = demo(Fault::None).await;
    let prefix = format!("{}-", "p".repeat(90));
    let mut args = with(demo_flags(&shop.url(false), "safe"), &LISTING);
    for (flag, value) in [("-u", "400"), ("--stock", "350")] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = value.into();
    }
    let args = with(args, &["--user-prefix", &prefix]);
    let report = run(&args).await.unwrap();
    let listing = serde_json::to_vec(&*shop.shop.book.lock().unwrap()).unwrap();
    assert!(listing.len() > 64 * 1024, "{} bytes", listing.len());
    let rec = &report.audit.reconciliation;
    assert!(rec.available, "{rec:?}");
    assert_eq!(rec.book_orders, 350);
    assert_eq!(report.audit.verdict, Verdict::Pass, "{:?}", report.audit);
}
