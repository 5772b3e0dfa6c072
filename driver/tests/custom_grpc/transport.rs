//! The transport alone: `GrpcConnection` against the shop, with reflection and with `--proto`,
//! its refusals, and 1000 calls in flight over a few connections.

use super::shop;

use std::sync::Arc;

use flashsale_driver::DriverError;
use flashsale_driver::checkout::custom::grpc::GrpcConnection;
use flashsale_driver::spec::Connection;
use flashsale_driver::spec::custom::{
    Call, CustomApi, FieldPath, GrpcOptions, OutcomeRules, ReplyStatus, Rule, Template, Transport,
    Values,
};
use serde_json::json;
use shop::{RunningShop, Variant};
use tonic::Code;

/// The deadline sent with each call (`grpc-timeout`).
const T: std::time::Duration = std::time::Duration::from_secs(10);

const PLACE: &str = "shop.v1.Orders/PlaceOrder";
const DATA: &str =
    r#"{"customer":"{{user}}","sku":"A1","qty":{{quantity}},"idempotency_key":"{{request_id}}"}"#;

fn call(target: &str, data: Option<&str>) -> Call {
    Call {
        target: target.to_string(),
        path: None,
        body: data.map(|d| Template::json("--data", d).unwrap()),
    }
}

fn api(place: Call, protos: Vec<std::path::PathBuf>) -> Arc<CustomApi> {
    Arc::new(CustomApi {
        rules: OutcomeRules {
            purchased: Some(Rule::parse("--purchased", r#"reply.status == "CONFIRMED""#).unwrap()),
            sold_out: Rule::parse("--sold-out", "code == FAILED_PRECONDITION").unwrap(),
            limit_reached: None,
            order_id: Some(FieldPath::parse("order_ref").unwrap()),
            stock_after: Some(FieldPath::parse("remaining").unwrap()),
        },
        stock: FieldPath::parse("available").unwrap(),
        purchase: place,
        stock_call: call("shop.v1.Inventory/GetInventory", Some(r#"{"sku":"A1"}"#)),
        reset: Some(call(
            "shop.v1.Inventory/Restock",
            Some(r#"{"sku":"A1","available":{{stock}}}"#),
        )),
        orders: None,
        transport: Transport::Grpc(GrpcOptions {
            protos,
            import_paths: Vec::new(),
        }),
        name: "shop".into(),
        origin: None,
        source: String::new(),
    })
}

fn values(user: &str, request_id: &str) -> Values<'static> {
    Values {
        user: Box::leak(user.to_string().into_boxed_str()),
        quantity: 1,
        request_id: Box::leak(request_id.to_string().into_boxed_str()),
        round: 0,
        stock: 3,
    }
}

async fn connect(shop: &RunningShop, api: &Arc<CustomApi>) -> Result<GrpcConnection, DriverError> {
    GrpcConnection::connect(&shop.url(), &Connection::default(), api).await
}

/// Buys until sold out over one connection, with `api`, and checks every reply.
async fn buys_until_sold_out(api: Arc<CustomApi>, reflection: bool) {
    let shop = RunningShop::start(Variant::Safe, 2, reflection);
    let mut conn = connect(&shop, &api).await.expect("connects and resolves");
    let reset = conn
        .call(api.reset.as_ref().unwrap(), &values("admin", "r"), T)
        .await;
    assert_eq!(reset.status, ReplyStatus::Grpc(Code::Ok));
    assert_eq!(reset.body, Some(json!({"sku": "A1", "available": "3"})));
    for n in 1..=3 {
        let reply = conn
            .call(&api.purchase, &values("u-1", &format!("u-1.{n}")), T)
            .await;
        assert_eq!(reply.status, ReplyStatus::Grpc(Code::Ok));
        let body = reply.body.expect("a JSON reply");
        assert_eq!(body["status"], "CONFIRMED");
        assert_eq!(body["order_ref"], format!("ord-{n}"));
        assert_eq!(body["remaining"], (3 - n).to_string(), "{body}");
        let outcome = api.rules.classify(reply.status, Some(&body), 1, "rq");
        assert!(matches!(
            outcome,
            flashsale_driver::outcome::Outcome::Purchased { .. }
        ));
    }
    let sold_out = conn.call(&api.purchase, &values("u-2", "u-2.0"), T).await;
    assert_eq!(sold_out.status, ReplyStatus::Grpc(Code::FailedPrecondition));
    assert_eq!(sold_out.body, None);
    // The stock call reads 0: a default value is present, not left out.
    let stock = conn.call(&api.stock_call, &values("admin", "s"), T).await;
    assert_eq!(api.stock.get_i64(stock.body.as_ref().unwrap()), Some(0));
    assert_eq!(shop.shop.stock(), 0);
}

#[tokio::test]
async fn calls_through_reflection() {
    buys_until_sold_out(api(call(PLACE, Some(DATA)), Vec::new()), true).await;
}

#[tokio::test]
async fn calls_with_proto_files_on_a_server_without_reflection() {
    let protos = vec![shop::proto_path().into()];
    buys_until_sold_out(api(call(PLACE, Some(DATA)), protos), false).await;
}

#[tokio::test]
async fn without_reflection_or_proto_says_to_give_proto() {
    let shop = RunningShop::start(Variant::Safe, 2, false);
    let err = connect(&shop, &api(call(PLACE, Some(DATA)), Vec::new()))
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("does not offer server reflection"), "{text}");
    assert!(text.contains("--proto"), "{text}");
}

/// What resolving `place` against a shop with reflection says.
async fn refusal(place: Call) -> String {
    let shop = RunningShop::start(Variant::Safe, 2, true);
    match connect(&shop, &api(place, Vec::new())).await {
        Ok(_) => panic!("resolved"),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn an_unknown_method_lists_the_methods_of_its_service() {
    let text = refusal(call("shop.v1.Orders/PlaceOrdr", Some(DATA))).await;
    assert!(text.contains("no method `PlaceOrdr`"), "{text}");
    assert!(text.contains("PlaceOrder"), "{text}");
}

#[tokio::test]
async fn an_unknown_service_lists_what_reflection_offers() {
    let text = refusal(call("shop.v2.Orders/PlaceOrder", Some(DATA))).await;
    assert!(text.contains("`shop.v2.Orders` is unknown"), "{text}");
    assert!(text.contains("shop.v1.Inventory, shop.v1.Orders"), "{text}");
}

#[tokio::test]
async fn a_streaming_method_is_refused() {
    let text = refusal(call("shop.v1.Orders/WatchOrders", None)).await;
    assert!(text.contains("streaming"), "{text}");
}

#[tokio::test]
async fn data_that_does_not_fit_names_the_field_and_the_message() {
    let text = refusal(call(
        PLACE,
        Some(r#"{"customer":"{{user}}","quantity":{{quantity}}}"#),
    ))
    .await;
    assert!(text.contains("shop.v1.OrderRequest"), "{text}");
    assert!(text.contains("quantity"), "{text}");
    let text = refusal(call(PLACE, Some(r#"{"customer":"{{user}}","qty":"many"}"#))).await;
    assert!(text.contains("shop.v1.OrderRequest"), "{text}");
}

#[tokio::test]
async fn a_reply_over_the_cap_is_resource_exhausted_and_the_connection_lives_on() {
    let shop = RunningShop::start(Variant::Safe, 2, true);
    let api = api(call(PLACE, Some(DATA)), Vec::new());
    let mut conn = connect(&shop, &api).await.unwrap();
    let huge = conn
        .call(&api.purchase, &values(shop::HUGE_REPLY_CUSTOMER, "h.0"), T)
        .await;
    assert_eq!(huge.status, ReplyStatus::Grpc(Code::ResourceExhausted));
    assert_eq!(huge.body, None);
    let next = conn.call(&api.purchase, &values("u-1", "u-1.0"), T).await;
    assert_eq!(next.status, ReplyStatus::Grpc(Code::Ok));
}

#[tokio::test]
async fn a_bad_method_name_is_refused() {
    let text = refusal(call("PlaceOrder", Some(DATA))).await;
    assert!(text.contains("package.Service/Method"), "{text}");
}

#[tokio::test]
async fn a_dead_service_is_a_connection_error() {
    let addr = shop::dead_address();
    let api = api(call(PLACE, Some(DATA)), Vec::new());
    let err = GrpcConnection::connect(&format!("http://{addr}"), &Connection::default(), &api)
        .await
        .expect_err("refused");
    assert!(matches!(err, DriverError::Connect { .. }), "{err}");
}

/// 1000 calls in flight together over 4 connections against the safe shop: exactly the stock
/// is sold, everything else is sold out, nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_over_a_few_connections() {
    let shop = RunningShop::start(Variant::Safe, 100, true);
    let api = api(call(PLACE, Some(DATA)), Vec::new());
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(connect(&shop, &api).await.unwrap());
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let mut conn = connections[i % 4].clone();
            let api = api.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let user = format!("u-{i}");
                let request_id = format!("{user}.0");
                let values = Values {
                    user: &user,
                    quantity: 1,
                    request_id: &request_id,
                    round: 0,
                    stock: 0,
                };
                barrier.wait().await;
                conn.call(&api.purchase, &values, T).await.status
            })
        })
        .collect();
    let mut ok = 0;
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReplyStatus::Grpc(Code::Ok) => ok += 1,
            ReplyStatus::Grpc(Code::FailedPrecondition) => sold_out += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, sold_out), (100, 900));
    assert_eq!(shop.shop.stock(), 0);
}
