//! Connections to the checkout under test and the control calls around a run (Reset,
//! GetStock), which carry the admin token when one is given.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use flashsale_server::hardening::AdminToken;
use tonic::transport::{Channel, Endpoint};

use crate::error::DriverError;

/// How long establishing one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a control call.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Control calls made around a run, on their own connection.
#[derive(Debug, Clone)]
pub struct Control {
    url: String,
    client: CheckoutClient<Channel>,
    admin_token: Option<AdminToken>,
}

impl Control {
    pub async fn connect(url: &str) -> Result<Self, DriverError> {
        Ok(Self {
            url: url.to_string(),
            client: CheckoutClient::new(connect(url).await?),
            admin_token: None,
        })
    }

    /// Sends `token` as `authorization: Bearer <token>` on every control call.
    pub fn with_admin_token(mut self, token: Option<&str>) -> Result<Self, DriverError> {
        self.admin_token = token
            .map(AdminToken::new)
            .transpose()
            .map_err(|e| DriverError::Invalid(format!("--admin-token: {e}")))?;
        Ok(self)
    }

    /// A control request for `message`: the control deadline and the admin token if any. Use
    /// it for every call on the control connection (admin calls such as Reset and ListOrders
    /// need the token).
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(CONTROL_TIMEOUT);
        if let Some(token) = &self.admin_token {
            flashsale_server::admin::attach(request.metadata_mut(), token);
        }
        request
    }

    /// Starts a new round on the server.
    pub async fn reset(
        &mut self,
        stock: i64,
        strategy: Option<flashsale_server::Strategy>,
    ) -> Result<pb::StockReply, DriverError> {
        let request = self.request(pb::ResetRequest {
            stock: Some(stock),
            safe_strategy: flashsale_server::Strategy::to_wire(strategy),
        });
        self.client
            .reset(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.rpc_error("Reset", status))
    }

    /// Reads the stock and ledger totals.
    pub async fn stock(&mut self) -> Result<pb::StockReply, DriverError> {
        let request = self.request(pb::GetStockRequest {});
        self.client
            .get_stock(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| self.rpc_error("GetStock", status))
    }

    fn rpc_error(&self, call: &'static str, status: tonic::Status) -> DriverError {
        DriverError::Rpc {
            call,
            target: self.url.clone(),
            status: Box::new(status),
        }
    }
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
