//! Contract probes (issue #20): a short, deterministic phase before the load that checks the
//! boundaries a burst hits only by luck, one sequential purchase at a time, each probe on a
//! fresh round with a small stock set by Reset:
//!
//! | check | purchase | passes when |
//! |---|---|---|
//! | `probe_over_stock` | `q = stock + 1` | OK + SOLD_OUT, the stock unchanged |
//! | `probe_exact_stock` | `q = stock`, then one more unit | PURCHASED, stock 0; then SOLD_OUT |
//! | `probe_idempotent` | one unit, the same request id twice | the same order id, the stock taken once (and one order in the book, if there is one) |
//! | `probe_stale_round` | one unit for the previous round | FAILED_PRECONDITION, nothing changed |
//! | `probe_limit` | the per-customer limit, then one more unit | PURCHASED up to it, then LIMIT_REACHED |
//! | `probe_bad_quantity` | `max_quantity + 1`, then quantity 0 | INVALID_ARGUMENT, nothing changed; 0 takes exactly one unit (the contract's "0 means 1") or is rejected |
//!
//! Probe customers are named `probe-<run prefix><n>`, which no user of the load can be, and
//! every probe round is over before the load's own Reset, so the load's audit never sees them.
//! Answers after which nothing changed (UNAVAILABLE, ABORTED: `--mode unstable`'s injected
//! failures) are retried with the same request id a few times; what stays unknown makes the
//! probe inconclusive, never failed. A checkout that does not say something a probe needs
//! (no per-customer limit, no maximum quantity, no rounds; a custom checkout without request
//! ids in its purchase) gets that probe skipped, with the reason. A checkout that does not
//! deduplicate request ids (its retry is a second order, or refused by the per-customer limit
//! as one) fails `probe_idempotent`: the contract promises a retry is answered its order.

mod answer;
mod buyer;
pub mod judge;
mod plan;
pub mod remote;

use std::time::Instant;

use crate::audit::{Check, CheckId, Status};
use crate::checkout::Control;
use crate::checkout::book::BookState;
use crate::spec::custom::Var;
use crate::spec::ids::{AttemptKey, request_id};
use buyer::{Buyer, Purchase};
use flashsale::pb;
use judge::{Answer, BadQuantity, Booked, Shelf};
use plan::unprobeable;
pub use plan::{Plan, skipped};

/// Most purchases `probe_limit` makes to reach the limit; a larger limit is not probed.
const MAX_LIMIT_ORDERS: u32 = 16;
/// Longest deadline of one probe purchase (the run's `--timeout` when shorter).
const MAX_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the probes against the checkout at `url` through `control`, before the load: every
/// probe's check, in [`judge::NAMES`] order. Never fails: a probe that cannot be carried out
/// (a control call failing) is inconclusive, with the reason; the load's own Reset comes next.
pub async fn run(control: &mut Control, url: &str, plan: &Plan<'_>) -> Vec<Check> {
    if unprobeable(plan).is_some() {
        return skipped(plan);
    }
    let started = Instant::now();
    let checks = match Prober::connect(control, url, plan).await {
        Ok(mut prober) => prober.all().await,
        Err(why) => judge::all_skipped(&format!("not probed: {why}"))
            .into_iter()
            .map(|c| Check::new(c.id, Status::Inconclusive, c.detail))
            .collect(),
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        failed = checks.iter().filter(|c| c.status == Status::Fail).count(),
        "contract probes done"
    );
    checks
}

/// One probe purchase.
struct Ask {
    user: u32,
    seq: u32,
    quantity: u32,
    round: u64,
}

/// The probes' state: the connections, the run's settings and the server's declarations.
struct Prober<'a> {
    control: &'a mut Control,
    buyer: Buyer,
    plan: &'a Plan<'a>,
    /// User ids `prefix<n>`.
    prefix: String,
    next_user: u32,
    /// The server's declarations (GetStock before the first probe).
    declared: pb::StockReply,
    /// The round of the last fresh probe round (the stale one for `probe_stale_round`).
    last_round: u64,
    /// Set when a purchase got no answer in time, or only UNAVAILABLE / ABORTED however often
    /// it was sent: the probes after it are not tried (each would wait as long).
    stuck: Option<String>,
}

type Probed = Result<Check, String>;

