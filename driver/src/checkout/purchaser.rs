//! One connection's way of buying, whatever the checkout speaks: the built-in contract, or a
//! checkout of the team's own ([`crate::spec::custom`]). The engine sees only [`Purchaser`]
//! and [`Attempt`]; every kind of checkout answers with an [`Outcome`].

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};

use super::custom::CustomConnection;
use super::{CheckoutChannel, builtin, connect_checkout};
use crate::error::DriverError;
use crate::outcome::Outcome;
use crate::spec::custom::Values;
use crate::spec::{Connection, Mode};

/// What one purchase attempt sends.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub user_id: String,
    pub quantity: u32,
    /// Unique per user and attempt ([`crate::spec::ids::request_id`]).
    pub request_id: String,
    /// The round the purchase is for (0: whatever round the server is in).
    pub round: u64,
}

impl From<Attempt> for pb::PurchaseRequest {
    fn from(attempt: Attempt) -> Self {
        pb::PurchaseRequest {
            user_id: attempt.user_id,
            quantity: attempt.quantity,
            request_id: attempt.request_id,
            round: attempt.round,
        }
    }
}

/// One connection to the checkout, cheap to clone for each virtual user on it.
#[derive(Debug, Clone)]
pub enum Purchaser {
    /// `flashsale.v1.Checkout` over tonic's client stack (TLS targets, or asked for).
    Builtin(CheckoutClient<CheckoutChannel>),
    /// `flashsale.v1.Checkout` over the lean `h2` client (plaintext targets; boxed: larger).
    Lean(Box<builtin::Lean>),
    /// A checkout of the team's own (the mode does not apply: the spec names the call).
    Custom(CustomConnection),
}

impl Purchaser {
    /// Opens one connection to `url` as `connection` says (TLS, metadata, which API).
    pub async fn connect(url: &str, connection: &Connection) -> Result<Self, DriverError> {
        Ok(match &connection.custom {
            None if builtin::lean_for(url) => {
                Purchaser::Lean(Box::new(builtin::Lean::connect(url, connection).await?))
            }
            None => Purchaser::Builtin(CheckoutClient::new(
                connect_checkout(url, connection).await?,
            )),
            Some(api) => Purchaser::Custom(CustomConnection::connect(url, connection, api).await?),
        })
    }

    /// One purchase in `mode` with deadline `timeout`, and what it came to.
    pub async fn purchase(&mut self, mode: Mode, attempt: Attempt, timeout: Duration) -> Outcome {
        match self {
            Purchaser::Builtin(client) => {
                builtin::purchase(client, mode, attempt.into(), timeout).await
            }
            Purchaser::Lean(lean) => lean.purchase(mode, attempt.into(), timeout).await,
            Purchaser::Custom(connection) => {
                let values = Values {
                    user: &attempt.user_id,
                    quantity: attempt.quantity,
                    request_id: &attempt.request_id,
                    round: attempt.round,
                    stock: 0,
                };
                connection.purchase(&values, timeout).await
            }
        }
    }
}
