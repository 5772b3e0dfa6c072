//! The listing over gRPC: `shop.v1.Orders/ListOrders` of the suite's own shop, through
//! reflection, in a whole run and on its own (a listing far over the 64 KiB the other calls
//! may read).

use std::sync::Arc;
use std::time::Duration;

use flashsale_driver::Verdict;
use flashsale_driver::checkout::book::BookState;
use flashsale_driver::checkout::custom::CustomConnection;
use flashsale_driver::outcome::Outcome;
use flashsale_driver::spec::Connection;
use flashsale_driver::spec::custom::{CustomFile, ReplyStatus, Values};
use flashsale_driver::spec::ids::AttemptKey;
use tonic::Code;

use super::shop::{self, RunningShop, Variant};
use super::{run, with};

const TIMEOUT: Duration = Duration::from_secs(20);

fn shop_flags(url: &str) -> Vec<String> {
    let mut flags = shop::checkout_flags();
    flags.extend(
        [
            "--target",
            url,
            "--orders-call",
            "shop.v1.Orders/ListOrders",
            "--orders-data",
            r#"{"sku":"A1"}"#,
            "--orders-list",
            "orders",
            "--orders-order-id",
            "order_ref",
            "--orders-user",
            "customer",
            "--orders-quantity",
            "qty",
            "--orders-request-id",
            "idempotency_key",
            "-u",
            "100",
            "--stock",
            "30",
            "--settle",
            "1s",
        ]
        .map(String::from),
    );
    flags
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_listing_reconciles_the_run() {
    let shop = RunningShop::start(Variant::Safe, 0, true);
    let safe = run(&shop_flags(&shop.url())).await.unwrap();
    let rec = &safe.audit.reconciliation;
    assert_eq!(safe.audit.verdict, Verdict::Pass, "{:?}", safe.audit);
    assert!(rec.available, "{rec:?}");
    assert_eq!((rec.book_orders, rec.lost, rec.ghost), (30, 0, 0));

    let buggy = RunningShop::start(Variant::Buggy, 0, true);
    let report = run(&shop_flags(&buggy.url())).await.unwrap();
    assert_eq!(report.audit.verdict, Verdict::Fail, "{:?}", report.audit);
    assert!(report.audit.reconciliation.book_units > 30);
    // A listing method the service does not have stops the run before it starts (exit 2).
    let mut wrong = shop_flags(&shop.url());
    let i = wrong
        .iter()
        .position(|a| a == "shop.v1.Orders/ListOrders")
        .unwrap();
    wrong[i] = "shop.v1.Orders/ListOrdrs".into();
    let err = run(&with(wrong, &[])).await.unwrap_err().to_string();
    assert!(err.contains("no method `ListOrdrs`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_over_64_kib_is_read_with_its_own_cap() {
    let shop = RunningShop::start(Variant::Safe, 1000, true);
    let spec = r#"
[purchase]
call = "shop.v1.Orders/PlaceOrder"
data = '{"customer":"{{user}}","sku":"A1","qty":{{quantity}},"idempotency_key":"{{request_id}}"}'
[stock]
call = "shop.v1.Inventory/GetInventory"
data = '{"sku":"A1"}'
field = "available"
[outcome]
sold_out = "code == FAILED_PRECONDITION"
order_id = "order_ref"
[orders]
call = "shop.v1.Orders/ListOrders"
list = "orders"
order_id = "order_ref"
user = "customer"
quantity = "qty"
request_id = "idempotency_key"
"#;
    let api = Arc::new(CustomFile::parse(spec).unwrap().compile().unwrap());
    let mut conn = CustomConnection::connect(&shop.url(), &Connection::default(), &api)
        .await
        .unwrap();
    // Long user ids: 400 orders of ~300 bytes each, far over 64 KiB.
    let prefix = format!("{}-u", "x".repeat(140));
    for i in 0..400 {
        let user = format!("{prefix}{i}");
        let request_id = format!("{user}.0");
        let values = Values {
            user: &user,
            quantity: 1,
            request_id: &request_id,
            ..Values::SAMPLE
        };
        let outcome = conn.purchase(&values, TIMEOUT).await;
        assert!(matches!(outcome, Outcome::Purchased { .. }), "{outcome:?}");
    }
    let listing = &api.orders.as_ref().unwrap().call;
    let plain = conn.call(listing, &Values::SAMPLE, TIMEOUT).await.unwrap();
    assert_eq!(plain.status, ReplyStatus::Grpc(Code::ResourceExhausted));
    let BookState::Complete(book) = conn.orders(&prefix, 400, TIMEOUT).await else {
        panic!("the listing was not read");
    };
    assert_eq!(book.entries.len(), 400);
    assert_eq!(
        book.entries[7].request,
        Some(AttemptKey { user: 7, seq: 0 })
    );
}
