//! The server's own books: every order placed in the current round, sharded so that recording
//! an order never serialises the purchase path behind one lock. Entries are 16 bytes with the
//! user ids interned per shard, so a long sustained run by a fixed set of users costs little.

use std::collections::HashMap;
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

/// One shard: compact entries plus the user ids they point at.
#[derive(Debug, Default)]
struct Shard {
    entries: Vec<Compact>,
    users: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
}

#[derive(Debug, Clone, Copy)]
struct Compact {
    seq: u64,
    user: u32,
    quantity: u32,
}

impl Shard {
    fn push(&mut self, seq: u64, user: &str, quantity: u32) {
        let user = match self.index.get(user) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.users.len()).expect("fewer than 2^32 users per shard");
                self.users.push(user.into());
                self.index.insert(user.into(), i);
                i
            }
        };
        self.entries.push(Compact {
            seq,
            user,
            quantity,
        });
    }

    fn clear(&mut self) {
        *self = Shard::default();
    }

    fn expand(&self) -> impl Iterator<Item = LedgerEntry> + '_ {
        self.entries.iter().map(|e| LedgerEntry {
            seq: e.seq,
            user: self.users[e.user as usize].clone(),
            quantity: e.quantity,
        })
    }
}

/// Append-only order log with exact running totals.
#[derive(Debug)]
pub struct Ledger {
    next_seq: AtomicU64,
    orders: AtomicU64,
    units: AtomicU64,
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            next_seq: AtomicU64::new(0),
            orders: AtomicU64::new(0),
            units: AtomicU64::new(0),
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl Ledger {
    /// Records an order and returns its sequence number (unique within the round, from 1).
    pub fn record(&self, user: &str, quantity: u32) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.shard(seq).push(seq, user, quantity);
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
        let mut all: Vec<LedgerEntry> = self
            .shards
            .iter()
            .flat_map(|s| lock(s).expand().collect::<Vec<_>>())
            .collect();
        all.sort_unstable_by_key(|e| e.seq);
        all
    }

    fn shard(&self, seq: u64) -> std::sync::MutexGuard<'_, Shard> {
        lock(&self.shards[(seq as usize) % SHARDS])
    }
}

/// A poisoned shard only means another recorder panicked mid-push; the shard is still valid.
fn lock(m: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
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
        // Repeated users are interned, and each entry still names its own.
        assert!(entries.iter().all(|e| e.user.starts_with('u')));
        let shard = lock(&ledger.shards[0]);
        assert!(
            shard.users.len() <= 8,
            "{} user ids kept",
            shard.users.len()
        );
    }
}
