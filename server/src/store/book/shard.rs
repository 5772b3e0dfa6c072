//! One shard of the order book, in a compact encoding: 16-byte entries, user ids interned once
//! per shard, request ids in one byte arena per shard (a length byte, then the bytes), and the
//! per-user totals the per-customer limit needs. Orders are sharded by user, so a user's
//! entries, interned id and total live behind the same lock.
//!
//! Request ids are indexed (`requests`: a table of entry indexes, hashed and compared through
//! the arena, so an id is stored once): a retried request id finds its order. The index costs
//! 5 bytes per bucket (a 4-byte entry index and a control byte) at a load factor between 7/16
//! and 7/8: 6 to 12 bytes per order with a request id.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

use super::chunks::{Arena, Chunks};

/// Entries per chunk: 64 KiB.
const ENTRY_CHUNK: usize = 4096;

/// Longest request id the arena encodes (its length is one byte).
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// No request id: the arena holds nothing for this entry.
const NO_REQUEST_ID: u32 = u32::MAX;

/// One kept order: 16 bytes. `seq` fits 32 bits because only orders with `seq <= book cap`
/// are kept and the cap is at most `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub seq: u32,
    /// Index into the shard's interned users.
    pub user: u32,
    pub quantity: u32,
    /// Offset of the request id's length byte in the arena, or [`NO_REQUEST_ID`].
    pub request: u32,
}

/// An entry decoded for listing: the user is shared with the shard, nothing is copied but the
/// request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    pub seq: u32,
    pub user: Arc<str>,
    pub quantity: u32,
    pub request_id: String,
}

/// Entries, interned users, their unit totals and the request-id arena of one shard.
#[derive(Debug, Default)]
pub(super) struct Shard {
    entries: Chunks<Entry, ENTRY_CHUNK>,
    users: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    /// Units bought this round, per interned user (kept only while a limit applies).
    units: Vec<u64>,
    arena: Arena,
    /// The entry index of every kept order with a request id, by the id's hash.
    requests: HashTable<u32>,
    hasher: RandomState,
}

impl Shard {
    /// Units `user` has bought (or reserved) this round.
    pub fn units(&self, user: &str) -> u64 {
        self.index
            .get(user)
            .and_then(|&i| self.units.get(i as usize))
            .copied()
            .unwrap_or(0)
    }

    /// Adds `quantity` to `user`'s total. False only if the shard cannot intern another user.
    pub fn add_units(&mut self, user: &str, quantity: u32) -> bool {
        let Some(i) = self.intern(user) else {
            return false;
        };
        if let Some(units) = self.units.get_mut(i as usize) {
            *units = units.saturating_add(u64::from(quantity));
        }
        true
    }

    /// Takes `quantity` back off `user`'s total (a reservation that did not turn into an order).
    pub fn remove_units(&mut self, user: &str, quantity: u32) {
        if let Some(units) = self
            .index
            .get(user)
            .and_then(|&i| self.units.get_mut(i as usize))
        {
            *units = units.saturating_sub(u64::from(quantity));
        }
    }

    /// Keeps an order. False (and nothing kept) when `seq` or the arena would not fit the
    /// encoding, or `request_id` is longer than [`MAX_REQUEST_ID_BYTES`].
    pub fn push(&mut self, seq: u64, user: &str, quantity: u32, request_id: &str) -> bool {
        let Ok(seq) = u32::try_from(seq) else {
            return false;
        };
        if request_id.len() > MAX_REQUEST_ID_BYTES {
            return false;
        }
        let Some(user) = self.intern(user) else {
            return false;
        };
        let request = if request_id.is_empty() {
            NO_REQUEST_ID
        } else {
            match self.arena.push(request_id.as_bytes()) {
                Some(offset) => offset,
                None => return false,
            }
        };
        let index = u32::try_from(self.entries.len()).ok();
        self.entries.push(Entry {
            seq,
            user,
            quantity,
            request,
        });
        if let (Some(index), false) = (index, request == NO_REQUEST_ID) {
            let hash = self.hasher.hash_one(request_id.as_bytes());
            let (entries, arena, hasher) = (&self.entries, &self.arena, &self.hasher);
            self.requests.insert_unique(hash, index, |&i| {
                hasher.hash_one(stored_id(entries, arena, i).unwrap_or_default())
            });
        }
        true
    }

