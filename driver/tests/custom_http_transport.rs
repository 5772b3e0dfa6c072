//! HTTP/JSON checkouts (issue #12): the transport (`checkout::custom::http`) on its own,
//! against the demo's HTTP checkout and doubles that break it: 1000 requests in flight over
//! HTTP/1.1 keep-alive and HTTP/2, headers, bounded replies, refusals vs. indeterminate
//! failures, TLS with a CA, mutual TLS, `--insecure` and `--authority`. The driver's runs are
//! in `custom_http.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flashsale_driver::DriverError;
use flashsale_driver::checkout::custom::http::{HttpConnection, MAX_REPLY_BYTES, Outgoing};
use flashsale_driver::spec::custom::ReplyStatus;
use flashsale_driver::spec::{ClientTls, Connection, Metadata, connection::Pem};
use hyper::Method;
use rcgen::ExtendedKeyUsagePurpose;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

#[path = "../../server/tests/certs/mod.rs"]
mod certs;
#[path = "support/http_checkout.rs"]
mod http_checkout;

use certs::{Ca, Files};
use http_checkout::{Fault, HttpCheckout, Options, serve};

fn purchase(mode: &str, user: usize) -> Outgoing<'static> {
    Outgoing {
        method: &Method::POST,
        path: format!("/api/v1/checkout/{mode}"),
        body: Some(format!(r#"{{"user":"u-{user}","qty":1}}"#)),
    }
}

/// `users` purchases in `mode` at once over clones of `conn`: (statuses, bodies).
async fn burst(
    conn: &HttpConnection,
    mode: &'static str,
    users: usize,
) -> Vec<(ReplyStatus, Option<serde_json::Value>)> {
    let start = Arc::new(tokio::sync::Barrier::new(users));
    let tasks: Vec<_> = (0..users)
        .map(|user| {
            let conn = conn.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                let reply =
                    tokio::time::timeout(Duration::from_secs(30), conn.send(purchase(mode, user)))
                        .await
                        .expect("a reply within the deadline");
                (reply.status, reply.body)
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(users);
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    replies
}

fn count(replies: &[(ReplyStatus, Option<serde_json::Value>)], status: u16) -> usize {
    replies
        .iter()
        .filter(|(s, _)| *s == ReplyStatus::Http(status))
        .count()
}

async fn slow_checkout(fault: Fault) -> HttpCheckout {
    serve(Options {
        latency: Duration::from_millis(50),
        fault,
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_requests_in_flight_over_http1_and_http2() {
    for http2 in [false, true] {
        // Safe: exactly the stock is sold, every other user hears "sold out".
        let shop = slow_checkout(Fault::None).await;
        let conn = HttpConnection::open(&shop.url(false), &Connection::default(), http2)
            .await
            .unwrap();
        let replies = burst(&conn, "safe", 1000).await;
        assert_eq!(count(&replies, 200), 100, "http2 {http2}");
        assert_eq!(count(&replies, 409), 900, "http2 {http2}");
        assert_eq!(shop.stock(), 0);
        let sold: Vec<_> = replies
            .iter()
            .filter_map(|(_, b)| b.as_ref()?.get("order_id")?.as_str())
            .collect();
        assert_eq!(sold.len(), 100);

        // Buggy: with the users really in flight together, more than the stock passes the
        // check before the first decrement lands.
        let shop = slow_checkout(Fault::None).await;
        let conn = HttpConnection::open(&shop.url(false), &Connection::default(), http2)
            .await
            .unwrap();
        let replies = burst(&conn, "buggy", 1000).await;
        let purchased = count(&replies, 200);
        assert!(purchased > 100, "http2 {http2}: only {purchased} purchased");
        assert_eq!(shop.stock(), 100 - purchased as i64);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_metadata_and_json_content_type_and_reads_other_calls() {
    let shop = serve(Options::default()).await;
    let connection = Connection {
        metadata: Metadata::parse(&["Authorization: Bearer t0k", "x-team: blue"]).unwrap(),
        ..Connection::default()
    };
    let conn = HttpConnection::open(&shop.url(false), &connection, false)
        .await
        .unwrap();
    let reply = conn.send(purchase("safe", 1)).await;
    assert_eq!(reply.status, ReplyStatus::Http(200));
    assert_eq!(reply.body.as_ref().unwrap()["remaining"], 99);
    {
        let headers = shop.shop.last_headers.lock().unwrap();
        assert_eq!(headers["authorization"], "Bearer t0k");
        assert_eq!(headers["x-team"], "blue");
        assert_eq!(headers["content-type"], "application/json");
    }
    let stock = conn
        .send(Outgoing {
            method: &Method::GET,
            path: "/api/v1/debug/stock".into(),
            body: None,
        })
        .await;
    assert_eq!(stock.status, ReplyStatus::Http(200));
    assert_eq!(stock.body.unwrap()["remaining"], 99);
    let reset = conn
        .send(Outgoing {
            method: &Method::POST,
            path: "/api/v1/debug/reset".into(),
            body: Some(r#"{"stock": 7}"#.into()),
        })
        .await;
    assert_eq!(reset.status, ReplyStatus::Http(200));
    assert_eq!(shop.stock(), 7);
    let missing = conn
        .send(Outgoing {
            method: &Method::GET,
            path: "/nowhere?x=1".into(),
            body: None,
        })
        .await;
    assert_eq!(missing.status, ReplyStatus::Http(404));
    assert!(missing.body.is_none());
    // A path that is not one is refused before anything is sent.
    let before = shop.shop.requests.load(Ordering::SeqCst);
    for path in ["api/v1/checkout/safe", "/a b", ""] {
        let reply = conn
            .send(Outgoing {
                method: &Method::POST,
                path: path.into(),
                body: Some("{}".into()),
            })
            .await;
        assert_eq!(
            reply.status,
            ReplyStatus::Grpc(Code::InvalidArgument),
            "{path:?}"
        );
    }
    assert_eq!(shop.shop.requests.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_larger_than_the_cap_is_resource_exhausted() {
    let shop = serve(Options {
        fault: Fault::HugeReply,
        ..Options::default()
    })
    .await;
    let conn = HttpConnection::open(&shop.url(false), &Connection::default(), false)
        .await
        .unwrap();
    let reply = conn.send(purchase("safe", 1)).await;
    assert_eq!(reply.status, ReplyStatus::Grpc(Code::ResourceExhausted));
    const { assert!(100 * 1024 > MAX_REPLY_BYTES) };
    // The connection is still usable for the next request.
    let reply = conn
        .send(Outgoing {
            method: &Method::GET,
            path: "/api/v1/debug/stock".into(),
            body: None,
        })
        .await;
    assert_eq!(reply.status, ReplyStatus::Http(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_sent_is_a_refusal_and_a_lost_reply_is_indeterminate() {
    // Nobody listens: the connection is refused before the run.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let err = HttpConnection::open(&closed, &Connection::default(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, DriverError::Connect { .. }), "{err}");

    // The checkout goes away after the connection was opened: nothing could be sent.
    let shop = serve(Options::default()).await;
    let conn = HttpConnection::open(&shop.url(false), &Connection::default(), false)
        .await
        .unwrap();
    let addr = shop.addr;
    drop(shop);
    // The listener is closed once its accept loop sees the stop; wait for refusals.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkout never stopped"
        );
        tokio::task::yield_now().await;
    }
    let reply = conn.send(purchase("safe", 1)).await;
    assert_eq!(reply.status, ReplyStatus::Http(503));

    // A checkout that reads the request and hangs up without a reply: it may have applied it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
        }
    });
    let conn = HttpConnection::open(&format!("http://{addr}"), &Connection::default(), false)
        .await
        .unwrap();
    let reply = conn.send(purchase("safe", 1)).await;
    assert_eq!(reply.status, ReplyStatus::Grpc(Code::Unknown));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_that_is_not_json_has_no_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                if let Ok(n) = socket.read(&mut buf).await
                    && n > 0
                {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                        .await;
                }
            });
        }
    });
    let conn = HttpConnection::open(&format!("http://{addr}"), &Connection::default(), false)
        .await
        .unwrap();
    let reply = conn.send(purchase("safe", 1)).await;
    assert_eq!(reply.status, ReplyStatus::Http(200));
    assert!(reply.body.is_none());
}

/// The demo checkout over TLS with a certificate `ca` signed for `names`.
async fn tls_checkout(ca: &Ca, names: &[&str]) -> HttpCheckout {
    serve(Options {
        tls: Some(ca.sign(names, ExtendedKeyUsagePurpose::ServerAuth)),
        ..Options::default()
    })
    .await
}

fn trusting(files: &Files, ca: &Ca) -> ClientTls {
    let path = files.write("ca.pem", &ca.pem);
    ClientTls {
        ca_cert: Some(Pem::certificates("--ca-cert", &path).unwrap()),
        ..ClientTls::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_ca_over_both_protocols_and_a_refused_certificate() {
    let files = Files::new("http");
    let ca = Ca::new("http CA");
    let shop = tls_checkout(&ca, &["localhost", "127.0.0.1"]).await;
    let connection = Connection {
        tls: Some(trusting(&files, &ca)),
        ..Connection::default()
    };
    for http2 in [false, true] {
        let conn = HttpConnection::open(&shop.url(true), &connection, http2)
            .await
            .unwrap();
        let replies = burst(&conn, "safe", 50).await;
        assert_eq!(count(&replies, 200), 50, "http2 {http2}");
    }
    assert_eq!(shop.stock(), 0);

    // Signed by another CA: a connection error naming the cause, before any request.
    let other = Ca::new("other CA");
    let wrong = Connection {
        tls: Some(trusting(&files, &other)),
        ..Connection::default()
    };
    let err = HttpConnection::open(&shop.url(true), &wrong, false)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DriverError::Connect { .. }), "{message}");
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("--ca-cert"), "{message}");
    assert_eq!(shop.shop.requests.load(Ordering::SeqCst), 100);

    // --insecure accepts it.
    let insecure = Connection {
        tls: Some(ClientTls {
            insecure: true,
            ..ClientTls::default()
        }),
        ..Connection::default()
    };
    let conn = HttpConnection::open(&shop.url(true), &insecure, true)
        .await
        .unwrap();
    assert_eq!(
        conn.send(purchase("safe", 1)).await.status,
        ReplyStatus::Http(409)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_with_a_client_certificate_and_refused_without() {
    let files = Files::new("http-mtls");
    let ca = Ca::new("http CA");
    let clients = Ca::new("client CA");
    let shop = serve(Options {
        tls: Some(ca.sign(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth)),
        client_ca: Some(clients.pem.clone()),
        ..Options::default()
    })
    .await;
    let (cert, key) = clients.sign(&["buyer"], ExtendedKeyUsagePurpose::ClientAuth);
    let identity = (
        Pem::certificates("--cert", &files.write("client.pem", &cert)).unwrap(),
        Pem::private_key("--key", &files.write("client.key", &key)).unwrap(),
    );
    let with_identity = Connection {
        tls: Some(ClientTls {
            identity: Some(identity),
            ..trusting(&files, &ca)
        }),
        ..Connection::default()
    };
    for http2 in [false, true] {
        let conn = HttpConnection::open(&shop.url(true), &with_identity, http2)
            .await
            .unwrap();
        let reply = conn.send(purchase("safe", 1)).await;
        assert_eq!(reply.status, ReplyStatus::Http(200), "http2 {http2}");
    }
    // Without a certificate: refused before the run, with the cause and what to give.
    let anonymous = Connection {
        tls: Some(trusting(&files, &ca)),
        ..Connection::default()
    };
    for http2 in [false, true] {
        let err = HttpConnection::open(&shop.url(true), &anonymous, http2)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, DriverError::Connect { .. }), "{message}");
        assert!(message.contains("give --cert and --key"), "{message}");
    }
    assert_eq!(shop.shop.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn authority_names_the_certificate_and_the_host_header() {
    let files = Files::new("http-authority");
    let ca = Ca::new("http CA");
    // A certificate for a name only, reached by address.
    let shop = tls_checkout(&ca, &["checkout.test"]).await;
    let plain = Connection {
        tls: Some(trusting(&files, &ca)),
        ..Connection::default()
    };
    let err = HttpConnection::open(&shop.url(true), &plain, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--authority"), "{err}");
    let named = Connection {
        tls: Some(ClientTls {
            authority: Some("checkout.test".into()),
            ..trusting(&files, &ca)
        }),
        ..Connection::default()
    };
    for http2 in [false, true] {
        let conn = HttpConnection::open(&shop.url(true), &named, http2)
            .await
            .unwrap();
        assert_eq!(
            conn.send(purchase("safe", 1)).await.status,
            ReplyStatus::Http(200)
        );
        let headers = shop.shop.last_headers.lock().unwrap().clone();
        let host = headers.get("host").map(|h| h.to_str().unwrap().to_string());
        if !http2 {
            assert_eq!(host.as_deref(), Some("checkout.test"));
        }
    }
}
