//! Live counters of a running load, for the progress display: one set of relaxed atomics per
//! connection (written only by that connection's task, so never contended on the request
//! path), summed by whoever watches. Also the users' start instant and the last stock polled.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::engine::outcome::Outcome;

/// One connection's counters, on its own cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counters {
    attempts: AtomicU64,
    purchased: AtomicU64,
    sold_out: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    /// Counts one finished request.
    pub fn record(&self, outcome: &Outcome) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let counter = match outcome {
            Outcome::Purchased { .. } => &self.purchased,
            Outcome::SoldOut { .. } | Outcome::LimitReached { .. } => &self.sold_out,
            Outcome::Status(_) | Outcome::Timeout => &self.errors,
            Outcome::BadReply => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A sum of every connection's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub attempts: u64,
    pub purchased: u64,
    pub sold_out: u64,
    pub errors: u64,
}

/// Shared between the load threads and the async side that watches them.
#[derive(Debug, Default)]
pub struct Live {
    /// Locked only when a connection registers (before the users start) and when summing.
    slots: Mutex<Vec<Arc<Counters>>>,
    started: OnceLock<Instant>,
    /// Last stock read with GetStock; `i64::MIN` until the first read.
    stock: StockCell,
    /// Cancelled to make looping users stop after their current attempt.
    cancel: CancellationToken,
    /// No attempt starts at or after this instant (a distributed run's own end).
    cutoff: OnceLock<Instant>,
}

/// `AtomicI64` starting at `i64::MIN` ("not read yet").
#[derive(Debug)]
struct StockCell(AtomicI64);

impl Default for StockCell {
    fn default() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }
}

impl Live {
    /// Live state of a load that winds down when `cancel` is cancelled.
    pub fn new(cancel: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            cancel,
            ..Self::default()
        })
    }

    /// Counters for one more connection; the connection keeps the `Arc` and writes lock-free.
    pub fn register(&self) -> Arc<Counters> {
        let counters = Arc::new(Counters::default());
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counters.clone());
        counters
    }

    /// The sum over every registered connection.
    pub fn totals(&self) -> Totals {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.iter().fold(Totals::default(), |t, c| Totals {
            attempts: t.attempts + c.attempts.load(Ordering::Relaxed),
            purchased: t.purchased + c.purchased.load(Ordering::Relaxed),
            sold_out: t.sold_out + c.sold_out.load(Ordering::Relaxed),
            errors: t.errors + c.errors.load(Ordering::Relaxed),
        })
    }

    /// Notes when the users started (the first caller wins).
    pub fn mark_started(&self, at: Instant) {
        let _ = self.started.set(at);
    }

    /// When the users started, once they have.
    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }

    /// Whether the load was asked to wind down (looping users stop after their current attempt).
    pub fn stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sets the instant after which no attempt may start (the first caller wins).
    pub fn set_cutoff(&self, at: Instant) {
        let _ = self.cutoff.set(at);
    }

    /// Whether a user may start another attempt now: not stopped and before the cut-off.
    /// Checked before every attempt, so a process frozen mid-run (SIGSTOP) and resumed after
    /// the run's end sends nothing more.
    pub fn may_attempt(&self) -> bool {
        !self.stopped() && self.cutoff.get().is_none_or(|&at| Instant::now() < at)
    }

    pub fn set_stock(&self, stock: i64) {
        self.stock.0.store(stock, Ordering::Relaxed);
    }

    /// The last stock polled, if any.
    pub fn stock(&self) -> Option<i64> {
        Some(self.stock.0.load(Ordering::Relaxed)).filter(|&s| s != i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn sums_connections() {
        let live = Live::new(CancellationToken::new());
        let (a, b) = (live.register(), live.register());
        a.record(&Outcome::SoldOut { stock_after: 0 });
        b.record(&Outcome::Timeout);
        b.record(&Outcome::Status(Code::Unavailable));
        b.record(&Outcome::BadReply);
        let t = live.totals();
        assert_eq!(
            (t.attempts, t.sold_out, t.errors, t.purchased),
            (4, 1, 2, 0)
        );
        assert_eq!(live.stock(), None);
        live.set_stock(-3);
        assert_eq!(live.stock(), Some(-3));
        assert_eq!(live.started(), None);
        let now = Instant::now();
        live.mark_started(now);
        live.mark_started(now + std::time::Duration::from_secs(1));
        assert_eq!(live.started(), Some(now));
    }

    #[test]
    fn cutoff_and_cancel_forbid_attempts() {
        let cancel = CancellationToken::new();
        let live = Live::new(cancel.clone());
        assert!(live.may_attempt());
        live.set_cutoff(Instant::now() + std::time::Duration::from_secs(60));
        assert!(live.may_attempt());
        cancel.cancel();
        assert!(!live.may_attempt());
        let late = Live::new(CancellationToken::new());
        late.set_cutoff(Instant::now());
        assert!(!late.may_attempt());
    }
}
