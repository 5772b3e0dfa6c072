//! The double's state and the purchase logic every fault bends: one round of stock, its order
//! book and the per-user tally. Plain synchronous code; the service keeps one `State` behind
//! one `std::sync::Mutex` and never holds that lock across an await.

use std::collections::HashMap;
use std::time::Duration;

use flashsale::pb;
use tonic::Status;

/// How the double misbehaves. `Correct` follows the contract; every other variant is one
/// plausible real-world bug (the comment says which audit check must catch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Follows the contract.
    Correct,
    /// Every purchase answers UNAVAILABLE (`availability`).
    Dead,
    /// Every purchase answers OK + SOLD_OUT, the stock untouched (`no_undersell`).
    NeverSells,
    /// Insufficient stock answers INTERNAL instead of OK + SOLD_OUT (`availability`).
    SoldOutAsInternal,
    /// Insufficient stock answers RESOURCE_EXHAUSTED instead of OK + SOLD_OUT (`availability`).
    SoldOutAsResourceExhausted,
    /// Reads the version, waits, compare-and-sets; a conflict answers SOLD_OUT instead of
    /// retrying (`no_undersell`).
    OptimisticNoRetry,
    /// Every `every`-th sale is acknowledged and booked, the stock not decremented
    /// (`conservation`).
    AckWithoutDecrement { every: u64 },
    /// Every `every`-th sale decrements the stock, answers SOLD_OUT, books nothing
    /// (`conservation`).
    DecrementThenSoldOut { every: u64 },
    /// Every `every`-th sale is booked twice: same request id, two order ids, one decrement
    /// (`exactly_once` / `books_balance`).
    DoubleRecord { every: u64 },
    /// Reset answers OK with the old state and changes nothing (the driver refuses to run).
    ResetNoop,
    /// Reports `limit` as the per-user limit and never enforces it (`per_user_limit`).
    IgnoresPerUserLimit { limit: u32 },
    /// Checks `stock > 0` instead of `stock >= quantity`, atomically (`no_oversell`,
    /// `stock_not_negative`).
    GreaterThanZeroCheck,
    /// Every `every`-th sale is acknowledged and decremented but not booked (`no_lost_orders`).
    LostOrder { every: u64 },
    /// Every [`GHOST_EVERY`]-th sale, up to [`GHOSTS_PER_ROUND`] a round, also books an order
    /// nobody sent, with its unit taken from the stock (`no_ghost_orders`).
    GhostOrders,
    /// Correct, but ListOrders answers UNIMPLEMENTED (reconciliation impossible).
    NoOrderBook,
    /// Applies purchases of any round and keeps working on requests whose client gave up, so
    /// a previous run's stragglers land in the next round (`no_ghost_orders` of the next run).
    IgnoresRound,
    /// Every `every`-th sale's decrement is delivered a second time `delay_ms` later, from the
    /// background (a redelivered asynchronous message): the stock moves after the run looked
    /// settled (`settled`).
    LateDecrement { every: u64, delay_ms: u64 },
    /// Every `every`-th sale is booked under the customer of the sale before it
    /// (`orders_match`).
    WrongCustomer { every: u64 },
    /// Correct, but ListOrders answers UNAVAILABLE: the book exists and cannot be read (the
    /// checks that need it are inconclusive, never skipped).
    BookUnavailable,
    /// Correct, but ListOrders streams the book of the round before, labelled as such
    /// (inconclusive: the book of this round cannot be read).
    StaleBook,
    /// Every `every`-th purchase answers DEADLINE_EXCEEDED at once, long before the client's
    /// deadline, without applying it (`availability`: an error, not a deadline expiry).
    EarlyDeadline { every: u64 },
    /// Never deduplicates request ids: a retry is a second, whole order (`probe_idempotent`
    /// fails: the contract promises a retry is answered its order).
    IgnoresRequestId,
    /// Answers a retried request id with its earlier order, but takes the stock again (the
    /// idempotency record consulted after the decrement) (`probe_idempotent`).
    ReplayTakesStock,
    /// Reads quantity 0 as zero units instead of one: an order of nothing is placed
    /// (`probe_bad_quantity`).
    ZeroQuantityFree,
    /// Correct behind a front door that refuses every other purchase with UNAVAILABLE before
    /// touching anything (`--mode unstable`'s contract, deterministic): the probes retry.
    FlakyFrontDoor,
    /// Reports `max_quantity` but never enforces it (`probe_bad_quantity`).
    IgnoresMaxQuantity,
    /// Every `every`-th purchase is applied, then answered UNAVAILABLE: the reply lost after
    /// the commit (a connection reset). With `dedup` a retry of the request is answered its
    /// order (`--retries` makes the run pass; without retries it is a phantom sale); without,
    /// the retry is a second order (`exactly_once`).
    UnavailableAfterApply { every: u64, dedup: bool },
    /// Checks `stock > quantity` instead of `stock >= quantity`: the last units never sell
    /// in one order of exactly that size (`probe_exact_stock`).
    StrictlyMoreThanAsked,
}

