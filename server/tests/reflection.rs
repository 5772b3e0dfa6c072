//! Server reflection, v1 and v1alpha, through tonic-reflection's own clients: what `grpcurl`,
//! `ghz`, k6 and Postman see when they are given no proto files.

use flashsale_server::{RunningServer, ServerConfig, spawn};
use prost::Message;
use prost_types::FileDescriptorProto;
use tonic::transport::Channel;

const CHECKOUT: &str = "flashsale.v1.Checkout";
const HEALTH: &str = "grpc.health.v1.Health";
const CHECKOUT_RPCS: [&str; 6] = [
    "PurchaseBuggy",
    "PurchaseUnstable",
    "PurchaseSafe",
    "GetStock",
    "Reset",
    "ListOrders",
];

async fn connect(server: &RunningServer) -> Channel {
    Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Asks reflection `$version` (the two versions have identical messages in different modules,
/// hence a macro) for the service list and for the file defining the checkout, on one stream;
/// returns the service names and the checkout's RPC names.
macro_rules! services_and_rpcs {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol(CHECKOUT.into()),
        ]
        .map(|request| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        });
        let mut replies = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();

        let listed = match replies
            .message()
            .await
            .unwrap()
            .and_then(|r| r.message_response)
        {
            Some(MessageResponse::ListServicesResponse(listed)) => listed,
            other => panic!("expected a service list, got {other:?}"),
        };
        let services: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();

        let file = match replies
            .message()
            .await
            .unwrap()
            .and_then(|r| r.message_response)
        {
            Some(MessageResponse::FileDescriptorResponse(file)) => file,
            other => panic!("expected the file defining {CHECKOUT}, got {other:?}"),
        };
        (services, checkout_rpcs(&file.file_descriptor_proto))
    }};
}

/// The RPC names of `flashsale.v1.Checkout` in the first of `files` that defines it.
fn checkout_rpcs(files: &[Vec<u8>]) -> Vec<String> {
    let file = files
        .iter()
        .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|file| file.package() == "flashsale.v1")
        .expect("the file of package flashsale.v1");
    let service = file
        .service
        .iter()
        .find(|service| service.name() == "Checkout")
        .expect("service Checkout in the reflected file");
    service
        .method
        .iter()
        .map(|method| method.name().to_owned())
        .collect()
}

fn assert_lists_the_services(services: &[String], rpcs: &[String]) {
    for wanted in [CHECKOUT, HEALTH] {
        assert!(
            services.iter().any(|s| s == wanted),
            "{wanted} missing from {services:?}"
        );
    }
    assert_eq!(rpcs, CHECKOUT_RPCS, "reflected RPCs of {CHECKOUT}");
}

#[tokio::test]
async fn reflection_v1_lists_checkout_and_health() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let channel = connect(&server).await;
    let (services, rpcs) = services_and_rpcs!(v1, channel);
    assert_lists_the_services(&services, &rpcs);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reflection_v1alpha_lists_checkout_and_health() {
    let server = spawn(ServerConfig::default()).await.unwrap();
    let channel = connect(&server).await;
    let (services, rpcs) = services_and_rpcs!(v1alpha, channel);
    assert_lists_the_services(&services, &rpcs);
    server.shutdown().await.unwrap();
}
