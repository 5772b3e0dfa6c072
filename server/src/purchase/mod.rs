//! How a purchase *uses* a store: the paths of the contract (buggy, unstable, safe) and the safe
//! path's strategies, one file each, all built from the [`Store`] primitives so that every path
//! works on every store. The simulated latency is spent here (`crate::latency`), where the
//! application's own work would be.

mod buggy;
mod conditional;
mod mutex;
mod row_lock;
mod serializable;
mod unstable;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::CheckoutError;
use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, Strategy};

pub use serializable::MAX_ATTEMPTS as SERIALIZABLE_ATTEMPTS;

/// Which RPC a purchase came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Buggy,
    Unstable,
    Safe,
}

impl Path {
    pub fn name(self) -> &'static str {
        match self {
            Path::Buggy => "buggy",
            Path::Unstable => "unstable",
            Path::Safe => "safe",
        }
    }
}

/// What a purchase came to, and how many times it was retried on a conflict (serializable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub purchase: Purchase,
    pub retries: u32,
}

impl From<Purchase> for Outcome {
    fn from(purchase: Purchase) -> Self {
        Self {
            purchase,
            retries: 0,
        }
    }
}

/// The purchase paths of one server process: the latency they spend, the unstable path's
/// failure rate, the mutex strategy's process-local lock and the serializable retry count.
#[derive(Debug)]
pub struct Paths {
    latency: Latency,
    failure_rate: f64,
    /// The mutex strategy's lock: one per process, which is the point (see `mutex.rs`).
    lock: tokio::sync::Mutex<()>,
    /// Serializable attempts retried after a conflict, since start.
    retries: AtomicU64,
}

impl Paths {
    pub fn new(latency: Latency, failure_rate: f64) -> Self {
        Self {
            latency,
            failure_rate,
            lock: tokio::sync::Mutex::new(()),
            retries: AtomicU64::new(0),
        }
    }

    /// Buys `order` (validated) through `path` on `store`.
    pub async fn purchase(
        &self,
        store: &dyn Store,
        path: Path,
        order: Order<'_>,
    ) -> Result<Outcome, CheckoutError> {
        match path {
            Path::Buggy => Ok(buggy::purchase(store, self.latency, order).await?.into()),
            Path::Unstable => unstable::purchase(store, self.latency, self.failure_rate, order)
                .await
                .map(Outcome::from),
            Path::Safe => {
                let current = store.current(order.round).await?;
                let order = Order {
                    round: current.round,
                    ..order
                };
                match current.strategy {
                    Strategy::Mutex => Ok(mutex::purchase(store, &self.lock, self.latency, order)
                        .await?
                        .into()),
                    Strategy::Atomic => Ok(conditional::purchase(store, self.latency, order)
                        .await?
                        .into()),
                    Strategy::RowLock => {
                        Ok(row_lock::purchase(store, self.latency, order).await?.into())
                    }
                    Strategy::Serializable => {
                        let outcome = serializable::purchase(store, self.latency, order).await;
                        let retries = match &outcome {
                            Ok(outcome) => outcome.retries,
                            Err(CheckoutError::Contended { attempts }) => {
                                attempts.saturating_sub(1)
                            }
                            Err(_) => 0,
                        };
                        if retries > 0 {
                            self.retries
                                .fetch_add(u64::from(retries), Ordering::Relaxed);
                        }
                        outcome
                    }
                }
            }
        }
    }

    /// Serializable attempts retried after a conflict by this process since it started.
    pub fn serializable_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}