    /// The sequence number of the kept order that carried `request_id` (none for an empty id).
    pub fn placed(&self, request_id: &str) -> Option<u32> {
        if request_id.is_empty() {
            return None;
        }
        let hash = self.hasher.hash_one(request_id.as_bytes());
        let index = *self.requests.find(hash, |&i| {
            stored_id(&self.entries, &self.arena, i) == Some(request_id.as_bytes())
        })?;
        self.entries.get(index as usize).map(|e| e.seq)
    }

    /// Entries kept so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Decodes entries `from..to` (clamped to what the shard holds).
    pub fn rows(&self, from: usize, to: usize) -> Vec<Row> {
        (from..to.min(self.entries.len()))
            .filter_map(|i| self.entries.get(i))
            .map(|e| Row {
                seq: e.seq,
                user: self
                    .users
                    .get(e.user as usize)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("")),
                quantity: e.quantity,
                request_id: self.request_id(e.request),
            })
            .collect()
    }

    fn request_id(&self, offset: u32) -> String {
        if offset == NO_REQUEST_ID {
            return String::new();
        }
        // The bytes were copied from a `&str`, so this never replaces anything.
        self.arena
            .get(offset)
            .map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
    }

    fn intern(&mut self, user: &str) -> Option<u32> {
        if let Some(&i) = self.index.get(user) {
            return Some(i);
        }
        let i = u32::try_from(self.users.len()).ok()?;
        let user: Arc<str> = Arc::from(user);
        self.users.push(user.clone());
        self.index.insert(user, i);
        self.units.push(0);
        Some(i)
    }
}

/// The request id of entry `index`, if it has one.
fn stored_id<'a>(
    entries: &Chunks<Entry, ENTRY_CHUNK>,
    arena: &'a Arena,
    index: u32,
) -> Option<&'a [u8]> {
    let entry = entries.get(index as usize)?;
    if entry.request == NO_REQUEST_ID {
        return None;
    }
    arena.get(entry.request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_16_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn round_trips_users_quantities_and_request_ids() {
        let mut shard = Shard::default();
        let long = "r".repeat(MAX_REQUEST_ID_BYTES);
        assert!(shard.push(1, "alice", 2, "req-1"));
        assert!(shard.push(5, "bob", 1, ""));
        assert!(shard.push(9, "alice", 3, &long));
        assert!(shard.push(12, "bob", 1, "é✓"));
        let rows = shard.rows(0, 10);
        let view: Vec<_> = rows
            .iter()
            .map(|r| (r.seq, &*r.user, r.quantity, r.request_id.as_str()))
            .collect();
        assert_eq!(
            view,
            [
                (1, "alice", 2, "req-1"),
                (5, "bob", 1, ""),
                (9, "alice", 3, long.as_str()),
                (12, "bob", 1, "é✓"),
            ]
        );
        // Two users interned once each; the arena holds a length byte plus the bytes, and
        // nothing at all for an empty request id.
        assert_eq!(shard.users.len(), 2);
        assert_eq!(shard.arena.used(), (1 + 5) + (1 + 128) + (1 + "é✓".len()));
        assert_eq!(shard.rows(1, 3).len(), 2);
        assert!(shard.rows(7, 3).is_empty());
    }

    #[test]
    fn refuses_what_the_encoding_cannot_hold() {
        let mut shard = Shard::default();
        assert!(!shard.push(u64::from(u32::MAX) + 1, "u", 1, ""));
        assert!(!shard.push(1, "u", 1, &"x".repeat(MAX_REQUEST_ID_BYTES + 1)));
        assert!(!shard.push(1, "u", 1, &"x".repeat(300)));
        assert_eq!((shard.len(), shard.arena.used()), (0, 0));
    }

    #[test]
    fn finds_the_order_of_a_request_id() {
        let mut shard = Shard::default();
        for i in 0..10_000u64 {
            assert!(shard.push(i + 1, "u", 1, &format!("req-{i}")));
        }
        assert!(shard.push(10_001, "u", 1, ""));
        assert_eq!(shard.placed("req-0"), Some(1));
        assert_eq!(shard.placed("req-9999"), Some(10_000));
        assert_eq!(shard.placed("req-10000"), None);
        assert_eq!(shard.placed(""), None);
    }

    #[test]
    fn unit_totals_add_and_release() {
        let mut shard = Shard::default();
        assert_eq!(shard.units("u"), 0);
        assert!(shard.add_units("u", 3));
        assert!(shard.add_units("u", 2));
        assert_eq!(shard.units("u"), 5);
        shard.remove_units("u", 2);
        shard.remove_units("nobody", 2);
        assert_eq!(shard.units("u"), 3);
        shard.remove_units("u", 10);
        assert_eq!(shard.units("u"), 0);
    }
}
