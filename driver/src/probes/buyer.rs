//! How the probes buy: one purchase through the built-in contract (over tonic, the whole reply
//! read: [`crate::outcome::Outcome`] trusts the requested quantity, a probe must not) or through
//! a checkout of the team's own, sent again with the same request id while it is answered
//! UNAVAILABLE or ABORTED (nothing changed).

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};

use super::Plan;
use super::answer::Answer;
use crate::checkout::custom::CustomConnection;
use crate::checkout::{CheckoutChannel, connect_checkout};
use crate::outcome::Outcome;
use crate::spec::Mode;
use crate::spec::custom::Values;

/// Tries of one probe purchase answered UNAVAILABLE or ABORTED (nothing changed).
const TRIES: u32 = 5;
/// Pause before the second try; doubled for each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// What one probe purchase sends.
pub struct Purchase<'a> {
    pub user_id: &'a str,
    pub request_id: &'a str,
    pub quantity: u32,
    pub round: u64,
}

/// How the probes buy.
pub enum Buyer {
    /// The built-in contract, over tonic: the whole reply is read.
    Builtin(CheckoutClient<CheckoutChannel>, Mode),
    /// A checkout of the team's own, read by its rules.
    Custom(CustomConnection),
}

impl Buyer {
    /// A connection of its own to the checkout at `url`, as `plan` says.
    pub async fn connect(url: &str, plan: &Plan<'_>) -> Result<Self, String> {
        Ok(match &plan.connection.custom {
            None => Buyer::Builtin(
                CheckoutClient::new(
                    connect_checkout(url, plan.connection)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                plan.mode,
            ),
            Some(api) => Buyer::Custom(
                CustomConnection::connect(url, plan.connection, api)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        })
    }

    /// Sends `purchase` with deadline `timeout`, again while nothing changed (at most
    /// [`TRIES`] times).
    pub async fn buy(&mut self, purchase: &Purchase<'_>, timeout: Duration) -> Answer {
        let mut pause = RETRY_PAUSE;
        let mut answer = Answer::Timeout;
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
            answer = self.once(purchase, timeout).await;
            if !answer.retryable() {
                break;
            }
        }
        answer
    }

    async fn once(&mut self, purchase: &Purchase<'_>, timeout: Duration) -> Answer {
        match self {
            Buyer::Builtin(client, mode) => {
                let request = pb::PurchaseRequest {
                    user_id: purchase.user_id.to_string(),
                    quantity: purchase.quantity,
                    request_id: purchase.request_id.to_string(),
                    round: purchase.round,
                };
                builtin(client, *mode, request, timeout).await
            }
            Buyer::Custom(custom) => {
                let values = Values {
                    user: purchase.user_id,
                    quantity: purchase.quantity,
                    request_id: purchase.request_id,
                    round: purchase.round,
                    stock: 0,
                };
                custom_answer(custom.purchase(&values, timeout).await, purchase.request_id)
            }
        }
    }
}

/// One purchase through the built-in contract, its whole reply read.
async fn builtin(
    client: &mut CheckoutClient<CheckoutChannel>,
    mode: Mode,
    request: pb::PurchaseRequest,
    timeout: Duration,
) -> Answer {
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    let call = async {
        match mode {
            Mode::Buggy => client.purchase_buggy(request).await,
            Mode::Unstable => client.purchase_unstable(request).await,
            Mode::Safe => client.purchase_safe(request).await,
        }
    };
    let reply = match tokio::time::timeout(timeout, call).await {
        Err(_) => return Answer::Timeout,
        Ok(Err(status)) => return Answer::Status(status.code()),
        Ok(Ok(reply)) => reply.into_inner(),
    };
    match pb::Outcome::try_from(reply.outcome) {
        Ok(pb::Outcome::Purchased) => Answer::Purchased {
            order_id: reply.order_id,
            units: (reply.quantity != 0).then_some(reply.quantity),
        },
        Ok(pb::Outcome::SoldOut) => Answer::SoldOut,
        Ok(pb::Outcome::LimitReached) => Answer::LimitReached,
        Ok(pb::Outcome::Unspecified) | Err(_) => Answer::BadReply,
    }
}

/// A custom checkout's outcome as a probe answer (its rules give no reply quantity). Without
/// an order id of its own the purchase's is its `request_id`: no order id, then.
fn custom_answer(outcome: Outcome, request_id: &str) -> Answer {
    match outcome {
        Outcome::Purchased { order_id, .. } => Answer::Purchased {
            order_id: if order_id == request_id {
                String::new()
            } else {
                order_id
            },
            units: None,
        },
        Outcome::SoldOut { .. } => Answer::SoldOut,
        Outcome::LimitReached { .. } => Answer::LimitReached,
        Outcome::BadReply => Answer::BadReply,
        Outcome::Status(code) => Answer::Status(code),
        Outcome::Timeout => Answer::Timeout,
    }
}
