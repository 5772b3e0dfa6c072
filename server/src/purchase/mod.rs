//! How a purchase *uses* a store: the paths of the contract (buggy, unstable, safe) and the safe
//! path's strategies, one file each, all built from the [`Store`] primitives so that every path
//! works on every store. The simulated latency is spent here (`crate::latency`), where the
//! application's own work would be.

mod batched;
mod buggy;
mod conditional;
mod mutex;
mod row_lock;
mod serializable;
mod unstable;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::CheckoutError;
use crate::latency::Latency;
use crate::store::{Order, Purchase, Store, StoreError, Strategy};

pub use batched::{DEADLINE, deadline};
pub use serializable::MAX_ATTEMPTS as SERIALIZABLE_ATTEMPTS;

/// Most times the safe path reads the strategy for one purchase (each one after a Reset switched
/// it under the purchase).
const DISPATCHES: u32 = 3;

/// An order pinned to the round it was checked in, refused because that round is no longer
/// current: a Reset ended it while the purchase was in flight.
fn ended(err: StoreError) -> StoreError {
    match err {
        StoreError::RoundMismatch { requested, current } => StoreError::RoundEnded {
            round: requested,
            current,
        },
        other => other,
    }
}

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
    /// Whether the safe path's strategy was `atomic` when this process last looked: a guess
    /// the store checks (`Store::take_if_atomic`), never trusted. Starts false: the first
    /// purchase reads the strategy. A wrong guess (another replica's Reset switched the
    /// strategy) changes nothing: that purchase then reads the strategy.
    atomic_guess: AtomicBool,
}

impl Paths {
    pub fn new(latency: Latency, failure_rate: f64) -> Self {
        Self {
            latency,
            failure_rate,
            lock: tokio::sync::Mutex::new(()),
            retries: AtomicU64::new(0),
            atomic_guess: AtomicBool::new(false),
        }
    }

    /// Buys `order` (validated) through `path` on `store`.
    pub async fn purchase(
        &self,
        store: &dyn Store,
        path: Path,
        order: Order<'_>,
    ) -> Result<Outcome, CheckoutError> {
        if let Some(receipt) = store.replayed(order).await? {
            return Ok(Purchase::Purchased(receipt).into());
        }
        match path {
            Path::Buggy => Ok(buggy::purchase(store, self.latency, order).await?.into()),
            Path::Unstable => unstable::purchase(store, self.latency, self.failure_rate, order)
                .await
                .map(Outcome::from),
            Path::Safe => self.safe(store, order).await,
        }
    }

    /// The safe path: the current strategy's purchase.
    async fn safe(&self, store: &dyn Store, order: Order<'_>) -> Result<Outcome, CheckoutError> {
        // While the strategy is `atomic` the purchase runs on that guess, which the store checks
        // in the same step: no read of the strategy first (one round trip less on a database).
        // Only without a simulated latency: with one, the purchase is pinned to the round it
        // arrived in (read below) so that a Reset during its latency aborts it; with none,
        // nothing happens between its arrival and the store's one atomic step.
        if self.latency.0.is_zero()
            && self.atomic_guess.load(Ordering::Relaxed)
            && let Some(purchase) = conditional::purchase(store, self.latency, order).await?
        {
            return Ok(purchase.into());
        }
        for _ in 0..DISPATCHES {
            let current = store.current(order.round).await?;
            self.atomic_guess
                .store(current.strategy == Strategy::Atomic, Ordering::Relaxed);
            // From here on the order is pinned to the round `current` saw: if that round is
            // no longer the current one, a Reset ended it while this purchase was in flight.
            let order = Order {
                round: current.round,
                ..order
            };
            let outcome = match current.strategy {
                Strategy::Mutex => mutex::purchase(store, &self.lock, self.latency, order)
                    .await
                    .map(Outcome::from),
                Strategy::Atomic => match conditional::purchase(store, self.latency, order).await {
                    Ok(Some(purchase)) => Ok(purchase.into()),
                    // The strategy changed since `current`: look again.
                    Ok(None) => continue,
                    Err(err) => Err(err),
                },
                Strategy::RowLock => row_lock::purchase(store, self.latency, order)
                    .await
                    .map(Outcome::from),
                Strategy::Serializable => return self.serializable(store, order).await,
                Strategy::Batched => match batched::purchase(store, self.latency, order).await {
                    Ok(Some(purchase)) => Ok(purchase.into()),
                    // The strategy changed since `current`: look again.
                    Ok(None) => continue,
                    Err(err) => Err(err),
                },
            };
            return outcome.map_err(|err| ended(err).into());
        }
        Err(StoreError::Conflict(format!(
            "the safe path's strategy changed {DISPATCHES} times during one purchase"
        ))
        .into())
    }

    async fn serializable(
        &self,
        store: &dyn Store,
        order: Order<'_>,
    ) -> Result<Outcome, CheckoutError> {
        let outcome = serializable::purchase(store, self.latency, order).await;
        let retries = match &outcome {
            Ok(outcome) => outcome.retries,
            Err(CheckoutError::Contended { attempts }) => attempts.saturating_sub(1),
            Err(_) => 0,
        };
        if retries > 0 {
            self.retries
                .fetch_add(u64::from(retries), Ordering::Relaxed);
        }
        outcome
    }

    /// Serializable attempts retried after a conflict by this process since it started.
    pub fn serializable_retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
}
