//! The checkout under test: its address, connections to it, the control calls around a run
//! and a health probe.

use std::time::Duration;

pub mod book;
mod control;
pub mod probe;

use tonic::transport::{Channel, Endpoint};

use crate::error::DriverError;
pub use control::Control;

/// How long establishing one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns `host:port` or `http://host:port` into a URL tonic accepts.
pub fn normalize_target(target: &str) -> Result<String, DriverError> {
    let invalid = |reason: &str| DriverError::InvalidTarget {
        target: target.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = target.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if trimmed.starts_with("https://") {
        return Err(invalid(
            "TLS is not supported; use a plaintext http:// target",
        ));
    }
    let url = if trimmed.starts_with("http://") {
        trimmed.to_string()
    } else if trimmed.contains("://") {
        return Err(invalid("only http:// targets are supported"));
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

/// An endpoint for `url` (already normalized) with the driver's transport settings.
pub fn endpoint(url: &str) -> Result<Endpoint, DriverError> {
    Endpoint::from_shared(url.to_string())
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
        .map_err(|e| DriverError::InvalidTarget {
            target: url.to_string(),
            reason: e.to_string(),
        })
}

/// Opens one HTTP/2 connection to `url`.
pub async fn connect(url: &str) -> Result<Channel, DriverError> {
    endpoint(url)?
        .connect()
        .await
        .map_err(|source| DriverError::Connect {
            target: url.to_string(),
            source,
        })
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
}
