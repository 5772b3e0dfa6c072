//! Purchases through the built-in contract (`flashsale.v1.Checkout`): one call and what it came
//! to, over tonic's client stack ([`purchase`]) or over the lean `h2` client ([`Lean`], issue
//! #14: plaintext targets, unless `FLASHSALE_DRIVER_CLIENT=tonic` asks for tonic, the A/B
//! baseline). Both send the run's metadata and a `grpc-timeout` with every call.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use tonic::codegen::http::Uri;

use super::CheckoutChannel;
use super::h2::{CallError, LeanClient};
use crate::error::DriverError;
use crate::outcome::Outcome;
use crate::spec::{Connection, Mode};

/// Environment variable choosing the built-in contract's client: `tonic`, or the lean one
/// (the default) for plaintext targets.
pub const CLIENT_ENV: &str = "FLASHSALE_DRIVER_CLIENT";

/// Whether purchases to `url` go over the lean client.
pub fn lean_for(url: &str) -> bool {
    url.starts_with("http://") && std::env::var(CLIENT_ENV).map_or(true, |c| c != "tonic")
}

/// One connection's lean client with the three purchase methods' URIs, cloned per user.
#[derive(Debug, Clone)]
pub struct Lean {
    client: LeanClient,
    uris: std::sync::Arc<[Uri; 3]>,
}

impl Lean {
    /// Opens one plaintext connection to `url` with the run's metadata.
    pub async fn connect(url: &str, connection: &Connection) -> Result<Self, DriverError> {
        let client = LeanClient::connect(url, &connection.metadata, super::CONNECT_TIMEOUT).await?;
        let path = |method: &str| client.uri(&format!("/flashsale.v1.Checkout/{method}"));
        let uris = [
            path("PurchaseBuggy")?,
            path("PurchaseUnstable")?,
            path("PurchaseSafe")?,
        ];
        Ok(Self {
            client,
            uris: std::sync::Arc::new(uris),
        })
    }

    /// One purchase call in `mode` and what it came to.
    pub async fn purchase(
        &mut self,
        mode: Mode,
        request: pb::PurchaseRequest,
        timeout: Duration,
    ) -> Outcome {
        let uri = match mode {
            Mode::Buggy => &self.uris[0],
            Mode::Unstable => &self.uris[1],
            Mode::Safe => &self.uris[2],
        };
        let asked = (request.quantity, request.round);
        let call = self
            .client
            .unary::<pb::PurchaseReply>(uri, &request, timeout);
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Outcome::Timeout,
            Ok(Err(CallError::Status(code))) => Outcome::Status(code),
            Ok(Ok(reply)) => classify(reply, asked),
        }
    }
}

/// Longest deadline sent in the `grpc-timeout` header: 99 999 999 s (over 3 years).
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// One purchase call and what it came to.
pub async fn purchase(
    client: &mut CheckoutClient<CheckoutChannel>,
    mode: Mode,
    request: pb::PurchaseRequest,
    timeout: Duration,
) -> Outcome {
    let asked = (request.quantity, request.round);
    let mut request = tonic::Request::new(request);
    // The `grpc-timeout` header holds at most 8 digits (tonic panics beyond 99 999 999 hours);
    // any longer deadline is "none" in practice, and the client's own timeout below still
    // applies in full.
    request.set_timeout(timeout.min(MAX_HEADER_TIMEOUT));
    let call = async {
        match mode {
            Mode::Buggy => client.purchase_buggy(request).await,
            Mode::Unstable => client.purchase_unstable(request).await,
            Mode::Safe => client.purchase_safe(request).await,
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Outcome::Timeout,
        Ok(Err(status)) => Outcome::Status(status.code()),
        Ok(Ok(reply)) => classify(reply.into_inner(), asked),
    }
}

fn classify(reply: pb::PurchaseReply, (quantity, round): (u32, u64)) -> Outcome {
    // A reply that accounts for other units than were asked for, or for another round than
    // the request named, breaks the contract.
    if reply.quantity != 0 && reply.quantity != quantity {
        return Outcome::BadReply;
    }
    if reply.round != 0 && round != 0 && reply.round != round {
        return Outcome::BadReply;
    }
    let stock_after = Some(reply.stock_after);
    match pb::Outcome::try_from(reply.outcome) {
        Ok(pb::Outcome::Purchased) => Outcome::Purchased {
            order_id: reply.order_id,
            quantity,
            stock_after,
        },
        Ok(pb::Outcome::SoldOut) => Outcome::SoldOut { stock_after },
        Ok(pb::Outcome::LimitReached) => Outcome::LimitReached { stock_after },
        Ok(pb::Outcome::Unspecified) | Err(_) => Outcome::BadReply,
    }
}
