//! The server's own books: every order placed in the current round, sharded so that recording
//! an order never serialises the purchase path behind one lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 32;

/// One placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: u64,
    pub user: Box<str>,
    pub quantity: u32,
}

/// Append-only order log with exact running totals.
#[derive(Debug)]
pub struct Ledger {
    next_seq: AtomicU64,
    orders: AtomicU64,
    units: AtomicU64,
    shards: [Mutex<Vec<LedgerEntry>>; SHARDS],
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            next_seq: AtomicU64::new(0),
            orders: AtomicU64::new(0),
            units: AtomicU64::new(0),
            shards: std::array::from_fn(|_| Mutex::new(Vec::new())),
        }
    }
}

impl Ledger {
    /// Records an order and returns its sequence number (unique within the round, from 1).
    pub fn record(&self, user: &str, quantity: u32) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = LedgerEntry {
            seq,
            user: user.into(),
            quantity,
        };
        self.shard(seq).push(entry);
        self.units.fetch_add(u64::from(quantity), Ordering::Relaxed);
        self.orders.fetch_add(1, Ordering::Release);
        seq
    }

    /// Orders recorded so far.
    pub fn orders(&self) -> u64 {
        self.orders.load(Ordering::Acquire)
    }

    /// Units sold so far.
    pub fn units(&self) -> u64 {
        self.units.load(Ordering::Acquire)
    }

    /// Empties the ledger. Sequence numbers start again from 1.
    pub fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
        self.next_seq.store(0, Ordering::Relaxed);
        self.orders.store(0, Ordering::Relaxed);
        self.units.store(0, Ordering::Relaxed);
    }

    /// Every entry, in sequence order.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        let mut all: Vec<LedgerEntry> = self.shards.iter().flat_map(|s| lock(s).clone()).collect();
        all.sort_unstable_by_key(|e| e.seq);
        all
    }

    fn shard(&self, seq: u64) -> std::sync::MutexGuard<'_, Vec<LedgerEntry>> {
        lock(&self.shards[(seq as usize) % SHARDS])
    }
}

/// A poisoned shard only means another recorder panicked mid-push; the Vec is still valid.
fn lock(m: &Mutex<Vec<LedgerEntry>>) -> std::sync::MutexGuard<'_, Vec<LedgerEntry>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_totals_and_clears() {
        let ledger = Ledger::default();
        assert_eq!(ledger.record("a", 2), 1);
        assert_eq!(ledger.record("b", 3), 2);
        assert_eq!((ledger.orders(), ledger.units()), (2, 5));
        let entries = ledger.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(&*entries[1].user, "b");
        ledger.clear();
        assert_eq!((ledger.orders(), ledger.units()), (0, 0));
        assert!(ledger.entries().is_empty());
        assert_eq!(ledger.record("c", 1), 1);
    }

    #[test]
    fn concurrent_records_are_all_kept() {
        let ledger = std::sync::Arc::new(Ledger::default());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        ledger.record(&format!("u{t}"), 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let entries = ledger.entries();
        assert_eq!(entries.len(), 8000);
        assert_eq!(ledger.units(), 8000);
        assert!(entries.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }
}
