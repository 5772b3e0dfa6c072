//! The purchase primitives of the naive paths and of the mutex, row-lock and serializable
//! strategies on PostgreSQL, each one transaction on a connection the caller lends (the `Store`
//! impl in `mod.rs` decides what a failure in doubt came to: `in_doubt.rs`).

use tokio_postgres::IsolationLevel;

use super::conn::Object;
use super::in_doubt::Failure;
use super::{PgStore, db, sql, to_i64, to_u64};
use crate::latency::Latency;
use crate::store::{Attempt, Order, Peek, Purchase, Receipt, StoreError};

impl PgStore {
    /// The buggy path's act (`Store::decrement_unchecked`): write back what the check computed.
    pub(super) async fn unchecked(
        &self,
        client: &mut Object,
        order: Order<'_>,
        seen: &Peek,
    ) -> Result<Receipt, Failure> {
        let round = to_i64(seen.round)?;
        let written = seen.stock.saturating_sub(i64::from(order.quantity));
        let tx = client.transaction().await.map_err(db)?;
        let Some(row) = tx
            .query_opt(
                &tx.prepare_cached(sql::WRITE_BACK).await.map_err(db)?,
                &[&written, &round],
            )
            .await
            .map_err(db)?
        else {
            let current: i64 = tx
                .query_one(&tx.prepare_cached(sql::STOCK).await.map_err(db)?, &[])
                .await
                .map_err(db)?
                .get(0);
            return Err(Failure::Store(StoreError::RoundEnded {
                round: seen.round,
                current: to_u64(current),
            }));
        };
        let placed = self.place(tx, round, order, row.get(0), true).await?;
        self.settle(client, placed, round, order).await
    }

    /// `Store::compare_and_decrement`.
    pub(super) async fn conditional(
        &self,
        client: &mut Object,
        order: Order<'_>,
    ) -> Result<Purchase, Failure> {
        let round = to_i64(order.round)?;
        let quantity = i64::from(order.quantity);
        let tx = client.transaction().await.map_err(db)?;
        let taken = tx
            .query_opt(
                &tx.prepare_cached(sql::TAKE_IF_AVAILABLE)
                    .await
                    .map_err(db)?,
                &[&quantity, &round],
            )
            .await
            .map_err(db)?;
        let Some(row) = taken else {
            let refusal = self.refusal(&tx, round, order).await;
            tx.rollback().await.map_err(db)?;
            return Ok(refusal?);
        };
        let stock_after: i64 = row.get(0);
        if self.limit() != 0 && !self.reserve_units(&tx, round, order).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(Purchase::LimitReached {
                stock: stock_after.saturating_add(quantity),
                round: order.round,
            });
        }
        let placed = self.place(tx, round, order, stock_after, false).await?;
        Ok(Purchase::Purchased(
            self.settle(client, placed, round, order).await?,
        ))
    }

    /// `Store::purchase_locked`: the row lock, the check, the latency, the take.
    pub(super) async fn locked(
        &self,
        client: &mut Object,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Purchase, Failure> {
        let round = to_i64(order.round)?;
        let quantity = i64::from(order.quantity);
        let tx = client.transaction().await.map_err(db)?;
        let row = tx
            .query_one(
                &tx.prepare_cached(sql::PEEK_FOR_UPDATE).await.map_err(db)?,
                &[],
            )
            .await
            .map_err(db)?;
        let (current, stock): (i64, i64) = (row.get(0), row.get(1));
        let refused = if current != round {
            Some(Err(StoreError::RoundEnded {
                round: order.round,
                current: to_u64(current),
            }))
        } else if self.over_limit(&tx, round, order).await? {
            Some(Ok(Purchase::LimitReached {
                stock,
                round: order.round,
            }))
        } else if stock < quantity {
            Some(Ok(Purchase::SoldOut {
                stock,
                round: order.round,
            }))
        } else {
            None
        };
        if let Some(refused) = refused {
            tx.rollback().await.map_err(db)?;
            return Ok(refused?);
        }
        work.pass().await;
        let stock_after: i64 = tx
            .query_one(
                &tx.prepare_cached(sql::TAKE).await.map_err(db)?,
                &[&quantity, &round],
            )
            .await
            .map_err(db)?
            .get(0);
        let placed = self.place(tx, round, order, stock_after, true).await?;
        Ok(Purchase::Purchased(
            self.settle(client, placed, round, order).await?,
        ))
    }

    /// `Store::try_serializable`: one SERIALIZABLE read-latency-write attempt.
    pub(super) async fn serializable(
        &self,
        client: &mut Object,
        order: Order<'_>,
        work: Latency,
    ) -> Result<Attempt, Failure> {
        let round = to_i64(order.round)?;
        let quantity = i64::from(order.quantity);
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await
            .map_err(db)?;
        let row = tx
            .query_one(&tx.prepare_cached(sql::STOCK).await.map_err(db)?, &[])
            .await
            .map_err(db)?;
        let (current, stock): (i64, i64) = (row.get(0), row.get(1));
        let refused = if current != round {
            Some(Err(StoreError::RoundEnded {
                round: order.round,
                current: to_u64(current),
            }))
        } else if self.over_limit(&tx, round, order).await? {
            Some(Ok(Attempt::Done(Purchase::LimitReached {
                stock,
                round: order.round,
            })))
        } else if stock < quantity {
            Some(Ok(Attempt::Done(Purchase::SoldOut {
                stock,
                round: order.round,
            })))
        } else {
            None
        };
        if let Some(refused) = refused {
            tx.rollback().await.map_err(db)?;
            return Ok(refused?);
        }
        work.pass().await;
        let written = stock - quantity;
        let updated = tx
            .execute(
                &tx.prepare_cached(sql::WRITE_BACK).await.map_err(db)?,
                &[&written, &round],
            )
            .await
            .map_err(db)?;
        if updated == 0 {
            // Cannot happen under SERIALIZABLE (a Reset in between is a serialization
            // failure), but an empty update must never place an order.
            tx.rollback().await.map_err(db)?;
            return Ok(Attempt::Conflict);
        }
        let placed = self.place(tx, round, order, written, true).await?;
        Ok(Attempt::Done(Purchase::Purchased(
            self.settle(client, placed, round, order).await?,
        )))
    }
}
