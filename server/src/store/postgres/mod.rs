//! The PostgreSQL store: the sale row (round, stock, strategy), the orders of the round as rows
//! and the per-user totals, shared by every replica that points at the same database.
//!
//! Built on tokio-postgres with a deadpool pool: plain SQL with no compile-time database access,
//! the SQLSTATE of every error at hand (serialization failures and deadlocks are retried by the
//! serializable path), and a small, well-kept pool. A failure before a purchase's commit was
//! sent answers UNAVAILABLE (nothing written); a connection lost while it was in flight is
//! resolved by the purchase's request id (`in_doubt.rs`), answered with the stored order, as
//! UNAVAILABLE only once nothing was provably written, and UNKNOWN otherwise.
//!
//! Every primitive that places an order does it in one transaction: the stock update, the
//! user's units (while a limit applies) and the order row. All of them update the sale row
//! first, so they take the row lock before any buyer row and cannot deadlock each other. A
//! transaction names the round it was checked in (`WHERE round = $r`): once a Reset has
//! committed the next round it matches nothing and the purchase ends with `RoundEnded`, having
//! changed nothing. Reset is one transaction too (the next round and forgetting the old book).
//! A request id places at most one order per round (a unique constraint): a retry of a placed
//! order gets that order back and changes nothing.
//!
//! With `--stock-shards N` (N > 1) a round of the `atomic` strategy keeps its stock in N shard
//! rows instead (`shards.rs`); rounds of the other strategies keep it in the sale row.

mod atomic;
mod batch;
mod conn;
mod in_doubt;
mod listing;
pub mod migrate;
mod open;
mod purchases;
mod shards;
mod sql;
mod steps;

use std::sync::atomic::{AtomicBool, AtomicU32};

pub use batch::{BatchFault, Batching, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_WINDOW};
pub use in_doubt::RESOLVE_WITHIN;
pub use open::{PgError, PgSettings};
pub use shards::{MAX_SHARDS, ShardFault};

use deadpool_postgres::Transaction;

use conn::{Object, Pool};
use in_doubt::Failure;
use listing::{Lease, Listing};
use steps::Placed;
use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;

use super::{
    Attempt, Current, Order, OrderStream, Peek, Policy, Purchase, Receipt, Snapshot, Store,
    StoreError, Strategy,
};
use crate::latency::Latency;

/// Stock, book and per-user totals in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    policy: Policy,
    /// Shards of the rounds this server starts with the `atomic` strategy (1: the sale row).
    shards: i32,
    /// Round robin of the shard a purchase prefers.
    next_shard: AtomicU32,
    /// Whether the last round this server saw was sharded: which statement it tries first (a
    /// guess the statements check; a wrong one costs a round trip).
    sharded_guess: AtomicBool,
    fault: ShardFault,
    /// The batched strategy's queue (`batch.rs`).
    batcher: batch::Batcher,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("policy", &self.policy)
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

/// A database error with its SQLSTATE and message (tokio-postgres' own text is "db error").
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

/// A failed statement as the checkout sees it.
fn db(err: tokio_postgres::Error) -> StoreError {
    match err.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            StoreError::Conflict(describe(&err))
        }
        _ => StoreError::Unavailable(format!("database: {}", describe(&err))),
    }
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Unavailable(format!("{value} out of range")))
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn receipt(round: i64, order_id: i64, stock_after: i64) -> Receipt {
    Receipt {
        order_id: format!("r{round}-{order_id}"),
        stock_after,
        round: to_u64(round),
    }
}

fn strategy_of(name: &str) -> Result<Strategy, StoreError> {
    Strategy::from_name(name).ok_or_else(|| {
        StoreError::Unavailable(format!("unknown strategy {name:?} in the database"))
    })
}

impl PgStore {
    async fn client(&self) -> Result<Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|err| StoreError::Unavailable(format!("database pool: {err}")))
    }

    fn limit(&self) -> u32 {
        self.policy.per_user_limit
    }

    async fn snapshot_in(&self, tx: &Transaction<'_>) -> Result<Snapshot, StoreError> {
        let sale = tx
            .query_one(&tx.prepare_cached(sql::SALE).await.map_err(db)?, &[])
            .await
            .map_err(db)?;
        let round: i64 = sale.get(0);
        let totals = tx
            .query_one(
                &tx.prepare_cached(sql::TOTALS).await.map_err(db)?,
                &[&round],
            )
            .await
            .map_err(db)?;
        let orders = to_u64(totals.get(0));
        Ok(Snapshot {
            stock: sale.get(1),
            initial_stock: sale.get(2),
            orders,
            units_sold: to_u64(totals.get(1)),
            round: to_u64(round),
            strategy: strategy_of(sale.get(3))?,
            per_user_limit: self.limit(),
            book_cap: self.policy.book_cap,
            book_overflow: orders.saturating_sub(self.policy.book_cap),
        })
    }
}

/// `requested` (0: any) against the current round.
fn check_round(requested: u64, current: u64) -> Result<(), StoreError> {
    if requested != 0 && requested != current {
        return Err(StoreError::RoundMismatch { requested, current });
    }
    Ok(())
}

