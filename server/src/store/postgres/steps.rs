//! The steps the purchase transactions share: why a guarded take matched nothing, the per-user
//! limit (read, or reserved within it), and recording the order and committing, with the order
//! a retried request id placed before read back. A failure once the commit was sent, or once a
//! replayed order is known to exist, is in doubt (`in_doubt.rs`), never a plain "no".

use deadpool_postgres::Transaction;

use super::conn::Object;
use super::in_doubt::{self, Failure};
use super::{PgStore, db, receipt, sql, to_u64};
use crate::store::{Order, Purchase, Receipt, StoreError};

/// What recording an order came to.
pub(super) enum Placed {
    New(Receipt),
    /// The request id already placed an order in this round; the transaction was rolled back.
    Again,
}

impl PgStore {
    /// Why a guarded take matched no row: the round ended, the user is at the limit, or the
    /// stock does not cover the order.
    pub(super) async fn refusal(
        &self,
        tx: &Transaction<'_>,
        round: i64,
        order: Order<'_>,
    ) -> Result<Purchase, StoreError> {
        let row = tx
            .query_one(&tx.prepare_cached(sql::STOCK).await.map_err(db)?, &[])
            .await
            .map_err(db)?;
        let (current, stock): (i64, i64) = (row.get(0), row.get(1));
        if current != round {
            return Err(StoreError::RoundEnded {
                round: to_u64(round),
                current: to_u64(current),
            });
        }
        if self.over_limit(tx, round, order).await? {
            return Ok(Purchase::LimitReached {
                stock,
                round: to_u64(round),
            });
        }
        Ok(Purchase::SoldOut {
            stock,
            round: to_u64(round),
        })
    }

    /// Whether buying `order` would take its user past the limit (read, not reserved).
    pub(super) async fn over_limit(
        &self,
        tx: &Transaction<'_>,
        round: i64,
        order: Order<'_>,
    ) -> Result<bool, StoreError> {
        if self.limit() == 0 {
            return Ok(false);
        }
        let units: i64 = tx
            .query_one(
                &tx.prepare_cached(sql::UNITS).await.map_err(db)?,
                &[&round, &order.user],
            )
            .await
            .map_err(db)?
            .get(0);
        Ok(!crate::store::book::within_limit(
            to_u64(units),
            order.quantity,
            self.limit(),
        ))
    }

    /// Reserves `order`'s units for its user in `round` within the limit: `false` (nothing
    /// reserved) when they would take the user past it.
    pub(super) async fn reserve_units(
        &self,
        tx: &Transaction<'_>,
        round: i64,
        order: Order<'_>,
    ) -> Result<bool, StoreError> {
        let reserved = tx
            .query_opt(
                &tx.prepare_cached(sql::RESERVE_UNITS).await.map_err(db)?,
                &[
                    &round,
                    &order.user,
                    &i64::from(order.quantity),
                    &i64::from(self.limit()),
                ],
            )
            .await
            .map_err(db)?;
        Ok(reserved.is_some())
    }

    /// Adds the user's units (unchecked, while a limit applies), records the order and
    /// commits; a request id seen before in this round rolls everything back.
    pub(super) async fn place(
        &self,
        tx: Transaction<'_>,
        round: i64,
        order: Order<'_>,
        stock_after: i64,
        add_units: bool,
    ) -> Result<Placed, Failure> {
        let quantity = i64::from(order.quantity);
        if add_units && self.limit() != 0 {
            tx.execute(
                &tx.prepare_cached(sql::ADD_UNITS).await.map_err(db)?,
                &[&round, &order.user, &quantity],
            )
            .await
            .map_err(db)?;
        }
        let row = tx
            .query_opt(
                &tx.prepare_cached(sql::RECORD).await.map_err(db)?,
                &[&round, &order.user, &quantity, &order.request_id],
            )
            .await
            .map_err(db)?;
        match row {
            Some(row) => {
                tx.commit()
                    .await
                    .map_err(|err| in_doubt::committing(round, err))?;
                Ok(Placed::New(receipt(round, row.get(0), stock_after)))
            }
            None => {
                // The request id placed an order before: a failure from here on is no "no".
                tx.rollback()
                    .await
                    .map_err(|err| in_doubt::replayed(round, err))?;
                Ok(Placed::Again)
            }
        }
    }

    /// The receipt of what `placed` came to: a retried request id gets its first order back.
    pub(super) async fn settle(
        &self,
        client: &Object,
        placed: Placed,
        round: i64,
        order: Order<'_>,
    ) -> Result<Receipt, Failure> {
        match placed {
            Placed::New(receipt) => Ok(receipt),
            Placed::Again => {
                let id: i64 = client
                    .query_one(
                        &client
                            .prepare_cached(sql::PLACED)
                            .await
                            .map_err(|err| in_doubt::replayed(round, err))?,
                        &[&round, &order.request_id],
                    )
                    .await
                    .map_err(|err| in_doubt::replayed(round, err))?
                    .get(0);
                let stock: i64 = client
                    .query_one(
                        &client
                            .prepare_cached(sql::STOCK)
                            .await
                            .map_err(|err| in_doubt::replayed(round, err))?,
                        &[],
                    )
                    .await
                    .map_err(|err| in_doubt::replayed(round, err))?
                    .get(1);
                tracing::debug!(round, request_id = order.request_id, "replayed request id");
                Ok(receipt(round, id, stock))
            }
        }
    }
}
