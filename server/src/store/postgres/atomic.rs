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
//!
//! A round whose stock is split over shards (`--stock-shards`, `shards.rs`) matches nothing
//! here (its sale row holds no stock); the read of why says so and the purchase takes from the
//! shards instead, and the other way round. Each server remembers which kind the last round it
//! saw was, so it goes straight to the right statement.

use deadpool_postgres::GenericClient;
use std::sync::atomic::Ordering;

use tokio_postgres::error::SqlState;

use super::conn::Object;
use super::in_doubt::{self, Failure};
use super::{PgStore, Placed, db, receipt, sql, strategy_of, to_i64, to_u64};
use crate::store::{Order, Purchase, StoreError, Strategy};

/// Statements tried per purchase before giving up with `Conflict` (each retry follows a Reset
/// or a replayed request id whose round ended in between).
const ATTEMPTS: u32 = 3;

/// What one try came to.
pub(super) enum Step {
    Done(Purchase),
    /// The sale's strategy is not `atomic`: nothing changed.
    Other,
    /// The sale changed between the take and the read of why it failed: try again.
    Again,
    /// The round's stock is split over shards: take from them. Nothing changed.
    Sharded,
    /// The round's stock is in the sale row: take from it. Nothing changed.
    Single,
}

/// The sale as the read after a failed take saw it.
pub(super) struct State {
    pub(super) round: i64,
    /// The round's whole stock (the sum of its shards when it has several).
    pub(super) stock: i64,
    pub(super) strategy: Strategy,
    pub(super) shards: i32,
}

impl State {
    fn of(row: &tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(State {
            round: row.get(0),
            stock: row.get(1),
            strategy: strategy_of(row.get(2))?,
            shards: row.get(3),
        })
    }
}

/// Whether `err` is the unique violation of one request id placing a second order in a round.
fn is_replay(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("orders_request_once")
    })
}

/// Why a take for round `requested` (0: any) of `quantity` units matched nothing; `sharded`:
/// whether the take was from shards.
pub(super) fn judge(
    requested: i64,
    quantity: i64,
    state: &State,
    over_limit: bool,
    sharded: bool,
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
    if (state.shards > 1) != sharded {
        return Ok(if sharded { Step::Single } else { Step::Sharded });
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
        client: &mut Object,
        order: Order<'_>,
    ) -> Result<Option<Purchase>, Failure> {
        let requested = to_i64(order.round)?;
        let quantity = i64::from(order.quantity);
        let (mut tries, mut switches) = (0, 0);
        while tries < ATTEMPTS && switches <= ATTEMPTS {
            let sharded = self.sharded_guess.load(Ordering::Relaxed);
            let step = match (sharded, self.limit() == 0) {
                (false, true) => self.buy_once(client, requested, quantity, order).await?,
                (false, false) => self.buy_limited(client, requested, quantity, order).await?,
                (true, true) => {
                    self.buy_from_shard(client, requested, quantity, order)
                        .await?
                }
                (true, false) => {
                    self.buy_from_shard_limited(client, requested, quantity, order)
                        .await?
                }
            };
            match step {
                Step::Done(purchase) => return Ok(Some(purchase)),
                Step::Other => return Ok(None),
                Step::Again => tries += 1,
                Step::Sharded | Step::Single => {
                    switches += 1;
                    self.sharded_guess
                        .store(matches!(step, Step::Sharded), Ordering::Relaxed);
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "the sale changed under the purchase {ATTEMPTS} times in a row"
        ))
        .into())
    }

    pub(super) async fn state(client: &impl GenericClient) -> Result<State, StoreError> {
        let statement = client.prepare_cached(sql::STATE).await.map_err(db)?;
        State::of(&client.query_one(&statement, &[]).await.map_err(db)?)
    }

    /// [`PgStore::state`] on a connection outside any transaction.
    async fn state_now(client: &Object) -> Result<State, StoreError> {
        let statement = client.prepare_cached(sql::STATE).await.map_err(db)?;
        State::of(&client.query_one(&statement, &[]).await.map_err(db)?)
    }

    /// The order a request id placed in the current round (a retry of it): that order,
    /// unchanged, or `Again` when its round ended in between or is not the one asked for.
    async fn replayed(client: &Object, requested: i64, order: Order<'_>) -> Result<Step, Failure> {
        let replayed = |err| in_doubt::replayed(requested, err);
        let statement = client
            .prepare_cached(sql::PLACED_NOW)
            .await
            .map_err(replayed)?;
        let Some(row) = client
            .query_opt(&statement, &[&order.request_id])
            .await
            .map_err(replayed)?
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

    /// One statement: take and record, or nothing.
    async fn buy_once(
        &self,
        client: &Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, Failure> {
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
        if let Some(step) = Self::bought(client, requested, order, bought).await? {
            return Ok(step);
        }
        let state = Self::state_now(client).await?;
        Ok(judge(requested, quantity, &state, false, false)?)
    }

    /// What a one-statement purchase (take and record; its row: round, order id, stock
    /// after) came to: the order it placed, or the one a retried request id placed before
    /// (unchanged); `None` when it took nothing.
    pub(super) async fn bought(
        client: &Object,
        requested: i64,
        order: Order<'_>,
        bought: Result<Option<tokio_postgres::Row>, tokio_postgres::Error>,
    ) -> Result<Option<Step>, Failure> {
        match bought {
            Ok(Some(row)) => Ok(Some(Step::Done(Purchase::Purchased(receipt(
                row.get(0),
                row.get(1),
                row.get(2),
            ))))),
            Ok(None) => Ok(None),
            Err(err) if is_replay(&err) => Self::replayed(client, requested, order).await.map(Some),
            // Autocommit: the statement was its own commit, which may have happened.
            Err(err) => Err(in_doubt::committing(requested, err)),
        }
    }

    /// One transaction: take, reserve the user's units within the limit, record, commit.
    async fn buy_limited(
        &self,
        client: &mut Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, Failure> {
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
            return Ok(judge(requested, quantity, &state, over, false)?);
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
        self.placed(client, placed, round, order).await
    }

    /// The purchase `placed` came to: the new order, or the one a retried request id placed.
    pub(super) async fn placed(
        &self,
        client: &Object,
        placed: Placed,
        round: i64,
        order: Order<'_>,
    ) -> Result<Step, Failure> {
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
