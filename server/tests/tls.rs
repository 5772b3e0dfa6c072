//! The server over TLS on 127.0.0.1:0 with certificates made in the test (rcgen): health,
//! reflection, the admin token and purchases work over TLS; `--client-ca` refuses clients
//! without a certificate from that CA; a plaintext client gets nothing.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::tls::TlsConfig;
use flashsale_server::{RunningServer, ServerConfig};
use rcgen::ExtendedKeyUsagePurpose;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

mod certs;

use certs::{Ca, Files};

const ADMIN: &str = "tls-test-admin-token";

/// A TLS server signed by `ca`, requiring client certificates of `client_ca` when given.
async fn tls_server(
    files: &Files,
    ca: &Ca,
    client_ca: Option<&Ca>,
    tune: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let (cert, key) = ca.sign(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let mut config = ServerConfig {
        latency: Duration::ZERO,
        tls: TlsConfig {
            tls_cert: Some(files.write("server.pem", &cert)),
            tls_key: Some(files.write("server.key", &key)),
            client_ca: client_ca.map(|c| files.write("client-ca.pem", &c.pem)),
        },
        ..ServerConfig::default()
    };
    config.hardening.admin_token =
        Some(flashsale_server::hardening::AdminToken::new(ADMIN).unwrap());
    tune(&mut config);
    let server = flashsale_server::spawn(config).await.unwrap();
    assert!(
        server.url().starts_with("https://127.0.0.1:"),
        "{}",
        server.url()
    );
    server
}

async fn channel(
    server: &RunningServer,
    ca: &Ca,
    identity: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(server.url())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)?
        .connect()
        .await
}

async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
}

fn admin<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn health_reflection_admin_and_purchases_over_tls() {
    let files = Files::new("all");
    let ca = Ca::new("test CA");
    let server = tls_server(&files, &ca, None, |_| {}).await;
    let channel = channel(&server, &ca, None).await.unwrap();

    assert_eq!(
        health(channel.clone()).await.unwrap(),
        ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(listed)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    assert!(
        listed
            .service
            .iter()
            .any(|s| s.name == "flashsale.v1.Checkout"),
        "{listed:?}"
    );

    let mut checkout = CheckoutClient::new(channel);
    let refused = checkout
        .reset(admin(
            pb::ResetRequest {
                stock: Some(3),
                safe_strategy: 0,
            },
            "wrong-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let reset = checkout
        .reset(admin(
            pb::ResetRequest {
                stock: Some(3),
                safe_strategy: 0,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.stock, 3);
    let bought = checkout
        .purchase_safe(pb::PurchaseRequest {
            user_id: "u1".into(),
            quantity: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!bought.order_id.is_empty(), "{bought:?}");
    server.shutdown().await.unwrap();
}

/// A call that outlasts the idle timeout keeps its TLS connection: the guard still finds the
/// accept loop's connection info on TLS connections and counts the call as in flight.
#[tokio::test]
async fn a_call_longer_than_the_idle_timeout_survives_over_tls() {
    let files = Files::new("idle");
    let ca = Ca::new("test CA");
    let server = tls_server(&files, &ca, None, |config| {
        config.latency = Duration::from_millis(600);
        config.hardening.idle_timeout = Duration::from_millis(200);
    })
    .await;
    let mut checkout = CheckoutClient::new(channel(&server, &ca, None).await.unwrap());
    let reply = checkout
        .purchase_safe(pb::PurchaseRequest {
            user_id: "slow".into(),
            quantity: 1,
            ..Default::default()
        })
        .await;
    assert!(reply.is_ok(), "{reply:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_ca_requires_a_certificate_it_signed() {
    let files = Files::new("mtls");
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let stranger = Ca::new("other CA");
    let server = tls_server(&files, &ca, Some(&clients), |_| {}).await;

    let good = clients.sign(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let served = channel(&server, &ca, Some(good)).await.unwrap();
    assert_eq!(health(served).await.unwrap(), ServingStatus::Serving as i32);

    // Without a certificate, or with one another CA signed: no call gets through (TLS 1.3
    // may finish the client's side of the handshake before the server's alert arrives).
    let wrong = stranger.sign(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    for identity in [None, Some(wrong)] {
        let refused = match channel(&server, &ca, identity).await {
            Ok(channel) => health(channel).await.is_err(),
            Err(_) => true,
        };
        assert!(refused, "a client without a valid certificate got through");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn plaintext_clients_and_unknown_cas_get_nothing() {
    let files = Files::new("plain");
    let ca = Ca::new("test CA");
    let server = tls_server(&files, &ca, None, |_| {}).await;
    let plain = format!("http://{}", server.addr());
    let answer = match Endpoint::from_shared(plain)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
    {
        Ok(channel) => health(channel).await.map_err(|_| ()),
        Err(_) => Err(()),
    };
    assert!(answer.is_err(), "a plaintext client was served");
    let other = Ca::new("other CA");
    assert!(channel(&server, &other, None).await.is_err());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_files_stop_the_server_before_it_starts() {
    let files = Files::new("bad");
    let config = ServerConfig {
        tls: TlsConfig {
            tls_cert: Some(files.write("cert.pem", "not a certificate")),
            tls_key: Some(files.write("key.pem", "not a key")),
            client_ca: None,
        },
        ..ServerConfig::default()
    };
    let err = flashsale_server::spawn(config).await.unwrap_err();
    assert!(err.to_string().contains("--tls-cert"), "{err}");
}
