//! The safe path's purchase while the sale's strategy is `atomic` (conditional), on PostgreSQL,
//! in as few round trips as the rules allow.
//!
//! The strategy and the round are checked *inside* the statement that takes the stock (`WHERE
//! strategy = 'atomic' AND round = ..`), so the server does not read them before every purchase:
//! a purchase is one statement, one round trip, with no per-user limit (`sql::BUY_IF_ATOMIC`:
//! the compare-and-decrement and the order row in one autocommit statement). A per-user limit
//! needs the user's units reserved and a rollback when they are not: one transaction then
//! (take, reserve, record, commit). When the take matches nothing, one more read says why:
//! another strategy (nothing changed, the caller dispatches), another round than the client
//! asked for, the limit, or not enough stock. Anything else (the stock grew back: a Reset
//! between the two statements) is tried again, a bounded number of times.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::error::SqlState;

use super::{PgStore, Placed, db, receipt, sql, strategy_of, to_i64, to_u64};
use crate::store::{Order, Purchase, StoreError, Strategy};

/// Statements tried per purchase before giving up with `Conflict` (each retry follows a Reset
/// or a replayed request id whose round ended in between).
const ATTEMPTS: u32 = 3;

/// What one try came to.
enum Step {
    Done(Purchase),
    /// The sale's strategy is not `atomic`: nothing changed.
    Other,
    /// The sale changed between the take and the read of why it failed: try again.
    Again,
}

/// The sale as the read after a failed take saw it.
struct State {
    round: i64,
    stock: i64,
    strategy: Strategy,
}

/// Whether `err` is the unique violation of one request id placing a second order in a round.
fn is_replay(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("orders_request_once")
    })
}

/// Why a take for round `requested` (0: any) of `quantity` units matched nothing.
fn judge(
    requested: i64,
    quantity: i64,
    state: &State,
    over_limit: bool,
) -> Result<Step, StoreError> {
    if requested != 0 && requested != state.round {
        return Err(StoreError::RoundMismatch {
            requested: to_u64(requested),
            current: to_u64(state.round),
        });
    }
    if state.strategy != Strategy::Atomic {
        return Ok(Step::Other);
    }
    let round = to_u64(state.round);
    if over_limit {
        return Ok(Step::Done(Purchase::LimitReached {
            stock: state.stock,
            round,
        }));
    }
    if state.stock < quantity {
        return Ok(Step::Done(Purchase::SoldOut {
            stock: state.stock,
            round,
        }));
    }
    Ok(Step::Again)
}

impl PgStore {
    /// `Store::take_if_atomic` on PostgreSQL.
    pub(super) async fn buy_if_atomic(
        &self,
        order: Order<'_>,
    ) -> Result<Option<Purchase>, StoreError> {
        let requested = to_i64(order.round)?;
        let quantity = i64::from(order.quantity);
        let mut client = self.client().await?;
        for _ in 0..ATTEMPTS {
            let step = if self.limit() == 0 {
                self.buy_once(&client, requested, quantity, order).await?
            } else {
                self.buy_limited(&mut client, requested, quantity, order)
                    .await?
            };
            match step {
                Step::Done(purchase) => return Ok(Some(purchase)),
                Step::Other => return Ok(None),
                Step::Again => {}
            }
        }
        Err(StoreError::Conflict(format!(
            "the sale changed under the purchase {ATTEMPTS} times in a row"
        )))
    }

    async fn state(client: &impl GenericClient) -> Result<State, StoreError> {
        let statement = client.prepare_cached(sql::STATE).await.map_err(db)?;
        let row = client.query_one(&statement, &[]).await.map_err(db)?;
        Ok(State {
            round: row.get(0),
            stock: row.get(1),
            strategy: strategy_of(row.get(2))?,
        })
    }

    /// One statement: take and record, or nothing.
    async fn buy_once(
        &self,
        client: &Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, StoreError> {
        let statement = client
            .prepare_cached(sql::BUY_IF_ATOMIC)
            .await
            .map_err(db)?;
        let bought = client
            .query_opt(
                &statement,
                &[&quantity, &requested, &order.user, &order.request_id],
            )
            .await;
        match bought {
            Ok(Some(row)) => Ok(Step::Done(Purchase::Purchased(receipt(
                row.get(0),
                row.get(1),
                row.get(2),
            )))),
            Ok(None) => {
                let state = Self::state(client).await?;
                judge(requested, quantity, &state, false)
            }
            Err(err) if is_replay(&err) => {
                // The request id placed an order in this round before: that order, unchanged.
                let statement = client.prepare_cached(sql::PLACED_NOW).await.map_err(db)?;
                let Some(row) = client
                    .query_opt(&statement, &[&order.request_id])
                    .await
                    .map_err(db)?
                else {
                    return Ok(Step::Again); // its round ended in between
                };
                let round: i64 = row.get(0);
                if requested != 0 && round != requested {
                    return Ok(Step::Again);
                }
                tracing::debug!(round, request_id = order.request_id, "replayed request id");
                Ok(Step::Done(Purchase::Purchased(receipt(
                    round,
                    row.get(1),
                    row.get(2),
                ))))
            }
            Err(err) => Err(db(err)),
        }
    }

    /// One transaction: take, reserve the user's units within the limit, record, commit.
    async fn buy_limited(
        &self,
        client: &mut Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, StoreError> {
        let tx = client.transaction().await.map_err(db)?;
        let taken = tx
            .query_opt(
                &tx.prepare_cached(sql::TAKE_IF_ATOMIC).await.map_err(db)?,
                &[&quantity, &requested],
            )
            .await
            .map_err(db)?;
        let Some(row) = taken else {
            let state = Self::state(&tx).await?;
            let over = state.round == requested || requested == 0;
            let over = over && self.over_limit(&tx, state.round, order).await?;
            tx.rollback().await.map_err(db)?;
            return judge(requested, quantity, &state, over);
        };
        let (round, stock_after): (i64, i64) = (row.get(0), row.get(1));
        if !self.reserve_units(&tx, round, order).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(Step::Done(Purchase::LimitReached {
                stock: stock_after.saturating_add(quantity),
                round: to_u64(round),
            }));
        }
        let placed = self.place(tx, round, order, stock_after, false).await?;
        if let Placed::New(receipt) = placed {
            return Ok(Step::Done(Purchase::Purchased(receipt)));
        }
        let order = Order {
            round: to_u64(round),
            ..order
        };
        Ok(Step::Done(Purchase::Purchased(
            self.settle(client, placed, round, order).await?,
        )))
    }
}
