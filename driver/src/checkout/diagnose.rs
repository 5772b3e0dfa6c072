//! Naming the cause when the first call to a target fails with words that say little: a port
//! that speaks HTTP/1 ("h2 protocol error: … frame with invalid size", a broken pipe, a closed
//! connection) is "not an HTTP/2 (gRPC) server" (found out by sending it the HTTP/2 preface
//! again and reading an HTTP/1 status line), and a gRPC server without `flashsale.v1.Checkout` (e.g. the coordinator's port,
//! which answers `UNIMPLEMENTED` with an empty message) "does not offer flashsale.v1.Checkout",
//! with what it does offer when it has server reflection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CheckoutChannel;
use super::custom::grpc::{GrpcSchemaError, offered_services};

/// The service the built-in checkout calls.
pub const CHECKOUT_SERVICE: &str = "flashsale.v1.Checkout";
/// How long the HTTP/1 check may take.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(3);
/// The HTTP/2 client preface and an empty SETTINGS frame: what an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A sentence naming why `status`, the answer to a `flashsale.v1.Checkout` call to `url` over
/// `channel`, failed, when it can be found out; `None` otherwise (the status says enough).
pub async fn why_not_a_checkout(
    url: &str,
    channel: &CheckoutChannel,
    status: &tonic::Status,
) -> Option<String> {
    if status.code() == tonic::Code::Unimplemented {
        return match offered_services(channel, url).await {
            Ok(offered) if offered.iter().any(|s| s == CHECKOUT_SERVICE) => None,
            Ok(offered) => Some(format!(
                "this server does not offer {CHECKOUT_SERVICE} (it offers: {}); is this the \
                 checkout's address?",
                if offered.is_empty() {
                    "nothing".to_string()
                } else {
                    offered.join(", ")
                }
            )),
            Err(GrpcSchemaError::ReflectionUnavailable { .. }) => Some(format!(
                "this server does not offer {CHECKOUT_SERVICE}, or not this call (it has no \
                 server reflection, so what it offers cannot be listed); is this the \
                 checkout's address?"
            )),
            Err(_) => None,
        };
    }
    // An HTTP/1 server answers the preface with an error and closes: the call fails with a
    // protocol error, a broken pipe, a reset or a cancelled stream, as the timing falls.
    let transport = [
        tonic::Code::Unknown,
        tonic::Code::Internal,
        tonic::Code::Unavailable,
        tonic::Code::Cancelled,
    ];
    if !transport.contains(&status.code()) {
        return None;
    }
    let why = match sniff(url).await {
        Some(Sniffed::Http1(line)) => format!("it answered HTTP/1 (`{line}`)"),
        Some(Sniffed::Tls) => "it answered with TLS: use https://".to_string(),
        Some(Sniffed::Other(start)) => format!("it answered `{start}`"),
        Some(Sniffed::Http2) | None => return None,
    };
    Some(format!(
        "this is not an HTTP/2 (gRPC) server: {why}; is this the checkout's gRPC port?"
    ))
}

/// What a plaintext server answered to an HTTP/2 client preface.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// A SETTINGS frame: it speaks HTTP/2.
    Http2,
    /// An HTTP/1 status line.
    Http1(String),
    /// A TLS record (an alert): it expects TLS.
    Tls,
    /// Anything else: its first line, printable and cut short.
    Other(String),
}

/// Sends `http://host:port` the HTTP/2 client preface and reads how it answers; `None` when it
/// cannot be reached, answers nothing in time, or `url` is not plaintext.
pub async fn sniff(url: &str) -> Option<Sniffed> {
    let authority = url.strip_prefix("http://")?;
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        stream.write_all(PREFACE).await.ok()?;
        let mut buf = vec![0u8; 256];
        let mut read = 0;
        while read < 9 {
            let n = stream.read(&mut buf[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        Some(classify(&buf[..read]))
    };
    tokio::time::timeout(SNIFF_TIMEOUT, check)
        .await
        .ok()
        .flatten()
}

fn classify(answer: &[u8]) -> Sniffed {
    // A frame header: 3 bytes of length, the type (4: SETTINGS), flags, stream 0.
    if answer.len() >= 9 && answer[3] == 0x04 && answer[5..9] == [0, 0, 0, 0] {
        return Sniffed::Http2;
    }
    if answer.first() == Some(&0x15) && answer.get(1) == Some(&0x03) {
        return Sniffed::Tls;
    }
    let text = String::from_utf8_lossy(answer);
    let line = text.lines().next().unwrap_or_default().trim();
    let line: String = crate::report::text::printable(line)
        .chars()
        .take(60)
        .collect();
    if line.starts_with("HTTP/1") {
        Sniffed::Http1(line)
    } else {
        Sniffed::Other(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_a_port_answers_to_the_preface_is_recognised() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let line = sniff(&format!("http://{addr}")).await;
        assert_eq!(
            line,
            Some(Sniffed::Http1("HTTP/1.1 400 Bad Request".into()))
        );

        let server = flashsale_server::spawn(flashsale_server::ServerConfig::default())
            .await
            .unwrap();
        assert_eq!(sniff(&server.url()).await, Some(Sniffed::Http2));
        assert_eq!(sniff("https://127.0.0.1:1").await, None);
        assert_eq!(classify(b"\x15\x03\x03\x00\x02\x02\x32"), Sniffed::Tls);
        assert_eq!(
            classify(b"<!DOCTYPE HTML>\n<html>"),
            Sniffed::Other("<!DOCTYPE HTML>".into())
        );
        server.shutdown().await.unwrap();
    }
}
