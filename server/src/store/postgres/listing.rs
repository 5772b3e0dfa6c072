//! ListOrders on PostgreSQL: one REPEATABLE READ snapshot held on a pooled connection for the
//! whole stream, read in pages by order id (keyset), at most the book cap in all.

use super::conn::Object;
use super::{db, sql, to_u64};
use crate::store::book::ListedOrder;
use crate::store::{OrderPage, StoreError};

/// A pooled connection inside a read-only transaction. Dropped before the transaction ended
/// (a client gave up on a listing), the connection is closed instead of going back to the pool.
pub(super) struct Lease(pub(super) Option<Object>);

impl Lease {
    pub(super) fn client(&mut self) -> &Object {
        self.0
            .as_ref()
            .expect("a lease holds its connection until dropped or ended")
    }

    /// Ends the transaction and gives the connection back.
    async fn end(&mut self) -> Result<(), StoreError> {
        let result = self.client().batch_execute("COMMIT").await.map_err(db);
        if result.is_ok() {
            self.0.take();
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

/// A listing of one round's book: pages by order id, all read in one snapshot.
pub(super) struct Listing {
    pub(super) lease: Lease,
    pub(super) round: i64,
    pub(super) after: i64,
    /// Orders the book cap still lets through.
    pub(super) remaining: u64,
    pub(super) batch: i64,
    pub(super) started: bool,
}

impl Listing {
    /// The next page; an empty book yields one empty page; `None` when done.
    pub(super) async fn next_page(&mut self) -> Result<Option<OrderPage>, StoreError> {
        if self.lease.0.is_none() {
            return Ok(None);
        }
        let limit = self
            .batch
            .min(i64::try_from(self.remaining).unwrap_or(i64::MAX));
        let rows = if limit == 0 {
            Vec::new()
        } else {
            let client = self.lease.client();
            let page = client.prepare_cached(sql::PAGE).await.map_err(db)?;
            client
                .query(&page, &[&self.round, &self.after, &limit])
                .await
                .map_err(db)?
        };
        let orders: Vec<ListedOrder> = rows
            .iter()
            .map(|row| ListedOrder {
                seq: to_u64(row.get(0)),
                user_id: row.get(1),
                quantity: u32::try_from(row.get::<_, i64>(2)).unwrap_or(u32::MAX),
                request_id: row.get(3),
            })
            .collect();
        if let Some(last) = rows.last() {
            self.after = last.get(0);
        }
        self.remaining = self.remaining.saturating_sub(orders.len() as u64);
        let last_page = (orders.len() as i64) < limit || self.remaining == 0;
        if last_page {
            self.lease.end().await?;
        }
        if orders.is_empty() && self.started {
            return Ok(None);
        }
        self.started = true;
        Ok(Some(OrderPage {
            round: to_u64(self.round),
            orders,
        }))
    }
}
