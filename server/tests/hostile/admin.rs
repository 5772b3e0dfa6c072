//! Reset and ListOrders need the admin token; nothing changes without it.

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::hardening::{AdminToken, Hardening};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::Local;

fn reset(stock: i64, auth: Option<&str>) -> tonic::Request<pb::ResetRequest> {
    let mut request = tonic::Request::new(pb::ResetRequest {
        stock: Some(stock),
        safe_strategy: 0,
    });
    if let Some(auth) = auth {
        request
            .metadata_mut()
            .insert("authorization", auth.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn admin_calls_need_the_token() {
    let server = Local::start(Hardening {
        admin_token: Some(AdminToken::new("s3cret").unwrap()),
        ..Hardening::default()
    })
    .await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CheckoutClient::new(channel);
    let before = client.get_stock(pb::GetStockRequest {}).await.unwrap();
    let before = before.into_inner();

    let refused = [
        (None, Code::Unauthenticated),
        (Some("s3cret"), Code::Unauthenticated),
        (Some("Basic czNjcmV0"), Code::Unauthenticated),
        (Some("Bearer wrong"), Code::PermissionDenied),
        (Some("Bearer s3cre"), Code::PermissionDenied),
    ];
    for (auth, code) in refused {
        let status = client.reset(reset(7, auth)).await.unwrap_err();
        assert_eq!(status.code(), code, "Reset with {auth:?}");
        let mut list = tonic::Request::new(pb::ListOrdersRequest::default());
        if let Some(auth) = auth {
            list.metadata_mut()
                .insert("authorization", auth.parse().unwrap());
        }
        let status = client.list_orders(list).await.err().unwrap();
        assert_eq!(status.code(), code, "ListOrders with {auth:?}");
    }
    let after = client.get_stock(pb::GetStockRequest {}).await.unwrap();
    assert_eq!(after.into_inner(), before, "refused calls changed nothing");

    let reply = client
        .reset(reset(7, Some("Bearer s3cret")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.stock, 7);
    assert!(reply.round > before.round);
    // Purchases and GetStock need no token.
    let bought = client
        .purchase_safe(pb::PurchaseRequest {
            user_id: "u1".into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bought.stock_after, 6);
    server.stop().await;
}

#[tokio::test]
async fn without_a_token_admin_calls_are_open() {
    let server = Local::start(Hardening::default()).await;
    let channel = Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = CheckoutClient::new(channel);
    let reply = client.reset(reset(3, None)).await.unwrap().into_inner();
    assert_eq!(reply.stock, 3);
    server.stop().await;
}
