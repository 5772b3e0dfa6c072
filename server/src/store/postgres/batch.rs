//! The `batched` strategy on PostgreSQL: many purchases per statement, every answer exact.
//!
//! A purchase joins a bounded queue; one task per store takes the first waiting purchase, the
//! others that arrive within the batch window (`--batch-window`, from the first one) up to the
//! batch size (`--batch-size`), and applies them in one transaction: the sale row locked
//! (`sql::BATCH_LOCK`: every replica's batch waits for the one before it, so replicas need no
//! other coordination), then one statement (`sql::BATCH`) that allocates the stock to the
//! members in arrival order (all or nothing per order, never below zero, the per-user limit and
//! request-id idempotency inside the statement), writes their orders and per-user totals, and
//! returns each member's outcome and order id; then one commit. While a batch runs the next
//! one fills, so under load the window rarely waits: a batch is whatever queued meanwhile.
//!
//! - A full queue (8 batches' worth waiting) answers UNAVAILABLE at once: nothing written.
//! - A member whose deadline passed before its batch ran is left out and answered
//!   `DeadlineExceeded`; one whose caller has gone (cancelled) is left out unanswered.
//! - The same request id twice in one batch is sent once; both callers get its answer.
//! - A failure before the commit was sent answers every member UNAVAILABLE (rolled back); a
//!   commit in doubt is resolved member by member by request id (`in_doubt.rs`), as the
//!   one-purchase paths are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::conn::Object;
use super::in_doubt::{self, Failure};
use super::{PgStore, ShardFault, db, receipt, sql, strategy_of, to_u64};
use crate::store::{Order, Purchase, StoreError, Strategy};

/// How long a batch waits for more purchases after its first one, by default (measured:
/// docs/postgres.md).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Most purchases in one batch, by default (measured: docs/postgres.md).
pub const DEFAULT_BATCH_SIZE: u16 = 256;
/// Batches' worth of purchases the queue holds before it refuses more.
const QUEUE_BATCHES: usize = 8;

/// The batched strategy's window and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub window: Duration,
    pub size: u16,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            window: DEFAULT_BATCH_WINDOW,
            size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// A wrong batch, injected by tests to show that their checks catch it; not reachable from
/// the command line.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchFault {
    #[default]
    None,
    /// Answers the members, then rolls the batch back instead of committing it.
    AnswerBeforeCommit,
    /// Checks each member against the stock before the batch (`sql::BATCH_STALE_STOCK`).
    StaleStock,
}

/// What a member is answered: `Ok(None)` when the sale's strategy is not `batched`.
type Answer = Result<Option<Purchase>, StoreError>;

struct Member {
    user: String,
    quantity: u32,
    request_id: String,
    round: u64,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Answer>,
}

impl Member {
    fn order(&self) -> Order<'_> {
        Order {
            user: &self.user,
            quantity: self.quantity,
            request_id: &self.request_id,
            round: self.round,
        }
    }
}

/// A store's queue of purchases waiting for a batch (its task starts with the first one).
#[derive(Debug, Default)]
pub(super) struct Batcher {
    queue: std::sync::OnceLock<mpsc::Sender<Member>>,
    pub(super) batching: Batching,
    pub(super) fault: BatchFault,
}

/// The same answer for a second caller (the same request id twice in one batch).
fn copy(answer: &Answer) -> Answer {
    match answer {
        Ok(purchase) => Ok(purchase.clone()),
        Err(err) => Err(match err {
            StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
            StoreError::OutcomeUnknown(why) => StoreError::OutcomeUnknown(why.clone()),
            StoreError::RoundMismatch { requested, current } => StoreError::RoundMismatch {
                requested: *requested,
                current: *current,
            },
            StoreError::RoundEnded { round, current } => StoreError::RoundEnded {
                round: *round,
                current: *current,
            },
            StoreError::Conflict(why) => StoreError::Conflict(why.clone()),
            StoreError::Unsupported(why) => StoreError::Unsupported(why.clone()),
            StoreError::DeadlineExceeded(why) => StoreError::DeadlineExceeded(why.clone()),
        }),
    }
}