/// See [`Fault::GhostOrders`].
pub const GHOST_EVERY: u64 = 25;
/// See [`Fault::GhostOrders`].
pub const GHOSTS_PER_ROUND: u64 = 4;

/// How purchases are serialised (reported as `safe_strategy`; `Reset` may switch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Latency outside any lock, then check-and-decrement under the state lock.
    Atomic,
    /// Latency and check-and-decrement under one queue lock: purchases serialise.
    Serial,
    /// Reported as ROW_LOCK: one process has one "row", so it behaves as `Serial`.
    RowLock,
    /// Reported as SERIALIZABLE: in one process it behaves as `Atomic`.
    Serializable,
}

/// Everything a double is started with.
#[derive(Debug, Clone)]
pub struct Config {
    pub fault: Fault,
    pub strategy: Strategy,
    /// Simulated database latency of one purchase.
    pub latency: Duration,
    /// Stock of the first round, and of a Reset without a stock.
    pub stock: i64,
    /// Enforced per-user limit in units (0: none).
    pub per_user_limit: u32,
    pub max_quantity: u32,
    /// Most orders a round's book lists; later ones only count in `book_overflow`.
    pub book_cap: u64,
    /// Orders per ListOrders batch (at most 1024).
    pub batch: usize,
    /// Keep working on a purchase after its client gave up (deadline, cancel). Not a fault
    /// by itself: the round check keeps such stragglers out of the next round.
    pub finish_abandoned: bool,
    /// `(n, length)`: when the `n`-th purchase arrives the checkout stalls for `length`: every
    /// purchase that arrives until then waits for the stall's end (a GC pause, a SIGSTOP).
    pub stall: Option<(usize, Duration)>,
}

impl Config {
    pub fn new(fault: Fault) -> Self {
        Config {
            fault,
            strategy: Strategy::Atomic,
            latency: Duration::from_millis(5),
            stock: 100,
            per_user_limit: 0,
            max_quantity: 10,
            book_cap: 1 << 20,
            batch: 1024,
            finish_abandoned: fault == Fault::IgnoresRound,
            stall: None,
        }
    }

    /// Stalls for `length` when the `after`-th purchase arrives.
    pub fn stall(self, after: usize, length: Duration) -> Self {
        Config {
            stall: Some((after, length)),
            ..self
        }
    }

    /// Lock-serialised purchases taking `latency` each.
    pub fn serial(self, latency: Duration) -> Self {
        Config {
            strategy: Strategy::Serial,
            latency,
            ..self
        }
    }

    pub fn latency(self, latency: Duration) -> Self {
        Config { latency, ..self }
    }

    pub fn stock(self, stock: i64) -> Self {
        Config { stock, ..self }
    }

    pub fn per_user_limit(self, per_user_limit: u32) -> Self {
        Config {
            per_user_limit,
            ..self
        }
    }

    pub fn book_cap(self, book_cap: u64) -> Self {
        Config { book_cap, ..self }
    }

    pub fn finish_abandoned(self) -> Self {
        Config {
            finish_abandoned: true,
            ..self
        }
    }

