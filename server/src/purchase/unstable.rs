//! The buggy path behind a flaky front door: answers UNAVAILABLE at the configured failure rate
//! before touching any state, otherwise exactly the buggy path.

use crate::error::CheckoutError;
use crate::latency::Latency;
use crate::store::{Order, Purchase, Store};

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    failure_rate: f64,
    order: Order<'_>,
) -> Result<Purchase, CheckoutError> {
    if failure_rate > 0.0 && rand::random::<f64>() < failure_rate {
        return Err(CheckoutError::InjectedFailure(failure_rate));
    }
    Ok(super::buggy::purchase(store, latency, order).await?)
}
