//! Stock shards (`--stock-shards N`): a round of the conditional (`atomic`) strategy keeps its
//! stock in N rows of `sale_shards` instead of the one hot `sale` row, so purchases of one round
//! stop queueing on one row lock.
//!
//! - **Fast path**, one statement (`sql::BUY_FROM_SHARD`): take q from one shard that covers
//!   it, the preferred one (round robin per server, so N shards see 1/N of the purchases each)
//!   or the nearest after it, and record the order. If another purchase holds that shard the
//!   statement waits for it, holding no other lock (so it cannot deadlock), then re-checks its
//!   stock. A first try with `FOR UPDATE SKIP LOCKED` and this statement as its fallback
//!   measured no better (with more purchases in flight than shards every shard is usually busy
//!   and the extra statement costs a round trip: 160 against 116 µs of server CPU per purchase
//!   at 4 shards in one pair of noisy runs).
//!   With a per-user limit, the take, the user's units and the order are one transaction.
//! - **Spread path**, when the fast path took nothing (no shard could cover q alone, or the one
//!   it waited for was emptied meanwhile): one transaction locks *all* the round's shards in
//!   shard order (spread purchases and Reset lock them in that same order, the fast path waits
//!   for one shard holding nothing else: no deadlock), then takes q across them greedily from the preferred shard on, or refuses as
//!   sold out only when their *sum* cannot cover q. So a round never oversells (every take is
//!   under the shard's row lock and `CHECK (stock >= 0)`) and never leaves stock unsold: a
//!   refusal for stock is decided on the whole round's stock, under the locks of every shard.
//!
//! Per-user limit, request-id idempotency and rounds ending behave as on the single row: the
//! units are reserved in the purchase's transaction, a request id placed before gets its order
//! back, a round pinned by the client that is no longer current is refused, and a Reset deletes
//! the ended round's shards (after the purchases holding them finish), so nothing is taken from
//! a round once the next one is committed.

use std::sync::atomic::Ordering;

use super::atomic::{Step, judge};
use super::conn::Object;
use super::in_doubt::Failure;
use super::{PgStore, db, sql, to_u64};
use crate::store::{Order, Purchase, StoreError};

/// Most shards a round's stock may be split over.
pub const MAX_SHARDS: u16 = 256;

/// Deliberate faults, for the tests that prove the spread path is needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShardFault {
    #[default]
    None,
    /// When no single shard can cover an order, refuse it as sold out instead of taking it
    /// across shards: the stock left in several shards is never sold.
    NoSpread,
}

/// Units to take from which shard: q across `stocks` (shard, stock), greedily from the
/// `preferred` position on (wrapping), or `None` when their sum cannot cover q.
pub(super) fn plan(
    stocks: &[(i32, i64)],
    quantity: i64,
    preferred: usize,
) -> Option<Vec<(i32, i64)>> {
    let total = stocks
        .iter()
        .try_fold(0i64, |sum, &(_, stock)| sum.checked_add(stock.max(0)))?;
    if quantity <= 0 || total < quantity || stocks.is_empty() {
        return None;
    }
    let start = preferred % stocks.len();
    let mut left = quantity;
    let mut takes = Vec::new();
    for &(shard, stock) in stocks[start..].iter().chain(&stocks[..start]) {
        if left == 0 {
            break;
        }
        let take = left.min(stock.max(0));
        if take > 0 {
            takes.push((shard, take));
            left -= take;
        }
    }
    (left == 0).then_some(takes)
}

impl PgStore {
    /// The shard this purchase prefers (any number; the statements take it modulo the round's
    /// count): the next of a per-server counter, so purchases spread evenly.
    fn preferred_shard(&self) -> i32 {
        let next = self.next_shard.fetch_add(1, Ordering::Relaxed) % (1 << 16);
        i32::try_from(next).unwrap_or(0)
    }

