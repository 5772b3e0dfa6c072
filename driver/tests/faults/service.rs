//! The double as a `flashsale.v1.Checkout` service: the three purchase RPCs all run the same
//! purchase (the fault decides what it gets wrong), plus GetStock, Reset and ListOrders.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use flashsale::pb::{self, checkout_server::Checkout};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::state::{Ask, Config, Fault, State, Strategy, validate};

/// What the service and the test's handle share.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    state: Mutex<State>,
    /// The serial strategy's queue: held across the latency and the apply.
    queue: tokio::sync::Mutex<()>,
    /// Purchases being worked on (including ones whose client gave up).
    pub busy: AtomicUsize,
    /// Purchases received (`Fault::FlakyFrontDoor` refuses every other one).
    pub received: AtomicUsize,
    /// Purchases placed so far and the end of the stall (`Config::stall`) once it began.
    placed: AtomicUsize,
    stall_until: Mutex<Option<tokio::time::Instant>>,
}

impl Shared {
    pub fn new(config: Config) -> Self {
        Shared {
            state: Mutex::new(State::new(&config)),
            config,
            queue: tokio::sync::Mutex::new(()),
            busy: AtomicUsize::new(0),
            received: AtomicUsize::new(0),
            placed: AtomicUsize::new(0),
            stall_until: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One purchase: latency, then the decision under the state lock.
    async fn place(self: &Arc<Self>, ask: Ask) -> Result<pb::PurchaseReply, Status> {
        let _busy = Busy::enter(&self.busy);
        let config = &self.config;
        if let Some((after, length)) = config.stall {
            let n = self.placed.fetch_add(1, Ordering::SeqCst) + 1;
            let until = {
                let mut until = self
                    .stall_until
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if n == after {
                    *until = Some(tokio::time::Instant::now() + length);
                }
                *until
            };
            if let Some(until) = until {
                tokio::time::sleep_until(until).await;
            }
        }
        let (seen, strategy) = {
            let state = self.lock();
            if config.fault != Fault::IgnoresRound {
                state.check_round(ask.round)?;
            }
            let seen = (config.fault == Fault::OptimisticNoRetry).then_some(state.version);
            (seen, state.strategy)
        };
        let reply = match strategy {
            Strategy::Atomic | Strategy::Serializable => {
                pause(config).await;
                self.lock().apply(config, &ask, seen)
            }
            Strategy::Serial | Strategy::RowLock => {
                let _turn = self.queue.lock().await;
                pause(config).await;
                self.lock().apply(config, &ask, seen)
            }
        }?;
        if let Fault::LateDecrement { every, delay_ms } = config.fault
            && reply.outcome == i32::from(pb::Outcome::Purchased)
            && order_number(&reply.order_id).is_some_and(|n| n.is_multiple_of(every))
        {
            let shared = Arc::clone(self);
            let quantity = i64::from(reply.quantity);
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                shared.lock().take_again(quantity);
            });
        }
        Ok(reply)
    }
}

/// `N` of an order id `ord-ROUND-N`.
fn order_number(order_id: &str) -> Option<u64> {
    order_id.rsplit('-').next()?.parse().ok()
}

async fn pause(config: &Config) {
    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }
}

/// Counts a purchase in `busy` until dropped (also when its future is cancelled).
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Busy(counter)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct Double(pub Arc<Shared>);

impl Double {
    async fn purchase(&self, request: pb::PurchaseRequest) -> Result<pb::PurchaseReply, Status> {
        let config = &self.0.config;
        let zero = request.quantity == 0;
        let max_quantity = match config.fault {
            Fault::IgnoresMaxQuantity => u32::MAX,
            _ => config.max_quantity,
        };
        let mut ask = validate(request, max_quantity)?;
        if zero && config.fault == Fault::ZeroQuantityFree {
            ask.quantity = 0;
        }
        match config.fault {
            Fault::Dead => return Err(Status::unavailable("checkout is down")),
            Fault::EarlyDeadline { every }
                if (self.0.received.fetch_add(1, Ordering::SeqCst) as u64 + 1)
                    .is_multiple_of(every) =>
            {
                return Err(Status::deadline_exceeded("deadline exceeded (not really)"));
            }
            Fault::FlakyFrontDoor
                if self
                    .0
                    .received
                    .fetch_add(1, Ordering::SeqCst)
                    .is_multiple_of(2) =>
            {
                return Err(Status::unavailable("try again"));
            }
            Fault::NeverSells => {
                let state = self.0.lock();
                return Ok(pb::PurchaseReply {
                    outcome: pb::Outcome::SoldOut.into(),
                    order_id: String::new(),
                    stock_after: state.stock,
                    quantity: ask.quantity,
                    round: state.round,
                });
            }
            _ => {}
        }
        let placed = if config.finish_abandoned {
            // Handed to a task of its own: dropping this future (the client's deadline or
            // cancel) no longer stops the work.
            let shared = self.0.clone();
            tokio::spawn(async move { shared.place(ask).await })
                .await
                .map_err(|err| Status::internal(format!("purchase task failed: {err}")))?
        } else {
            self.0.place(ask).await
        };
        if let Fault::UnavailableAfterApply { every, .. } = config.fault
            && placed.is_ok()
            && (self.0.received.fetch_add(1, Ordering::SeqCst) as u64 + 1).is_multiple_of(every)
        {
            return Err(Status::unavailable("connection reset after the commit"));
        }
        placed
    }
}

type Batches = Pin<Box<dyn Stream<Item = Result<pb::OrderBatch, Status>> + Send>>;

#[tonic::async_trait]
impl Checkout for Double {
    type ListOrdersStream = Batches;

    async fn purchase_buggy(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(request.into_inner()).await.map(Response::new)
    }

    async fn purchase_unstable(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(request.into_inner()).await.map(Response::new)
    }

    async fn purchase_safe(
        &self,
        request: Request<pb::PurchaseRequest>,
    ) -> Result<Response<pb::PurchaseReply>, Status> {
        self.purchase(request.into_inner()).await.map(Response::new)
    }

    async fn get_stock(
        &self,
        _request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        Ok(Response::new(self.0.lock().stock_reply(&self.0.config)))
    }

    async fn reset(
        &self,
        request: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::StockReply>, Status> {
        let reply = self.0.lock().reset(&self.0.config, request.into_inner())?;
        Ok(Response::new(reply))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<Self::ListOrdersStream>, Status> {
        match self.0.config.fault {
            Fault::NoOrderBook => {
                return Err(Status::unimplemented("ListOrders is not implemented"));
            }
            Fault::BookUnavailable => {
                return Err(Status::unavailable("the order database is down"));
            }
            _ => {}
        }
        let batches = self
            .0
            .lock()
            .list(&self.0.config, request.into_inner().round)?;
        let stream = tokio_stream::iter(batches.into_iter().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}