impl<'a> Prober<'a> {
    async fn connect(
        control: &'a mut Control,
        url: &str,
        plan: &'a Plan<'a>,
    ) -> Result<Self, String> {
        let buyer = Buyer::connect(url, plan).await?;
        let declared = control.stock().await.map_err(|e| e.to_string())?;
        Ok(Self {
            control,
            buyer,
            plan,
            prefix: format!("probe-{}", plan.user_prefix),
            next_user: 0,
            last_round: declared.round,
            declared,
            stuck: None,
        })
    }

    async fn all(&mut self) -> Vec<Check> {
        let mut checks = Vec::with_capacity(judge::NAMES.len());
        for (i, name) in judge::NAMES.into_iter().enumerate() {
            if let Some(why) = &self.stuck {
                checks.push(Check::new(
                    name,
                    Status::Inconclusive,
                    format!("not probed: an earlier probe purchase got {why}"),
                ));
                continue;
            }
            let probed = match i {
                0 => self.over_stock().await,
                1 => self.exact_stock().await,
                2 => self.idempotent().await,
                3 => self.stale_round().await,
                4 => self.limit().await,
                _ => self.bad_quantity().await,
            };
            checks.push(probed.unwrap_or_else(|why| {
                Check::new(name, Status::Inconclusive, format!("not probed: {why}"))
            }));
        }
        checks
    }

    fn custom(&self) -> bool {
        self.plan.connection.custom.is_some()
    }

    /// The largest quantity one probe order may ask for: the declared maximum and the
    /// per-customer limit, when declared.
    fn cap(&self) -> u32 {
        [self.declared.max_quantity, self.declared.per_user_limit]
            .into_iter()
            .filter(|&n| n > 0)
            .min()
            .unwrap_or(u32::MAX)
    }

    /// A new round holding `stock` units; returns its round number.
    async fn fresh(&mut self, stock: i64) -> Result<u64, String> {
        let reply = self
            .control
            .reset_verified(stock, self.plan.strategy)
            .await
            .map_err(|e| e.to_string())?;
        let stale = std::mem::replace(&mut self.last_round, reply.round);
        Ok(stale)
    }

    async fn shelf(&mut self) -> Result<Shelf, String> {
        let now = self.control.stock().await.map_err(|e| e.to_string())?;
        Ok(Shelf {
            stock: now.stock,
            orders: self.control.counters().then_some(now.orders),
        })
    }

    fn customer(&mut self) -> u32 {
        self.next_user += 1;
        self.next_user
    }

    /// A purchase of `quantity` units by a new customer in the current round.
    fn ask(&mut self, quantity: u32) -> Ask {
        Ask {
            user: self.customer(),
            seq: 0,
            quantity,
            round: self.last_round,
        }
    }

    /// Sends `ask` (again, with the same request id, while nothing changed).
    async fn buy(&mut self, ask: &Ask) -> Answer {
        let user_id = format!("{}{}", self.prefix, ask.user);
        let request_id = request_id(&user_id, ask.seq);
        let purchase = Purchase {
            user_id: &user_id,
            request_id: &request_id,
            quantity: ask.quantity,
            round: ask.round,
        };
        let timeout = self.plan.timeout.min(MAX_PROBE_TIMEOUT);
        let answer = self.buyer.buy(&purchase, timeout).await;
        if matches!(answer, Answer::Timeout) || answer.retryable() {
            self.stuck = Some(answer.to_string());
        }
        answer
    }

    /// What the book of the current round lists for `ask`'s request id, when it can be read.
    async fn booked(&mut self, ask: &Ask, acknowledged: u64) -> Result<Option<Booked>, String> {
        let now = self.control.stock().await.map_err(|e| e.to_string())?;
        let book = self
            .control
            .book(&now, &self.prefix, acknowledged)
            .await
            .map_err(|e| e.to_string())?;
        let key = AttemptKey {
            user: ask.user,
            seq: ask.seq,
        };
        Ok(match book {
            BookState::Complete(book) => {
                let mine = book.entries.iter().filter(|e| e.request == Some(key));
                let (orders, units) =
                    mine.fold((0, 0), |(n, u), e| (n + 1, u + u64::from(e.quantity)));
                Some(Booked { orders, units })
            }
            BookState::Unavailable(_) | BookState::Failed(_) => None,
        })
    }

    async fn over_stock(&mut self) -> Probed {
        let q = self.cap().min(4);
        let stock = i64::from(q) - 1;
        self.fresh(stock).await?;
        let ask = self.ask(q);
        let answer = self.buy(&ask).await;
        let after = self.shelf().await?;
        Ok(judge::over_stock(stock, q, &answer, after))
    }