impl PgStore {
    /// `Store::purchase_batched` on PostgreSQL: queued for the next batch.
    pub(super) async fn join_batch(
        &self,
        order: Order<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<Purchase>, StoreError> {
        let batching = self.batcher.batching;
        let size = usize::from(batching.size.max(1));
        let queue = self.batcher.queue.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(size.saturating_mul(QUEUE_BATCHES));
            let worker = PgStore {
                pool: self.pool.clone(),
                policy: self.policy,
                shards: self.shards,
                next_shard: AtomicU32::new(0),
                sharded_guess: AtomicBool::new(false),
                fault: ShardFault::None,
                batcher: Batcher::default(),
            };
            tokio::spawn(worker.batches(waiting, batching.window, size, self.batcher.fault));
            queue
        });
        let (reply, answer) = oneshot::channel();
        let member = Member {
            user: order.user.to_string(),
            quantity: order.quantity,
            request_id: order.request_id.to_string(),
            round: order.round,
            deadline,
            reply,
        };
        queue.try_send(member).map_err(|err| {
            StoreError::Unavailable(match err {
                mpsc::error::TrySendError::Full(_) => format!(
                    "the batch queue is full ({} purchases waiting); nothing was written",
                    queue.max_capacity()
                ),
                mpsc::error::TrySendError::Closed(_) => "the batcher has stopped".into(),
            })
        })?;
        answer.await.map_err(|_| {
            // Never a wrong "no": the batch may have committed.
            StoreError::OutcomeUnknown("the batcher ended without answering".into())
        })?
    }

    /// The batching task: one batch at a time, until the store (the queue's sender) is gone.
    async fn batches(
        self,
        mut waiting: mpsc::Receiver<Member>,
        window: Duration,
        size: usize,
        fault: BatchFault,
    ) {
        while let Some(first) = waiting.recv().await {
            let until = Instant::now() + window;
            let mut members = vec![first];
            while members.len() < size {
                match waiting.try_recv() {
                    Ok(member) => members.push(member),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(until, waiting.recv()).await {
                            Ok(Some(member)) => members.push(member),
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            self.apply(members, fault).await;
        }
    }

    /// Applies one batch and answers its members.
    async fn apply(&self, members: Vec<Member>, fault: BatchFault) {
        let now = Instant::now();
        let mut leaders: Vec<Member> = Vec::with_capacity(members.len());
        let mut followers: Vec<Vec<oneshot::Sender<Answer>>> = Vec::new();
        let mut by_request: HashMap<String, usize> = HashMap::new();
        for member in members {
            if member.reply.is_closed() {
                continue; // its caller is gone: never applied, never answered
            }
            if member.deadline.is_some_and(|deadline| deadline <= now) {
                let _ = member.reply.send(Err(StoreError::DeadlineExceeded(
                    "it was still waiting for its batch".into(),
                )));
                continue;
            }
            if !member.request_id.is_empty() {
                if let Some(&leader) = by_request.get(&member.request_id) {
                    followers[leader].push(member.reply);
                    continue;
                }
                by_request.insert(member.request_id.clone(), leaders.len());
            }
            leaders.push(member);
            followers.push(Vec::new());
        }
        if leaders.is_empty() {
            return;
        }
        let answers = self.batch(&leaders, fault).await;
        for ((leader, answer), followers) in leaders.into_iter().zip(answers).zip(followers) {
            for follower in followers {
                let _ = follower.send(copy(&answer));
            }
            let _ = leader.reply.send(answer);
        }
    }

    /// One batch's answers, one per member, in order.
    async fn batch(&self, members: &[Member], fault: BatchFault) -> Vec<Answer> {
        let mut client = match self.client().await {
            Ok(client) => client,
            Err(err) => {
                let err = Err(err);
                return members.iter().map(|_| copy(&err)).collect();
            }
        };
        let doubt = match self.batch_in(&mut client, members, fault).await {
            Ok(answers) => return answers,
            Err(Failure::Store(err)) => {
                let err = Err(err);
                return members.iter().map(|_| copy(&err)).collect();
            }
            Err(Failure::InDoubt(doubt)) => doubt,
        };
        let backend = client.backend;
        drop(Object::take(client));
        tracing::warn!(members = members.len(), %doubt, "batch in doubt");
        let resolved = members.iter().map(|member| async {
            self.resolve(member.order(), backend, &doubt)
                .await
                .map(|receipt| Some(Purchase::Purchased(receipt)))
        });
        futures::future::join_all(resolved).await
    }

    /// The batch's transaction: lock, statement, commit.
    async fn batch_in(
        &self,
        client: &mut Object,
        members: &[Member],
        fault: BatchFault,
    ) -> Result<Vec<Answer>, Failure> {
        let tx = client.transaction().await.map_err(db)?;
        let sale = tx
            .query_one(&tx.prepare_cached(sql::BATCH_LOCK).await.map_err(db)?, &[])
            .await
            .map_err(db)?;
        let (round, stock): (i64, i64) = (sale.get(0), sale.get(1));
        let strategy = strategy_of(sale.get(2))?;
        let current = to_u64(round);
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(members.len());
        let (mut users, mut quantities, mut request_ids) = (Vec::new(), Vec::new(), Vec::new());
        for member in members {
            answers.push(if member.round != 0 && member.round != current {
                Some(Err(StoreError::RoundMismatch {
                    requested: member.round,
                    current,
                }))
            } else if strategy != Strategy::Batched {
                Some(Ok(None))
            } else {
                users.push(member.user.as_str());
                quantities.push(i64::from(member.quantity));
                request_ids.push(member.request_id.as_str());
                None
            });
        }
        if users.is_empty() {
            tx.rollback().await.map_err(db)?;
            return Ok(answers.into_iter().flatten().collect());
        }
        let statement = match fault {
            BatchFault::StaleStock => sql::BATCH_STALE_STOCK,
            _ => sql::BATCH,
        };
        let limit = i64::from(self.limit());
        let rows = tx
            .query(
                &tx.prepare_cached(statement).await.map_err(db)?,
                &[&round, &limit, &users, &quantities, &request_ids, &stock],
            )
            .await
            .map_err(db)?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in &rows {
            let (code, order_id, stock_after, taken): (i16, Option<i64>, i64, bool) =
                (row.get(1), row.get(2), row.get(3), row.get(4));
            outcomes.push(match (code, order_id) {
                (1, Some(_)) if !taken => {
                    return Err(StoreError::Conflict(
                        "the sale row changed under the batch's lock".into(),
                    )
                    .into());
                }
                (1 | 3, Some(order_id)) => {
                    Purchase::Purchased(receipt(round, order_id, stock_after))
                }
                (2, _) => Purchase::LimitReached {
                    stock: stock_after,
                    round: current,
                },
                (0, _) => Purchase::SoldOut {
                    stock: stock_after,
                    round: current,
                },
                _ => {
                    return Err(StoreError::Unavailable(format!(
                        "the batch statement answered code {code} with order {order_id:?}"
                    ))
                    .into());
                }
            });
        }
        if outcomes.len() != users.len() {
            return Err(StoreError::Unavailable(format!(
                "the batch statement answered {} rows for {} purchases",
                outcomes.len(),
                users.len()
            ))
            .into());
        }
        if fault == BatchFault::AnswerBeforeCommit {
            tx.rollback().await.map_err(db)?;
        } else {
            tx.commit()
                .await
                .map_err(|err| in_doubt::committing(round, err))?;
        }
        let mut outcomes = outcomes.into_iter();
        Ok(answers
            .into_iter()
            .map(|answer| match answer {
                Some(answer) => answer,
                None => match outcomes.next() {
                    Some(purchase) => Ok(Some(purchase)),
                    None => Err(StoreError::Unavailable(
                        "a batch member went missing".into(),
                    )),
                },
            })
            .collect())
    }
}
