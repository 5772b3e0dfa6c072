//! Purchases through the built-in contract (`flashsale.v1.Checkout`): one call and what it came
//! to.

use std::time::Duration;

use flashsale::pb::{self, checkout_client::CheckoutClient};

use super::CheckoutChannel;
use crate::outcome::Outcome;
use crate::spec::Mode;

/// Longest deadline sent in the `grpc-timeout` header: 99 999 999 s (over 3 years).
const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(99_999_999);

/// One purchase call and what it came to.
pub async fn purchase(
    client: &mut CheckoutClient<CheckoutChannel>,
    mode: Mode,
    request: pb::PurchaseRequest,
    timeout: Duration,
) -> Outcome {
    let quantity = request.quantity;
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
        Ok(Ok(reply)) => classify(reply.into_inner(), quantity),
    }
}

fn classify(reply: pb::PurchaseReply, quantity: u32) -> Outcome {
    // A reply that accounts for other units than were asked for breaks the contract.
    if reply.quantity != 0 && reply.quantity != quantity {
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