#[tonic::async_trait]
impl Store for PgStore {
    async fn current(&self, requested: u64) -> Result<Current, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&client.prepare_cached(sql::CURRENT).await.map_err(db)?, &[])
            .await
            .map_err(db)?;
        let round = to_u64(row.get(0));
        check_round(requested, round)?;
        Ok(Current {
            round,
            strategy: strategy_of(row.get(1))?,
        })
    }

    async fn peek(&self, order: Order<'_>) -> Result<Peek, StoreError> {
        let client = self.client().await?;
        let row = if self.limit() == 0 {
            client
                .query_one(&client.prepare_cached(sql::PEEK).await.map_err(db)?, &[])
                .await
        } else {
            client
                .query_one(
                    &client.prepare_cached(sql::PEEK_UNITS).await.map_err(db)?,
                    &[&order.user],
                )
                .await
        }
        .map_err(db)?;
        let round = to_u64(row.get(0));
        check_round(order.round, round)?;
        let shards: i32 = row.get(3);
        if shards > 1 {
            return Err(StoreError::Unsupported(format!(
                "round {round} keeps its stock in {shards} shards (--stock-shards), which only \
                 the safe path's atomic strategy takes from; the naive paths read and write the \
                 one stock row: Reset from a server with --stock-shards 1 to use them"
            )));
        }
        Ok(Peek {
            round,
            stock: row.get(1),
            user_units: to_u64(row.get(2)),
            per_user_limit: self.limit(),
        })
    }

    async fn decrement_unchecked(
        &self,
        order: Order<'_>,
        seen: &Peek,
    ) -> Result<Receipt, StoreError> {
        let mut client = self.client().await?;
        let result = self.unchecked(&mut client, order, seen).await;
        self.decided(client, order, result, |receipt| receipt).await
    }

    async fn compare_and_decrement(&self, order: Order<'_>) -> Result<Purchase, StoreError> {
        let mut client = self.client().await?;
        let result = self.conditional(&mut client, order).await;
        self.decided(client, order, result, Purchase::Purchased)
            .await
    }

    async fn take_if_atomic(&self, order: Order<'_>) -> Result<Option<Purchase>, StoreError> {
        let mut client = self.client().await?;
        let result = self.buy_if_atomic(&mut client, order).await;
        self.decided(client, order, result, |receipt| {
            Some(Purchase::Purchased(receipt))
        })
        .await
    }

    async fn purchase_batched(
        &self,
        order: Order<'_>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<Purchase>, StoreError> {
        self.join_batch(order, deadline).await
    }

    async fn purchase_locked(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, StoreError> {
        let mut client = self.client().await?;
        let result = self.locked(&mut client, order, work).await;
        self.decided(client, order, result, Purchase::Purchased)
            .await
    }

    async fn try_serializable(
        &self,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, StoreError> {
        let mut client = self.client().await?;
        let result = self.serializable(&mut client, order, work).await;
        self.decided(client, order, result, |receipt| {
            Attempt::Done(Purchase::Purchased(receipt))
        })
        .await
    }

    async fn reset(&self, stock: i64, strategy: Option<Strategy>) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let next = tx
            .query_one(
                &tx.prepare_cached(sql::NEXT_ROUND).await.map_err(db)?,
                &[&stock, &strategy.map(Strategy::name), &self.shards],
            )
            .await
            .map_err(db)?;
        let (round, shards): (i64, i32) = (next.get(0), next.get(1));
        // The ended round's shards: locked in order (waiting for the purchases taking from
        // them), deleted, then the new round's.
        tx.query(
            &tx.prepare_cached(sql::LOCK_OLD_SHARDS).await.map_err(db)?,
            &[&round],
        )
        .await
        .map_err(db)?;
        tx.execute(
            &tx.prepare_cached(sql::FORGET_SHARDS).await.map_err(db)?,
            &[&round],
        )
        .await
        .map_err(db)?;
        if shards > 1 {
            tx.execute(
                &tx.prepare_cached(sql::SPREAD).await.map_err(db)?,
                &[&round, &stock, &shards],
            )
            .await
            .map_err(db)?;
        }
        tx.execute(
            &tx.prepare_cached(sql::FORGET_ORDERS).await.map_err(db)?,
            &[&round],
        )
        .await
        .map_err(db)?;
        tx.execute(
            &tx.prepare_cached(sql::FORGET_BUYERS).await.map_err(db)?,
            &[&round],
        )
        .await
        .map_err(db)?;
        let snapshot = self.snapshot_in(&tx).await?;
        tx.commit()
            .await
            .map_err(|err| match in_doubt::committing(round, err) {
                Failure::Store(err) => err,
                doubt => StoreError::OutcomeUnknown(format!(
                    "{doubt}; the reset may or may not have started round {round}"
                )),
            })?;
        self.sharded_guess
            .store(shards > 1, std::sync::atomic::Ordering::Relaxed);
        Ok(snapshot)
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let snapshot = self.snapshot_in(&tx).await?;
        tx.commit().await.map_err(db)?;
        Ok(snapshot)
    }

    async fn list_orders(&self, round: u64, batch: usize) -> Result<OrderStream, StoreError> {
        let client = self.client().await?;
        let mut lease = Lease(Some(client));
        lease
            .client()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db)?;
        let current: i64 = lease
            .client()
            .query_one(sql::CURRENT, &[])
            .await
            .map_err(db)?
            .get(0);
        check_round(round, to_u64(current))?;
        let listing = Listing {
            lease,
            round: current,
            after: 0,
            remaining: self.policy.book_cap,
            batch: i64::try_from(batch.max(1)).unwrap_or(i64::MAX),
            started: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            Some(listing),
            |listing| async move {
                let mut listing = listing?;
                match listing.next_page().await {
                    Ok(Some(page)) => Some((Ok(page), Some(listing))),
                    Ok(None) => None,
                    Err(err) => Some((Err(err), None)),
                }
            },
        )))
    }
}
