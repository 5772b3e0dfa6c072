//! A differential test (issue #25): the lean client and tonic's client against the same
//! fault-injecting `h2` double come to the same outcome for every answer it gives, except
//! where the lean client is stricter by design: a reply over `MAX_REPLY_BYTES` (not asked),
//! and a unary reply of two messages, which tonic answers with the first while grpc-go and
//! grpc-java (and the lean client) fail it as INTERNAL (a cardinality violation). And against
//! our own server, purchase by purchase.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use tonic::Code;
use tonic::metadata::MetadataValue;

use super::tests::{call, double};
use super::{CallError, LeanClient};
use crate::spec::Metadata;

/// What a call came to, as both clients can say it.
fn lean_outcome(result: Result<pb::PurchaseReply, CallError>) -> Result<String, Code> {
    result
        .map(|reply| reply.order_id)
        .map_err(|CallError::Status(code)| code)
}

async fn tonic_call(url: &str, user: &str) -> Result<String, Code> {
    let mut client = CheckoutClient::connect(url.to_string()).await.unwrap();
    let mut request = tonic::Request::new(pb::PurchaseRequest {
        user_id: user.into(),
        quantity: 1,
        request_id: format!("{user}.0"),
        round: 0,
    });
    request.set_timeout(Duration::from_secs(5));
    request
        .metadata_mut()
        .insert("x-run", MetadataValue::from_static("r1"));
    client
        .purchase_safe(request)
        .await
        .map(|reply| reply.into_inner().order_id)
        .map_err(|status| status.code())
}

#[tokio::test]
async fn the_lean_client_and_tonic_agree_on_every_answer() {
    let (url, _server) = double().await;
    let metadata = Metadata::parse(&["x-run: r1"]).unwrap();
    let timeout = Duration::from_secs(5);
    let answers = [
        "good",
        "split",
        "trailers-only",
        "http-503",
        "refused",
        "no-status",
        "compressed",
        "short",
        "two",
        "error-status",
    ];
    let mut differ = Vec::new();
    for user in answers {
        let mut lean = LeanClient::connect(&url, &metadata, timeout).await.unwrap();
        let ours = lean_outcome(call(&mut lean, user).await);
        let theirs = tonic_call(&url, user).await;
        if ours != theirs {
            differ.push(format!("{user}: lean {ours:?}, tonic {theirs:?}"));
        }
    }
    let expected = [r#"two: lean Err(Internal), tonic Ok("o")"#.to_string()];
    assert_eq!(differ, expected);
}

/// A purchase's outcome in words both clients can be compared in.
fn kind(result: Result<pb::PurchaseReply, Code>) -> String {
    match result {
        Ok(reply) => format!("{:?}", pb::Outcome::try_from(reply.outcome)),
        Err(code) => format!("{code:?}"),
    }
}

#[tokio::test]
async fn the_lean_client_and_tonic_agree_against_our_server() {
    let server = flashsale_server::spawn(flashsale_server::ServerConfig {
        stock: 4,
        latency: Duration::ZERO,
        per_user_limit: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let url = server.url();
    let timeout = Duration::from_secs(5);
    let mut lean = LeanClient::connect(&url, &Metadata::default(), timeout)
        .await
        .unwrap();
    let uri = lean.uri("/flashsale.v1.Checkout/PurchaseSafe").unwrap();
    let mut tonic = CheckoutClient::connect(url.clone()).await.unwrap();
    // (lean's user, tonic's user, quantity): each pair must come to the same outcome.
    let cases = [
        ("a", "b", 1),  // purchased (stock 4 -> 2)
        ("a", "b", 1),  // the per-user limit
        ("c", "d", 0),  // quantity 0 means 1: purchased (stock 2 -> 0)
        ("e", "f", 11), // over the maximum quantity
        ("g", "h", 1),  // sold out
    ];
    let mut seen = Vec::new();
    for (n, (ours, theirs, quantity)) in cases.into_iter().enumerate() {
        let request = |user: &str| pb::PurchaseRequest {
            user_id: user.into(),
            quantity,
            request_id: format!("{user}.{n}"),
            round: 0,
        };
        let by_lean = lean
            .unary::<pb::PurchaseReply>(&uri, &request(ours), timeout)
            .await
            .map_err(|CallError::Status(code)| code);
        let by_tonic = tonic
            .purchase_safe(request(theirs))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status.code());
        let (by_lean, by_tonic) = (kind(by_lean), kind(by_tonic));
        assert_eq!(by_lean, by_tonic, "case {n}");
        seen.push(by_lean);
    }
    let want = [
        "Ok(Purchased)",
        "Ok(LimitReached)",
        "Ok(Purchased)",
        "InvalidArgument",
        "Ok(SoldOut)",
    ];
    assert_eq!(seen, want);
}