    /// The per-user limit StockReply advertises.
    fn reported_limit(&self) -> u32 {
        match self.fault {
            Fault::IgnoresPerUserLimit { limit } => limit,
            _ => self.per_user_limit,
        }
    }

    /// The per-user limit purchases are held to (0: none).
    fn enforced_limit(&self) -> u32 {
        match self.fault {
            Fault::IgnoresPerUserLimit { .. } => 0,
            _ => self.per_user_limit,
        }
    }
}

/// A validated purchase request.
#[derive(Debug, Clone)]
pub struct Ask {
    pub user_id: String,
    pub request_id: String,
    pub quantity: u32,
    pub round: u64,
}

/// The contract's input rules: INVALID_ARGUMENT, nothing changed.
pub fn validate(request: pb::PurchaseRequest, max_quantity: u32) -> Result<Ask, Status> {
    if request.user_id.is_empty() || request.user_id.len() > 128 {
        return Err(Status::invalid_argument("user_id must be 1-128 bytes"));
    }
    if request.request_id.len() > 128 {
        return Err(Status::invalid_argument(
            "request_id must be at most 128 bytes",
        ));
    }
    let quantity = request.quantity.max(1);
    if quantity > max_quantity {
        return Err(Status::invalid_argument(format!(
            "quantity {quantity} is above the maximum {max_quantity}"
        )));
    }
    Ok(Ask {
        user_id: request.user_id,
        request_id: request.request_id,
        quantity,
        round: request.round,
    })
}

/// One round of the checkout.
#[derive(Debug)]
pub struct State {
    pub round: u64,
    pub initial_stock: i64,
    pub stock: i64,
    pub strategy: Strategy,
    /// Bumped by every change of the stock (OptimisticNoRetry compares it).
    pub version: u64,
    pub book: Vec<pb::Order>,
    orders: u64,
    units_sold: u64,
    overflow: u64,
    bought: HashMap<String, u64>,
    /// Request id -> the order it placed and its units (a retry gets that order back).
    requests: HashMap<String, (String, u32)>,
    /// Sales decided this round; `every`-th faults count these.
    placed: u64,
    ghosts: u64,
    next_order: u64,
    book_cap: u64,
    /// The customer of the last sale (WrongCustomer books under it).
    last_user: String,
    /// The book of the round before (StaleBook lists it).
    pub previous_book: Vec<pb::Order>,
}

impl State {
    pub fn new(config: &Config) -> Self {
        State {
            round: 1,
            initial_stock: config.stock,
            stock: config.stock,
            strategy: config.strategy,
            version: 0,
            book: Vec::new(),
            orders: 0,
            units_sold: 0,
            overflow: 0,
            bought: HashMap::new(),
            requests: HashMap::new(),
            placed: 0,
            ghosts: 0,
            next_order: 0,
            book_cap: config.book_cap,
            last_user: String::new(),
            previous_book: Vec::new(),
        }
    }

    /// FAILED_PRECONDITION unless `round` is 0 or the current one.
    pub fn check_round(&self, round: u64) -> Result<(), Status> {
        if round == 0 || round == self.round {
            Ok(())
        } else {
            Err(Status::failed_precondition(format!(
                "round {round} is not the current round {}",
                self.round
            )))
        }
    }

