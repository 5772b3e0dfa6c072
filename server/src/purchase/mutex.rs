//! The original fix: the buggy path's check, latency and act under one process-local lock.
//! Never oversells nor passes the per-user limit as long as this process is the only writer;
//! purchases serialise (one per latency). With several replicas on one database each replica's
//! lock protects only its own calls: their read-latency-write cycles overlap and oversell.

use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError};

pub(super) async fn purchase(
    store: &dyn Store,
    lock: &tokio::sync::Mutex<()>,
    latency: Latency,
    order: Order<'_>,
) -> Result<Purchase, StoreError> {
    let _guard = lock.lock().await;
    // `order.round` was the current round when the safe path pinned it: if it no longer is,
    // a Reset ended it while this purchase queued for the lock.
    super::buggy::purchase(store, latency, order)
        .await
        .map_err(|err| match err {
            StoreError::RoundMismatch { requested, current } => StoreError::RoundEnded {
                round: requested,
                current,
            },
            other => other,
        })
}
