//! Batched (`batched`): the latency is spent outside any critical section, then the purchase
//! joins the store's current batch ([`Store::purchase_batched`]): on PostgreSQL the purchases
//! arriving within the batch window are applied by one conditional statement and one commit,
//! in arrival order, each answered with its own outcome and order id (`store/postgres/batch.rs`).
//!
//! The call's gRPC deadline (`grpc-timeout`) travels with it ([`DEADLINE`], set by the
//! service): a purchase still waiting for its batch when it passes is not applied and is
//! answered DEADLINE_EXCEEDED.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError};

tokio::task_local! {
    /// The deadline of the call being served (from its `grpc-timeout`); unset or `None`: none.
    pub static DEADLINE: Option<Instant>;
}

/// The deadline a call's `grpc-timeout` header sets, counted from now; `None` without one (or
/// with one that does not parse: the gRPC spec's 1..=8 digits and a unit H, M, S, m, u, n).
pub fn deadline(metadata: &MetadataMap) -> Option<Instant> {
    let raw = metadata.get("grpc-timeout")?.to_str().ok()?;
    timeout(raw).map(|timeout| Instant::now() + timeout)
}

fn timeout(raw: &str) -> Option<Duration> {
    let split = raw.len().checked_sub(1)?;
    let (digits, unit) = raw.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(value.saturating_mul(3600)),
        "M" => Duration::from_secs(value.saturating_mul(60)),
        "S" => Duration::from_secs(value),
        "m" => Duration::from_millis(value),
        "u" => Duration::from_micros(value),
        "n" => Duration::from_nanos(value),
        _ => return None,
    })
}

pub(super) async fn purchase(
    store: &dyn Store,
    latency: Latency,
    order: Order<'_>,
) -> Result<Option<Purchase>, StoreError> {
    latency.pass().await;
    let deadline = DEADLINE.try_with(|deadline| *deadline).ok().flatten();
    store.purchase_batched(order, deadline).await
}

#[cfg(test)]
mod tests {
    use super::timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeouts() {
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "123456789m", "5x", "-1S", "1.5S"] {
            assert_eq!(timeout(bad), None, "{bad}");
        }
    }
}