    /// Decides and applies one purchase, the way `config.fault` does it. `seen_version` is
    /// the version an optimistic purchase read before its latency.
    pub fn apply(
        &mut self,
        config: &Config,
        ask: &Ask,
        seen_version: Option<u64>,
    ) -> Result<pb::PurchaseReply, Status> {
        let fault = config.fault;
        if fault != Fault::IgnoresRound {
            self.check_round(ask.round)?;
        }
        if let Some((order_id, units)) = self.replayed(fault, &ask.request_id) {
            if fault == Fault::ReplayTakesStock {
                self.take(i64::from(units));
            }
            return Ok(self.reply(pb::Outcome::Purchased, order_id, units));
        }
        let quantity = i64::from(ask.quantity);
        if seen_version.is_some_and(|seen| seen != self.version) {
            // The optimistic write lost the race; a correct one would re-read and retry.
            return Ok(self.reply(pb::Outcome::SoldOut, String::new(), ask.quantity));
        }
        let limit = u64::from(config.enforced_limit());
        let bought = self.bought.get(&ask.user_id).copied().unwrap_or(0);
        if limit > 0 && bought + u64::from(ask.quantity) > limit {
            return Ok(self.reply(pb::Outcome::LimitReached, String::new(), ask.quantity));
        }
        let enough = match fault {
            Fault::GreaterThanZeroCheck => self.stock > 0,
            Fault::StrictlyMoreThanAsked => self.stock > quantity,
            _ => self.stock >= quantity,
        };
        if !enough {
            return match fault {
                Fault::SoldOutAsInternal => Err(Status::internal("insufficient stock")),
                Fault::SoldOutAsResourceExhausted => {
                    Err(Status::resource_exhausted("out of stock"))
                }
                _ => Ok(self.reply(pb::Outcome::SoldOut, String::new(), ask.quantity)),
            };
        }

        self.placed += 1;
        let placed = self.placed;
        let nth = |every: u64| every > 0 && placed.is_multiple_of(every);
        if let Fault::DecrementThenSoldOut { every } = fault
            && nth(every)
        {
            // The write committed, the handler then reported a failure.
            self.take(quantity);
            return Ok(self.reply(pb::Outcome::SoldOut, String::new(), ask.quantity));
        }
        if !matches!(fault, Fault::AckWithoutDecrement { every } if nth(every)) {
            self.take(quantity);
        }
        *self.bought.entry(ask.user_id.clone()).or_default() += u64::from(ask.quantity);
        let order_id = self.next_order_id();
        let customer = match fault {
            Fault::WrongCustomer { every } if nth(every) && !self.last_user.is_empty() => {
                self.last_user.clone()
            }
            _ => ask.user_id.clone(),
        };
        self.last_user = ask.user_id.clone();
        if !ask.request_id.is_empty() {
            self.requests
                .insert(ask.request_id.clone(), (order_id.clone(), ask.quantity));
        }
        if !matches!(fault, Fault::LostOrder { every } if nth(every)) {
            self.record(&order_id, &customer, ask.quantity, &ask.request_id);
        }
        if matches!(fault, Fault::DoubleRecord { every } if nth(every)) {
            let again = self.next_order_id();
            self.record(&again, &ask.user_id, ask.quantity, &ask.request_id);
        }
        if fault == Fault::GhostOrders
            && placed.is_multiple_of(GHOST_EVERY)
            && self.ghosts < GHOSTS_PER_ROUND
            && self.stock >= 1
        {
            self.ghosts += 1;
            let ghost = self.next_order_id();
            let n = self.ghosts;
            self.take(1);
            self.record(
                &ghost,
                &format!("intruder-{n}"),
                1,
                &format!("foreign-{}-{n}", self.round),
            );
        }
        Ok(self.reply(pb::Outcome::Purchased, order_id, ask.quantity))
    }

    /// Starts a new round with an empty book (or, for `ResetNoop`, pretends to).
    pub fn reset(
        &mut self,
        config: &Config,
        request: pb::ResetRequest,
    ) -> Result<pb::StockReply, Status> {
        if config.fault == Fault::ResetNoop {
            return Ok(self.stock_reply(config));
        }
        let stock = request.stock.unwrap_or(config.stock);
        if stock < 0 {
            return Err(Status::invalid_argument("stock must not be negative"));
        }
        let strategy = match pb::SafeStrategy::try_from(request.safe_strategy) {
            Ok(pb::SafeStrategy::Mutex) => Strategy::Serial,
            Ok(pb::SafeStrategy::Atomic) => Strategy::Atomic,
            Ok(pb::SafeStrategy::RowLock) => Strategy::RowLock,
            Ok(pb::SafeStrategy::Serializable) => Strategy::Serializable,
            // The double has no batches: a batched round buys like an atomic one.
            Ok(pb::SafeStrategy::Batched) => Strategy::Atomic,
            Ok(pb::SafeStrategy::Unspecified) => self.strategy,
            Err(_) => return Err(Status::invalid_argument("unknown safe_strategy")),
        };
        let round = self.round + 1;
        let next_order = self.next_order;
        let version = self.version + 1;
        let previous_book = std::mem::take(&mut self.book);
        *self = State::new(&config.clone().stock(stock));
        self.previous_book = previous_book;
        self.round = round;
        self.next_order = next_order;
        self.version = version;
        self.strategy = strategy;
        Ok(self.stock_reply(config))
    }

