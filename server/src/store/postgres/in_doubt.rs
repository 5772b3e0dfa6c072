//! Never a wrong "no": a purchase whose commit may have happened is resolved by its request id,
//! never answered UNAVAILABLE (the contract's "nothing was written").
//!
//! A purchase is in doubt when its connection fails (closed, reset, I/O error, or the server
//! ending the session) while the message that commits it is in flight or after: its `COMMIT`,
//! or the one-statement purchase itself (autocommit: the statement is the commit). Everything
//! that fails earlier (the pool, `BEGIN`, any statement before `COMMIT` was sent) left nothing:
//! PostgreSQL never commits a transaction whose `COMMIT` it did not receive, and an error the
//! database *answered* to `COMMIT` (a serialization failure, a constraint) is a rollback.
//!
//! Resolving one, on a fresh connection, within [`RESOLVE_WITHIN`] (retried with backoff while
//! the database does not answer):
//! 1. End the backend that ran the purchase (`pg_terminate_backend`) and wait until it has
//!    exited (`conn.rs` knows its pid and start time). Until then a lookup proves nothing: a
//!    statement waiting for a row lock goes on, and commits, after its client is gone. Once the
//!    backend has exited, what it did is final: committed, or rolled back at its exit.
//! 2. Look the request id up in the purchase's round: an order there is the purchase's (a
//!    request id places at most one order per round), answered as PURCHASED with its order id.
//! 3. No order, the backend proven gone and the purchase's round still the current one: nothing
//!    was written, and only then UNAVAILABLE.
//!
//! Everything else is answered [`StoreError::OutcomeUnknown`] (gRPC UNKNOWN, which the driver's
//! audit counts as indeterminate): no request id to look up, the database not back in time, the
//! backend unknown or not ours to end, the round ended since (a Reset forgets the old book), or a
//! purchase for "any round" (round 0) whose round cannot be named.
//!
//! This assumes the store's connections reach PostgreSQL itself (or a session-pooling proxy):
//! behind a transaction-pooling proxy a connection's backend is not one process.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::error::Severity;

use super::conn::{Backend, Object};
use super::{PgStore, db, describe, receipt, sql};
use crate::store::{Order, Receipt, StoreError};

/// How long a purchase in doubt waits for the database to say what became of it.
pub const RESOLVE_WITHIN: Duration = Duration::from_secs(2);

/// Longest pause between two tries to reach the database while resolving.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Why a purchase on PostgreSQL did not end in a decision, by what it may have left behind.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// Decided: a refusal, a conflict, or a failure before anything that could commit the
    /// purchase was sent (nothing written).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Undecided: it may have been applied.
    #[error(transparent)]
    InDoubt(Doubt),
}

/// A purchase that may have been applied, for `round` (0: whatever round was current).
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {cause}")]
pub(super) struct Doubt {
    round: i64,
    kind: DoubtKind,
    cause: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum DoubtKind {
    /// The connection failed while the purchase's commit was in flight or after.
    #[error("the connection failed while the purchase was committing")]
    Committing,
    /// The request id had placed an order before (a retry), which could not be read back.
    #[error("the request id placed an order before, which could not be read back")]
    Replayed,
}

/// Whether the database's own answer to a commit means it did not commit: any error it sent,
/// except those that end the session (FATAL or PANIC, class 08, or 57P such as an
/// administrator's termination), which can arrive after a commit that happened. A cancelled
/// statement (57014, an ERROR) did not commit.
fn answered_no(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        let code = db.code().code();
        let ends_session = matches!(
            db.parsed_severity(),
            Some(Severity::Fatal) | Some(Severity::Panic)
        ) || matches!(db.severity(), "FATAL" | "PANIC");
        !(ends_session || code.starts_with("08") || code.starts_with("57P"))
    })
}

/// A failed `COMMIT`, or a failed one-statement purchase, of a purchase for `round`.
pub(super) fn committing(round: i64, err: tokio_postgres::Error) -> Failure {
    if answered_no(&err) {
        return Failure::Store(db(err));
    }
    Failure::InDoubt(Doubt {
        round,
        kind: DoubtKind::Committing,
        cause: describe(&err),
    })
}

/// A failed read-back of the order a retried request id placed in `round`.
pub(super) fn replayed(round: i64, err: tokio_postgres::Error) -> Failure {
    Failure::InDoubt(Doubt {
        round,
        kind: DoubtKind::Replayed,
        cause: describe(&err),
    })
}

/// What the database said about a purchase in doubt.
struct Looked {
    current: i64,
    /// The request id's order in the purchase's round: (round, order id).
    order: Option<(i64, i64)>,
    stock: i64,
    /// Whether the backend that ran the purchase is known to have exited.
    ended: bool,
}

impl PgStore {
    /// `result` of a purchase on `conn`, decided: a failure in doubt is resolved (the module's
    /// doc); an order found is answered through `placed`.
    pub(super) async fn decided<T>(
        &self,
        conn: Object,
        order: Order<'_>,
        result: Result<T, Failure>,
        placed: impl FnOnce(Receipt) -> T,
    ) -> Result<T, StoreError> {
        let doubt = match result {
            Ok(done) => return Ok(done),
            Err(Failure::Store(err)) => return Err(err),
            Err(Failure::InDoubt(doubt)) => doubt,
        };
        let backend = conn.backend;
        // Whatever state it is in, it never goes back to the pool.
        drop(Object::take(conn));
        tracing::warn!(request_id = order.request_id, %doubt, "purchase in doubt");
        let resolved = self.resolve(order, backend, &doubt).await;
        match &resolved {
            Ok(receipt) => tracing::info!(order_id = %receipt.order_id, "in doubt: placed"),
            Err(err) => tracing::warn!(%err, "in doubt: not placed, or unknown"),
        }
        resolved.map(placed)
    }

