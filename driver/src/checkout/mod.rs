//! The checkout under test: its address, connections to it (plaintext or TLS, with the run's
//! metadata), purchases whatever API it speaks ([`Purchaser`]), the control calls around a run
//! and a health probe.

use std::time::Duration;

pub mod book;
mod builtin;
mod channel;
mod control;
pub mod custom;
pub mod diagnose;
mod h2;
pub mod probe;
mod purchaser;
pub mod retry;
pub mod settle;
mod tls;

use tonic::transport::{Channel, Endpoint};

use crate::error::DriverError;
use crate::spec::Connection;
pub use channel::CheckoutChannel;
pub use control::Control;
pub use purchaser::{Attempt, Purchaser};

/// How long establishing one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns `host:port` or `http://host:port` into a URL tonic accepts. Plaintext only: what
/// distributed runs and the coordinator dial (see [`normalize_direct_target`] for TLS).
pub fn normalize_target(target: &str) -> Result<String, DriverError> {
    normalize(target, false)
}

/// Like [`normalize_target`], and also accepts `https://host:port` (TLS): the targets of a
/// standalone run, of `compare` and of `probe`.
pub fn normalize_direct_target(target: &str) -> Result<String, DriverError> {
    normalize(target, true)
}

fn normalize(target: &str, allow_https: bool) -> Result<String, DriverError> {
    let invalid = |reason: &str| DriverError::InvalidTarget {
        target: target.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = target.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Some(meant) = mistyped_scheme(trimmed) {
        return Err(invalid(&format!("did you mean {meant}?")));
    }
    let url = if trimmed.starts_with("https://") {
        if !allow_https {
            return Err(invalid(
                "TLS (https://) targets work in standalone runs, compare and probe, not in \
                 distributed runs yet; use a plaintext http:// target",
            ));
        }
        trimmed.to_string()
    } else if trimmed.starts_with("http://") {
        trimmed.to_string()
    } else if trimmed.contains("://") {
        return Err(invalid("only http:// and https:// targets are supported"));
    } else {
        format!("http://{trimmed}")
    };
    let uri: tonic::transport::Uri = url
        .parse()
        .map_err(|e| invalid(&format!("not a valid URL ({e})")))?;
    if uri.port_u16().is_none() {
        return Err(invalid("a port is required, e.g. localhost:50051"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(invalid("a path is not allowed, give only host:port"));
    }
    Ok(url)
}

/// `http://host:port` when `target` is that with its scheme mistyped (`http//host:port`,
/// `http:/host:port`, `http:host:port`, the same with https).
fn mistyped_scheme(target: &str) -> Option<String> {
    let lower = target.to_ascii_lowercase();
    for scheme in ["https", "http"] {
        let Some(rest) = lower.strip_prefix(scheme) else {
            continue;
        };
        if rest.starts_with("://") || !(rest.starts_with(':') || rest.starts_with('/')) {
            return None;
        }
        // `http:50051` is a host named http; `http:/x:1`, `http//x:1` and `http:x:1` are not.
        let host = rest.trim_start_matches([':', '/']);
        if host.is_empty() || host.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        return Some(format!(
            "{scheme}://{}",
            &target[target.len() - host.len()..]
        ));
    }
    None
}

/// An endpoint for `url` (already normalized) with the driver's transport settings, plaintext.
pub fn endpoint(url: &str) -> Result<Endpoint, DriverError> {
    Endpoint::from_shared(url.to_string())
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
        .map_err(|e| DriverError::InvalidTarget {
            target: url.to_string(),
            reason: e.to_string(),
        })
}

/// An endpoint for `url` with the TLS settings of `connection` (an `https://` URL without
/// TLS settings trusts the system's roots).
pub fn endpoint_with(url: &str, connection: &Connection) -> Result<Endpoint, DriverError> {
    connection.check_target(url)?;
    let endpoint = endpoint(url)?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let defaults = crate::spec::ClientTls::default();
    tls::configure(endpoint, url, connection.tls.as_ref().unwrap_or(&defaults))
}

/// Opens one plaintext HTTP/2 connection to `url` (the coordinator, workers).
pub async fn connect(url: &str) -> Result<Channel, DriverError> {
    dial(endpoint(url)?, url).await
}

/// Opens one HTTP/2 connection to the checkout at `url` as `connection` says: TLS for an
/// `https://` URL, its metadata on every call.
pub async fn connect_checkout(
    url: &str,
    connection: &Connection,
) -> Result<CheckoutChannel, DriverError> {
    let channel = dial(endpoint_with(url, connection)?, url).await?;
    Ok(CheckoutChannel::new(channel, connection.metadata.clone()))
}

/// Like [`connect_checkout`], but the connection is opened only when a call first needs it
/// (for a channel kept for rare calls beside another connection that carries the load).
pub fn connect_checkout_lazy(
    url: &str,
    connection: &Connection,
) -> Result<CheckoutChannel, DriverError> {
    let channel = endpoint_with(url, connection)?.connect_lazy();
    Ok(CheckoutChannel::new(channel, connection.metadata.clone()))
}

async fn dial(endpoint: Endpoint, url: &str) -> Result<Channel, DriverError> {
    endpoint
        .connect()
        .await
        .map_err(|source| DriverError::Connect {
            target: url.to_string(),
            reason: error_chain(&source),
        })
}

/// `err` and its causes, joined with `: `, each cause once (transport errors often repeat
/// their source's words).
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    with_causes(err.to_string(), err.source())
}

/// `text` followed by the words of `source` and its own causes that it does not hold yet.
fn with_causes(mut text: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

/// `status` with the causes of a transport failure in its message (a TLS alert such as
/// "the server requires a client certificate" otherwise shows only as "transport error").
/// `anonymous_tls`: the call went over TLS without a client certificate, so a transport
/// failure may be a refused handshake (TLS 1.3 reports it after the client's side is done:
/// as the alert, or as a connection closed or a broken pipe).
pub(crate) fn explain(status: tonic::Status, anonymous_tls: bool) -> tonic::Status {
    let Some(cause) = std::error::Error::source(&status) else {
        return status;
    };
    let mut message = with_causes(status.message().to_string(), Some(cause));
    if message.contains("CertificateRequired") {
        message.push_str(" (the server requires a client certificate: give --cert and --key)");
    } else if anonymous_tls {
        message.push_str(" (if the server requires client certificates, give --cert and --key)");
    }
    tonic::Status::new(status.code(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            normalize_target("localhost:50051").unwrap(),
            "http://localhost:50051"
        );
        assert_eq!(
            normalize_target("http://10.0.0.1:1/").unwrap(),
            "http://10.0.0.1:1"
        );
        assert_eq!(normalize_target("[::1]:7").unwrap(), "http://[::1]:7");
        assert_eq!(
            normalize_direct_target("https://localhost:8443/").unwrap(),
            "https://localhost:8443"
        );
        assert!(normalize_direct_target("https://localhost").is_err());
        for bad in [
            "",
            "localhost",
            "https://x:1",
            "grpc://x:1",
            "x:1/path",
            "x:notaport",
        ] {
            assert!(normalize_target(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn a_mistyped_scheme_is_named() {
        for (typo, meant) in [
            ("http//localhost:50051", "http://localhost:50051"),
            ("http:/10.0.0.1:1", "http://10.0.0.1:1"),
            ("http:server:50051", "http://server:50051"),
            ("https//Shop.example:443", "https://Shop.example:443"),
            ("HTTP//x:1", "http://x:1"),
        ] {
            let err = normalize_direct_target(typo).unwrap_err().to_string();
            assert!(
                err.contains(&format!("did you mean {meant}?")),
                "{typo}: {err}"
            );
        }
        // A host that happens to be named http, or starts with it, is a host.
        assert_eq!(normalize_target("http:50051").unwrap(), "http://http:50051");
        assert_eq!(
            normalize_target("httpbin:8080").unwrap(),
            "http://httpbin:8080"
        );
        assert!(mistyped_scheme("http://x:1").is_none());
    }
}