    pub fn stock_reply(&self, config: &Config) -> pb::StockReply {
        pb::StockReply {
            stock: self.stock,
            initial_stock: self.initial_stock,
            orders: self.orders,
            units_sold: self.units_sold,
            round: self.round,
            safe_strategy: match self.strategy {
                Strategy::Atomic => pb::SafeStrategy::Atomic,
                Strategy::Serial => pb::SafeStrategy::Mutex,
                Strategy::RowLock => pb::SafeStrategy::RowLock,
                Strategy::Serializable => pb::SafeStrategy::Serializable,
            }
            .into(),
            per_user_limit: config.reported_limit(),
            book_cap: if config.fault == Fault::NoOrderBook {
                0
            } else {
                config.book_cap
            },
            book_overflow: self.overflow,
            max_quantity: config.max_quantity,
        }
    }

    /// The book of `round` (0: the current one) in batches of `config.batch`; always at least
    /// one batch, so an empty book still names its round.
    pub fn list(&self, config: &Config, round: u64) -> Result<Vec<pb::OrderBatch>, Status> {
        if round != 0 && round != self.round {
            return Err(Status::failed_precondition(format!(
                "only the current round {} is kept, not {round}",
                self.round
            )));
        }
        let batch = config.batch.clamp(1, 1024);
        let (book, listed_round) = if config.fault == Fault::StaleBook {
            (&self.previous_book, self.round - 1)
        } else {
            (&self.book, self.round)
        };
        let mut batches: Vec<_> = book
            .chunks(batch)
            .map(|orders| pb::OrderBatch {
                round: listed_round,
                orders: orders.to_vec(),
            })
            .collect();
        if batches.is_empty() {
            batches.push(pb::OrderBatch {
                round: listed_round,
                orders: Vec::new(),
            });
        }
        Ok(batches)
    }

    /// Takes `quantity` units without a sale (a redelivered decrement).
    pub fn take_again(&mut self, quantity: i64) {
        self.take(quantity);
    }

    /// The order a request id already placed in this round, unless `fault` forgets them.
    fn replayed(&self, fault: Fault, request_id: &str) -> Option<(String, u32)> {
        if request_id.is_empty()
            || fault == Fault::IgnoresRequestId
            || matches!(fault, Fault::UnavailableAfterApply { dedup: false, .. })
        {
            return None;
        }
        self.requests.get(request_id).cloned()
    }

    fn take(&mut self, quantity: i64) {
        self.stock -= quantity;
        self.version += 1;
    }

    fn next_order_id(&mut self) -> String {
        self.next_order += 1;
        format!("ord-{}-{}", self.round, self.next_order)
    }

    fn record(&mut self, order_id: &str, user_id: &str, quantity: u32, request_id: &str) {
        self.orders += 1;
        self.units_sold += u64::from(quantity);
        if self.book.len() as u64 >= self.book_cap {
            self.overflow += 1;
            return;
        }
        self.book.push(pb::Order {
            order_id: order_id.to_string(),
            user_id: user_id.to_string(),
            quantity,
            request_id: request_id.to_string(),
        });
    }

    fn reply(&self, outcome: pb::Outcome, order_id: String, quantity: u32) -> pb::PurchaseReply {
        pb::PurchaseReply {
            outcome: outcome.into(),
            order_id,
            stock_after: self.stock,
            quantity,
            round: self.round,
        }
    }
}