    pub(super) async fn resolve(
        &self,
        order: Order<'_>,
        backend: Option<Backend>,
        doubt: &Doubt,
    ) -> Result<Receipt, StoreError> {
        let (round, committing) = (doubt.round, doubt.kind == DoubtKind::Committing);
        if order.request_id.is_empty() {
            return Err(StoreError::OutcomeUnknown(format!(
                "{doubt}; it has no request id to look it up by"
            )));
        }
        let backend = if committing { backend } else { None };
        let deadline = Instant::now() + RESOLVE_WITHIN;
        let mut pause = Duration::from_millis(10);
        let mut last = "no answer".to_string();
        loop {
            let looked = self.look_up(order, round, backend, committing);
            match tokio::time::timeout_at(deadline, looked).await {
                Ok(Ok(looked)) => return verdict(doubt, &looked),
                Ok(Err(err)) => last = err,
                Err(_) => break,
            }
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        Err(StoreError::OutcomeUnknown(format!(
            "{doubt}; the database did not say what became of it within {RESOLVE_WITHIN:?} \
             ({last})"
        )))
    }

    /// One try: end the purchase's backend (when `committing`), then look the request id up.
    async fn look_up(
        &self,
        order: Order<'_>,
        round: i64,
        backend: Option<Backend>,
        committing: bool,
    ) -> Result<Looked, String> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|err| format!("database pool: {err}"))?;
        let ended = match backend {
            Some(backend) => end(&client, backend).await?,
            None => !committing,
        };
        let statement = client
            .prepare_cached(sql::IN_DOUBT)
            .await
            .map_err(|err| describe(&err))?;
        let row = client
            .query_one(&statement, &[&order.request_id, &round])
            .await
            .map_err(|err| describe(&err))?;
        let (order_round, order_id): (Option<i64>, Option<i64>) = (row.get(1), row.get(2));
        Ok(Looked {
            current: row.get(0),
            order: order_round.zip(order_id),
            stock: row.get(3),
            ended,
        })
    }
}

/// Ends `backend` and waits until it has exited: `Ok(true)`; `Ok(false)` when the database
/// refuses (this role may not end it).
async fn end(client: &Object, backend: Backend) -> Result<bool, String> {
    let statement = client
        .prepare_cached(sql::END_BACKEND)
        .await
        .map_err(|err| describe(&err))?;
    let mut pause = Duration::from_millis(2);
    loop {
        match client
            .query_opt(&statement, &[&backend.pid, &backend.started])
            .await
        {
            Ok(None) => return Ok(true),
            Ok(Some(_)) => {} // signalled, not gone yet
            Err(err) if err.as_db_error().is_some() => {
                tracing::warn!(pid = backend.pid, err = %describe(&err), "cannot end a backend");
                return Ok(false);
            }
            Err(err) => return Err(describe(&err)),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// What a purchase in doubt came to, from what the database said.
fn verdict(doubt: &Doubt, looked: &Looked) -> Result<Receipt, StoreError> {
    if let Some((round, order_id)) = looked.order {
        return Ok(receipt(round, order_id, looked.stock));
    }
    let round = doubt.round;
    let why = if doubt.kind == DoubtKind::Replayed {
        "its order is no longer in the book (a Reset started another round)"
    } else if !looked.ended {
        "no order yet, and the backend that ran it may still commit it"
    } else if round == 0 {
        "no order in the current round, and it was for whichever round was current"
    } else if round != looked.current {
        "no order, and its round has ended since (a Reset forgot that round's book)"
    } else {
        return Err(StoreError::Unavailable(format!(
            "{doubt}; resolved: its backend has exited and round {round} has no order with \
             its request id, so nothing was written"
        )));
    };
    Err(StoreError::OutcomeUnknown(format!("{doubt}; {why}")))
}

#[cfg(test)]
mod tests {
    use super::{Doubt, DoubtKind, Looked, verdict};
    use crate::store::StoreError;

    fn looked(order: Option<(i64, i64)>, ended: bool, current: i64) -> Looked {
        Looked {
            current,
            order,
            stock: 7,
            ended,
        }
    }

    fn doubt(round: i64, kind: DoubtKind) -> Doubt {
        Doubt {
            round,
            kind,
            cause: "connection closed".into(),
        }
    }

    #[test]
    fn an_order_found_is_the_answer_whatever_else_holds() {
        for (round, ended) in [(3, false), (0, true)] {
            let doubt = doubt(round, DoubtKind::Committing);
            let receipt = verdict(&doubt, &looked(Some((3, 41)), ended, 3)).unwrap();
            assert_eq!((receipt.order_id.as_str(), receipt.round), ("r3-41", 3));
            assert_eq!(receipt.stock_after, 7);
        }
    }

    #[test]
    fn no_order_is_a_no_only_when_the_backend_is_gone_and_the_round_is_current() {
        let committing = DoubtKind::Committing;
        let no = verdict(&doubt(3, committing), &looked(None, true, 3));
        assert!(matches!(no, Err(StoreError::Unavailable(_))), "{no:?}");
        for (round, ended, current, kind) in [
            (3, false, 3, committing),         // the backend may still commit it
            (0, true, 3, committing),          // whichever round was current: not nameable
            (3, true, 4, committing),          // a Reset forgot round 3's book
            (3, true, 3, DoubtKind::Replayed), // a replayed order that is gone
        ] {
            let answer = verdict(&doubt(round, kind), &looked(None, ended, current));
            assert!(
                matches!(answer, Err(StoreError::OutcomeUnknown(_))),
                "{round} {ended} {current} {kind:?}: {answer:?}"
            );
        }
    }
}