    /// No per-user limit: one statement takes from one shard and records the order; the spread
    /// path when it took nothing.
    pub(super) async fn buy_from_shard(
        &self,
        client: &mut Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, Failure> {
        let preferred = self.preferred_shard();
        let statement = client
            .prepare_cached(sql::BUY_FROM_SHARD)
            .await
            .map_err(db)?;
        let bought = client
            .query_opt(
                &statement,
                &[
                    &quantity,
                    &requested,
                    &order.user,
                    &order.request_id,
                    &preferred,
                ],
            )
            .await;
        if let Some(step) = Self::bought(client, requested, order, bought).await? {
            return Ok(step);
        }
        self.buy_spread(client, requested, quantity, order, preferred)
            .await
    }

    /// A per-user limit: one transaction takes from one shard (waiting for it if busy: the
    /// take is its first statement, so it holds nothing else), reserves the user's units and
    /// records the order; the spread path when it took nothing.
    pub(super) async fn buy_from_shard_limited(
        &self,
        client: &mut Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
    ) -> Result<Step, Failure> {
        let preferred = self.preferred_shard();
        let tx = client.transaction().await.map_err(db)?;
        let taken = tx
            .query_opt(
                &tx.prepare_cached(sql::TAKE_FROM_SHARD).await.map_err(db)?,
                &[&quantity, &requested, &preferred],
            )
            .await
            .map_err(db)?;
        let Some(row) = taken else {
            // A failed take may still hold the shard it waited for and found emptied: released
            // before the spread path locks them all in order.
            tx.rollback().await.map_err(db)?;
            return self
                .buy_spread(client, requested, quantity, order, preferred)
                .await;
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

    /// The spread path: every shard of the round locked in shard order, then q taken across
    /// them, or refused on the round's whole stock.
    async fn buy_spread(
        &self,
        client: &mut Object,
        requested: i64,
        quantity: i64,
        order: Order<'_>,
        preferred: i32,
    ) -> Result<Step, Failure> {
        let tx = client.transaction().await.map_err(db)?;
        let state = Self::state(&tx).await?;
        let usual = judge(requested, quantity, &state, false, true);
        if !matches!(
            usual,
            Ok(Step::Again) | Ok(Step::Done(Purchase::SoldOut { .. }))
        ) {
            // Another round than asked for, another strategy, an unsharded round.
            tx.rollback().await.map_err(db)?;
            return Ok(usual?);
        }
        let round = state.round;
        let rows = tx
            .query(
                &tx.prepare_cached(sql::LOCK_SHARDS).await.map_err(db)?,
                &[&round],
            )
            .await
            .map_err(db)?;
        // Under the locks: a Reset committed since the read above has deleted the round's
        // shards (it locks them first, so it cannot commit while this holds them).
        let now: i64 = tx
            .query_one(&tx.prepare_cached(sql::CURRENT).await.map_err(db)?, &[])
            .await
            .map_err(db)?
            .get(0);
        if now != round || i32::try_from(rows.len()).ok() != Some(state.shards) {
            tx.rollback().await.map_err(db)?;
            return Ok(Step::Again);
        }
        let stocks: Vec<(i32, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let total = stocks
            .iter()
            .try_fold(0i64, |sum, &(_, stock)| sum.checked_add(stock))
            .ok_or_else(|| StoreError::Unavailable(format!("round {round}: stock overflows")))?;
        let plan = match self.fault {
            ShardFault::None => plan(&stocks, quantity, usize::try_from(preferred).unwrap_or(0)),
            ShardFault::NoSpread => None,
        };
        let Some(plan) = plan else {
            let over = self.limit() != 0 && self.over_limit(&tx, round, order).await?;
            tx.rollback().await.map_err(db)?;
            let round = to_u64(round);
            return Ok(Step::Done(if over {
                Purchase::LimitReached {
                    stock: total,
                    round,
                }
            } else {
                Purchase::SoldOut {
                    stock: total,
                    round,
                }
            }));
        };
        if self.limit() != 0 && !self.reserve_units(&tx, round, order).await? {
            tx.rollback().await.map_err(db)?;
            return Ok(Step::Done(Purchase::LimitReached {
                stock: total,
                round: to_u64(round),
            }));
        }
        let (shards, takes): (Vec<i32>, Vec<i64>) = plan.iter().copied().unzip();
        let updated = tx
            .execute(
                &tx.prepare_cached(sql::TAKE_SPREAD).await.map_err(db)?,
                &[&round, &shards, &takes],
            )
            .await
            .map_err(db)?;
        if usize::try_from(updated).ok() != Some(plan.len()) {
            // Cannot happen under the locks; a partial take must never place an order.
            tx.rollback().await.map_err(db)?;
            return Err(Failure::Store(StoreError::Unavailable(format!(
                "round {round}: took from {updated} of {} locked shards",
                plan.len()
            ))));
        }
        tracing::debug!(round, quantity, shards = plan.len(), "took across shards");
        let placed = self
            .place(tx, round, order, total.saturating_sub(quantity), false)
            .await?;
        self.placed(client, placed, round, order).await
    }
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn plans_take_across_shards_or_refuse_on_the_sum() {
        let shards = [(0, 1), (1, 1), (2, 1)];
        assert_eq!(plan(&shards, 3, 0), Some(vec![(0, 1), (1, 1), (2, 1)]));
        assert_eq!(plan(&shards, 2, 2), Some(vec![(2, 1), (0, 1)]));
        assert_eq!(plan(&shards, 4, 0), None);
        assert_eq!(plan(&[(0, 0), (1, 5)], 3, 7), Some(vec![(1, 3)]));
        assert_eq!(plan(&[(0, 2), (1, 5)], 3, 0), Some(vec![(0, 2), (1, 1)]));
        assert_eq!(plan(&[], 1, 0), None);
        assert_eq!(plan(&[(0, i64::MAX), (1, 1)], 1, 0), None);
        assert_eq!(plan(&[(0, 3)], 0, 0), None);
    }
}
