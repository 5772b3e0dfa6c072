//! The `flashsale.v1.Checkout` gRPC service: validation, the three purchase RPCs (their paths
//! are in `crate::purchase`), stock reads, the order book listing and the admin reset, each call
//! in its own `tracing` span.

use std::sync::Arc;

use flashsale::pb::{self, checkout_server::Checkout};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use tracing::{Instrument, field};

use crate::config::ServerConfig;
use crate::error::CheckoutError;
use crate::latency::Latency;
use crate::purchase::{Outcome, Path, Paths};
use crate::store::{OrderPage, Purchase, Snapshot, Store, Strategy};
use crate::validate;

/// Response metadata of a safe purchase on the serializable strategy: attempts retried after
/// a conflict (absent when none were).
pub const RETRIES_HEADER: &str = "x-flashsale-retries";
/// Response metadata of GetStock: serializable retries this replica made since it started.
pub const TOTAL_RETRIES_HEADER: &str = "x-flashsale-serializable-retries";

/// The checkout, over any [`Store`].
pub struct CheckoutService {
    store: Arc<dyn Store>,
    paths: Paths,
    max_quantity: u32,
    default_stock: i64,
    /// The strategy of a round whose Reset names none: the server's `--strategy`.
    default_strategy: Strategy,
}

/// Most orders in one `OrderBatch` of `ListOrders` (the contract's bound).
pub const LIST_BATCH: usize = 1024;

impl CheckoutService {
    /// The checkout over `store` (built with the configuration's [`store::Policy`]).
    pub fn new(store: Arc<dyn Store>, config: &ServerConfig) -> Self {
        Self {
            store,
            paths: Paths::new(Latency(config.latency), config.failure_rate),
            max_quantity: config.max_quantity,
            default_stock: config.stock,
            default_strategy: config.strategy,
        }
    }

    async fn purchase(
        &self,
        path: Path,
        req: pb::PurchaseRequest,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        let span = tracing::debug_span!(
            "purchase",
            mode = path.name(),
            user = %req.user_id,
            outcome = field::Empty
        );
        async {
            let result = self.purchase_inner(path, &req).await;
            let outcome = match &result {
                Ok((o, _)) => match o.purchase {
                    Purchase::Purchased(_) => "purchased",
                    Purchase::SoldOut { .. } => "sold_out",
                    Purchase::LimitReached { .. } => "limit_reached",
                },
                Err(_) => "error",
            };
            tracing::Span::current().record("outcome", outcome);
            match result {
                Ok((outcome, quantity)) => {
                    let retries = outcome.retries;
                    let mut response = Response::new(reply(outcome.purchase, quantity));
                    if retries > 0 {
                        response
                            .metadata_mut()
                            .insert(RETRIES_HEADER, retries.into());
                    }
                    Ok(response)
                }
                Err(err) => {
                    tracing::debug!(%err, "purchase refused");
                    Err(err.into())
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn purchase_inner(
        &self,
        path: Path,
        req: &pb::PurchaseRequest,
    ) -> Result<(Outcome, u32), CheckoutError> {
        let order = validate::order(req, self.max_quantity)?;
        let outcome = self.paths.purchase(&*self.store, path, order).await?;
        Ok((outcome, order.quantity))
    }

    /// Serializable attempts this service retried after a conflict since it started.
    pub fn serializable_retries(&self) -> u64 {
        self.paths.serializable_retries()
    }
}

fn reply(purchase: Purchase, quantity: u32) -> pb::PurchaseReply {
    let round = purchase.round();
    let (outcome, order_id, stock_after) = match purchase {
        Purchase::Purchased(receipt) => (
            pb::Outcome::Purchased,
            receipt.order_id,
            receipt.stock_after,
        ),
        Purchase::SoldOut { stock, .. } => (pb::Outcome::SoldOut, String::new(), stock),
        Purchase::LimitReached { stock, .. } => (pb::Outcome::LimitReached, String::new(), stock),
    };
    pb::PurchaseReply {
        outcome: outcome.into(),
        order_id,
        stock_after,
        quantity,
        round,
    }
}

fn order_batch(page: OrderPage) -> pb::OrderBatch {
    let round = page.round;
    pb::OrderBatch {
        round,
        orders: page
            .orders
            .into_iter()
            .map(|o| pb::Order {
                order_id: format!("r{round}-{}", o.seq),
                user_id: o.user_id,
                quantity: o.quantity,
                request_id: o.request_id,
            })
            .collect(),
    }
}

fn stock_reply(snapshot: Snapshot, max_quantity: u32) -> pb::StockReply {
    pb::StockReply {
        stock: snapshot.stock,
        initial_stock: snapshot.initial_stock,
        orders: snapshot.orders,
        units_sold: snapshot.units_sold,
        round: snapshot.round,
        safe_strategy: Strategy::to_wire(Some(snapshot.strategy)),
        per_user_limit: snapshot.per_user_limit,
        book_cap: snapshot.book_cap,
        book_overflow: snapshot.book_overflow,
        max_quantity,
    }
}

#[tonic::async_trait]
impl Checkout for CheckoutService {
    type ListOrdersStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::OrderBatch, Status>> + Send>>;

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<Self::ListOrdersStream>, Status> {
        let round = request.get_ref().round;
        let pages = self
            .store
            .list_orders(round, LIST_BATCH)
            .await
            .map_err(CheckoutError::from)?;
        let batches = pages.map(|page| {
            page.map(order_batch)
                .map_err(|err| CheckoutError::from(err).into())
        });
        Ok(Response::new(Box::pin(batches)))
    }

    async fn purchase_buggy(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(Path::Buggy, request.into_inner()).await
    }

    async fn purchase_unstable(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(Path::Unstable, request.into_inner()).await
    }

    async fn purchase_safe(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        // The batched strategy answers a purchase whose deadline passed before its batch ran.
        let deadline = crate::purchase::deadline(request.metadata());
        crate::purchase::DEADLINE
            .scope(deadline, self.purchase(Path::Safe, request.into_inner()))
            .await
    }

    async fn get_stock(
        &self,
        _request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        let snapshot = self.store.snapshot().await.map_err(CheckoutError::from)?;
        let mut response = Response::new(stock_reply(snapshot, self.max_quantity));
        response
            .metadata_mut()
            .insert(TOTAL_RETRIES_HEADER, self.serializable_retries().into());
        Ok(response)
    }

    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        let (stock, strategy) = validate::reset(request.get_ref(), self.default_stock)?;
        // One rule: a round uses the strategy its Reset names, else the server's configured
        // one (never the previous round's, which may have been another client's choice).
        let snapshot = self
            .store
            .reset(stock, Some(strategy.unwrap_or(self.default_strategy)))
            .await
            .map_err(CheckoutError::from)?;
        tracing::info!(
            stock,
            strategy = %snapshot.strategy,
            round = snapshot.round,
            "reset: new round"
        );
        Ok(Response::new(stock_reply(snapshot, self.max_quantity)))
    }
}
