//! The `flashsale.v1.Checkout` gRPC service: validation, the three purchase paths, stock reads
//! and the admin reset, each call in its own `tracing` span.

use std::sync::Arc;
use std::time::Duration;

use flashsale::pb::{self, checkout_server::Checkout};
use tonic::{Request, Response, Status};
use tracing::{Instrument, field};

use crate::config::ServerConfig;
use crate::error::CheckoutError;
use crate::store::{Order, Purchase, Snapshot, Store, Strategy};
use crate::validate;

/// Which purchase path a call took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Buggy,
    Unstable,
    Safe,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Buggy => "buggy",
            Path::Unstable => "unstable",
            Path::Safe => "safe",
        }
    }
}

/// The checkout, over any [`Store`].
pub struct CheckoutService {
    store: Arc<dyn Store>,
    latency: Duration,
    failure_rate: f64,
    max_quantity: u32,
    default_stock: i64,
}

impl CheckoutService {
    pub fn new(store: Arc<dyn Store>, config: &ServerConfig) -> Self {
        Self {
            store,
            latency: config.latency,
            failure_rate: config.failure_rate,
            max_quantity: config.max_quantity,
            default_stock: config.stock,
        }
    }

    async fn purchase(
        &self,
        path: Path,
        req: pb::PurchaseRequest,
    ) -> Result<pb::PurchaseReply, Status> {
        let span = tracing::debug_span!(
            "purchase",
            mode = path.name(),
            user = %req.user_id,
            outcome = field::Empty
        );
        async {
            let result = self.purchase_inner(path, &req).await;
            let outcome = match &result {
                Ok((Purchase::Purchased(_), _)) => "purchased",
                Ok((Purchase::SoldOut { .. }, _)) => "sold_out",
                Err(_) => "error",
            };
            tracing::Span::current().record("outcome", outcome);
            match result {
                Ok((purchase, quantity)) => Ok(reply(purchase, quantity)),
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
    ) -> Result<(Purchase, u32), CheckoutError> {
        let order = validate::order(req, self.max_quantity)?;
        let purchase = match path {
            Path::Safe => self.store.purchase(order).await?,
            Path::Unstable => {
                if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
                    return Err(CheckoutError::InjectedFailure(self.failure_rate));
                }
                self.check_then_act(order).await?
            }
            Path::Buggy => self.check_then_act(order).await?,
        };
        Ok((purchase, order.quantity))
    }

    /// The naive purchase of the original demo: check, wait for the "database", decrement.
    /// Nothing stops other calls from passing the same check in the meantime.
    async fn check_then_act(&self, order: Order<'_>) -> Result<Purchase, CheckoutError> {
        let stock = self.store.read_stock().await?;
        if stock < i64::from(order.quantity) {
            return Ok(Purchase::SoldOut { stock });
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(Purchase::Purchased(
            self.store.decrement_unchecked(order).await?,
        ))
    }
}

fn reply(purchase: Purchase, quantity: u32) -> pb::PurchaseReply {
    match purchase {
        Purchase::Purchased(receipt) => pb::PurchaseReply {
            outcome: pb::Outcome::Purchased.into(),
            order_id: receipt.order_id,
            stock_after: receipt.stock_after,
            quantity,
            round: 0,
        },
        Purchase::SoldOut { stock } => pb::PurchaseReply {
            outcome: pb::Outcome::SoldOut.into(),
            order_id: String::new(),
            stock_after: stock,
            quantity,
            round: 0,
        },
    }
}

fn stock_reply(snapshot: Snapshot) -> pb::StockReply {
    pb::StockReply {
        stock: snapshot.stock,
        initial_stock: snapshot.initial_stock,
        orders: snapshot.orders,
        units_sold: snapshot.units_sold,
        round: snapshot.round,
        safe_strategy: Strategy::to_wire(Some(snapshot.strategy)),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl Checkout for CheckoutService {
    type ListOrdersStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::OrderBatch, Status>> + Send>>;

    async fn list_orders(
        &self,
        _request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<Self::ListOrdersStream>, Status> {
        Err(Status::unimplemented("ListOrders is not implemented yet"))
    }

    async fn purchase_buggy(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(Path::Buggy, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn purchase_unstable(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(Path::Unstable, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn purchase_safe(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(Path::Safe, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_stock(
        &self,
        _request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        let snapshot = self.store.snapshot().await.map_err(CheckoutError::from)?;
        Ok(Response::new(stock_reply(snapshot)))
    }

    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        let (stock, strategy) = validate::reset(request.get_ref(), self.default_stock)?;
        let snapshot = self
            .store
            .reset(stock, strategy)
            .await
            .map_err(CheckoutError::from)?;
        tracing::info!(
            stock,
            strategy = %snapshot.strategy,
            round = snapshot.round,
            "reset: new round"
        );
        Ok(Response::new(stock_reply(snapshot)))
    }
}
