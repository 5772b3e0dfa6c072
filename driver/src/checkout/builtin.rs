//! The built-in purchase call of the flash-sale contract (`Checkout/Purchase{Buggy,Unstable,
//! Safe}`), over one connection: the lean `h2` client for plaintext targets (issue #14), or
//! tonic's channel for TLS targets (and when `FLASHSALE_DRIVER_CLIENT=tonic` asks for it, the
//! A/B baseline). Both send the run's metadata and a `grpc-timeout` with every call and come
//! to the same [`Outcome`]s.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};
use tonic::codegen::http::Uri;

use super::h2::{CallError, LeanClient};
use super::{CONNECT_TIMEOUT, CheckoutChannel};
use crate::engine::outcome::Outcome;
use crate::error::DriverError;
use crate::spec::{Connection, Mode};

/// Environment variable choosing the purchase client: `tonic` or `lean` (the default).
pub const CLIENT_ENV: &str = "FLASHSALE_DRIVER_CLIENT";

/// Longest deadline sent in the `grpc-timeout` header: 99 999 999 s (over 3 years).
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// One connection's purchase client, cloned by each of its users.
#[derive(Debug, Clone)]
pub enum Purchaser {
    /// Plaintext: the lean client (boxed: it is the larger), with the three methods' URIs.
    Lean(Box<LeanClient>, Arc<[Uri; 3]>),
    /// TLS (or asked for): tonic's client stack.
    Tonic(CheckoutClient<CheckoutChannel>),
}

/// Opens one connection to the checkout at `url` for purchases with deadline `timeout`.
pub async fn connect(
    url: &str,
    connection: &Connection,
    timeout: Duration,
) -> Result<Purchaser, DriverError> {
    let lean = url.starts_with("http://")
        && std::env::var(CLIENT_ENV).map_or(true, |client| client != "tonic");
    if !lean {
        let channel = super::connect_checkout(url, connection).await?;
        return Ok(Purchaser::Tonic(CheckoutClient::new(channel)));
    }
    let client = LeanClient::connect(url, &connection.metadata, timeout, CONNECT_TIMEOUT).await?;
    let path = |method: &str| client.uri(&format!("/flashsale.v1.Checkout/{method}"));
    let uris = [
        path("PurchaseBuggy")?,
        path("PurchaseUnstable")?,
        path("PurchaseSafe")?,
    ];
    Ok(Purchaser::Lean(Box::new(client), Arc::new(uris)))
}

impl Purchaser {
    /// One purchase call in `mode` and what it came to.
    pub async fn purchase(
        &mut self,
        mode: Mode,
        request: pb::PurchaseRequest,
        timeout: Duration,
    ) -> Outcome {
        let quantity = request.quantity;
        let reply = match self {
            Purchaser::Lean(client, uris) => {
                let uri = match mode {
                    Mode::Buggy => &uris[0],
                    Mode::Unstable => &uris[1],
                    Mode::Safe => &uris[2],
                };
                let call = client.unary::<pb::PurchaseReply>(uri, &request);
                match tokio::time::timeout(timeout, call).await {
                    Err(_) => return Outcome::Timeout,
                    Ok(Err(CallError::Status(code))) => return Outcome::Status(code),
                    Ok(Ok(reply)) => reply,
                }
            }
            Purchaser::Tonic(client) => {
                match tonic_purchase(client, mode, request, timeout).await {
                    Ok(reply) => reply,
                    Err(outcome) => return outcome,
                }
            }
        };
        classify(reply, quantity)
    }
}

async fn tonic_purchase(
    client: &mut CheckoutClient<CheckoutChannel>,
    mode: Mode,
    request: pb::PurchaseRequest,
    timeout: Duration,
) -> Result<pb::PurchaseReply, Outcome> {
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
        Err(_) => Err(Outcome::Timeout),
        Ok(Err(status)) => Err(Outcome::Status(status.code())),
        Ok(Ok(reply)) => Ok(reply.into_inner()),
    }
}

/// What an OK reply to a purchase of `quantity` units says.
pub fn classify(reply: pb::PurchaseReply, quantity: u32) -> Outcome {
    // A reply that accounts for other units than were asked for breaks the contract.
    if reply.quantity != 0 && reply.quantity != quantity {
        return Outcome::BadReply;
    }
    match pb::Outcome::try_from(reply.outcome) {
        Ok(pb::Outcome::Purchased) => Outcome::Purchased {
            order_id: reply.order_id,
            quantity,
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::SoldOut) => Outcome::SoldOut {
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::LimitReached) => Outcome::LimitReached {
            stock_after: reply.stock_after,
        },
        Ok(pb::Outcome::Unspecified) | Err(_) => Outcome::BadReply,
    }
}