    async fn exact_stock(&mut self) -> Probed {
        let q = self.cap().min(3);
        let stock = i64::from(q);
        self.fresh(stock).await?;
        let ask = self.ask(q);
        let first = self.buy(&ask).await;
        let after_first = self.shelf().await?;
        let one = self.ask(1);
        let second = self.buy(&one).await;
        let after_second = self.shelf().await?;
        Ok(judge::exact_stock(
            stock,
            &first,
            after_first,
            &second,
            after_second,
        ))
    }

    async fn idempotent(&mut self) -> Probed {
        if let Some(api) = &self.plan.connection.custom
            && !api.purchase.uses(Var::RequestId)
        {
            return Ok(skip(
                judge::IDEMPOTENT,
                "the checkout's purchase sends no {{request_id}}",
            ));
        }
        let stock = 3;
        self.fresh(stock).await?;
        let ask = self.ask(1);
        let first = self.buy(&ask).await;
        let retry = self.buy(&ask).await;
        let after = self.shelf().await?;
        let booked = self.booked(&ask, 2).await?;
        Ok(judge::idempotent(stock, &first, &retry, after, booked))
    }

    async fn stale_round(&mut self) -> Probed {
        if self.custom() || self.declared.round == 0 {
            return Ok(skip(judge::STALE_ROUND, "the checkout has no rounds"));
        }
        let stock = 3;
        let stale = self.fresh(stock).await?;
        let current = self.last_round;
        if stale == current || stale == 0 {
            return Ok(skip(
                judge::STALE_ROUND,
                &format!("Reset kept the round number {current}: no earlier round to name"),
            ));
        }
        let mut ask = self.ask(1);
        ask.round = stale;
        let answer = self.buy(&ask).await;
        let after = self.shelf().await?;
        Ok(judge::stale_round(stale, current, stock, &answer, after))
    }

    async fn limit(&mut self) -> Probed {
        let limit = self.declared.per_user_limit;
        if limit == 0 {
            return Ok(skip(
                judge::LIMIT,
                "the checkout declares no per-customer limit",
            ));
        }
        let chunk = match self.declared.max_quantity {
            0 => 1,
            max => max.min(limit),
        };
        let orders = limit.div_ceil(chunk);
        if orders > MAX_LIMIT_ORDERS {
            return Ok(skip(
                judge::LIMIT,
                &format!(
                    "a limit of {limit} units would take {orders} orders of at most {chunk} to reach"
                ),
            ));
        }
        self.fresh(i64::from(limit) + 1).await?;
        let user = self.customer();
        let mut answers = Vec::new();
        let mut left = limit;
        for seq in 0..orders {
            let ask = Ask {
                user,
                seq,
                quantity: left.min(chunk),
                round: self.last_round,
            };
            left -= ask.quantity;
            let answer = self.buy(&ask).await;
            let stop = !matches!(answer, Answer::Purchased { .. });
            answers.push(answer);
            if stop {
                break;
            }
        }
        let over = Ask {
            user,
            seq: orders,
            quantity: 1,
            round: self.last_round,
        };
        let answer = if answers.len() as u32 == orders {
            Some(self.buy(&over).await)
        } else {
            None
        };
        let after = self.shelf().await?;
        Ok(judge::limit(limit, &answers, answer.as_ref(), after))
    }

    async fn bad_quantity(&mut self) -> Probed {
        if self.custom() {
            return Ok(skip(
                judge::BAD_QUANTITY,
                "a checkout of the team's own declares no quantity rules",
            ));
        }
        let max = self.declared.max_quantity;
        let stock = if max == 0 { 3 } else { i64::from(max) + 1 };
        self.fresh(stock).await?;
        let over = match max {
            0 => None,
            max => {
                let ask = self.ask(max.saturating_add(1));
                let answer = self.buy(&ask).await;
                Some((max, answer, self.shelf().await?))
            }
        };
        let ask = self.ask(0);
        let zero = self.buy(&ask).await;
        let after_zero = self.shelf().await?;
        let zero_booked = match zero {
            Answer::Purchased { .. } => self.booked(&ask, 1).await?,
            _ => None,
        };
        Ok(judge::bad_quantity(&BadQuantity {
            stock,
            over: over.as_ref().map(|(m, a, s)| (*m, a, *s)),
            zero: &zero,
            after_zero,
            zero_booked,
        }))
    }
}

fn skip(name: CheckId, reason: &str) -> Check {
    Check::new(name, Status::Skipped, reason.to_string())
}
