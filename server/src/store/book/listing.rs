//! A listing of a book snapshot in sequence order, built lazily: each shard is read a few rows
//! at a time under its own lock, and the shards' heads are merged by sequence number, so a
//! listing holds at most `SHARDS * REFILL` decoded rows however large the book is.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::shard::Row;
use super::{Book, lock};

/// Rows decoded from one shard at a time.
const REFILL: usize = 64;

/// One order as a listing yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOrder {
    pub seq: u64,
    pub user_id: String,
    pub quantity: u32,
    pub request_id: String,
}

#[derive(Debug)]
struct Cursor {
    next: usize,
    end: usize,
    rows: VecDeque<Row>,
}

/// Iterator over batches of a snapshot of a [`Book`], in sequence order. Always yields at
/// least one batch (an empty one for an empty book).
#[derive(Debug)]
pub struct Listing {
    book: Arc<Book>,
    cursors: Vec<Cursor>,
    heads: BinaryHeap<Reverse<(u32, usize)>>,
    batch: usize,
    started: bool,
}

impl Listing {
    /// Lists the first `ends[i]` entries of each shard of `book` in batches of at most `batch`.
    /// `ends` must come from [`Book::lens`] taken while nothing was being recorded.
    pub fn new(book: Arc<Book>, ends: Vec<usize>, batch: usize) -> Self {
        let mut listing = Self {
            book,
            cursors: ends
                .into_iter()
                .map(|end| Cursor {
                    next: 0,
                    end,
                    rows: VecDeque::new(),
                })
                .collect(),
            heads: BinaryHeap::new(),
            batch: batch.max(1),
            started: false,
        };
        for shard in 0..listing.cursors.len() {
            listing.refill(shard);
        }
        listing
    }

    /// Decodes the next rows of `shard` if its buffer is empty, and queues its new head.
    fn refill(&mut self, shard: usize) {
        let Some(cursor) = self.cursors.get_mut(shard) else {
            return;
        };
        if cursor.rows.is_empty() && cursor.next < cursor.end {
            let to = cursor.end.min(cursor.next.saturating_add(REFILL));
            if let Some(s) = self.book.shards.get(shard) {
                cursor.rows.extend(lock(s).rows(cursor.next, to));
            }
            cursor.next = to;
        }
        if let Some(head) = cursor.rows.front() {
            self.heads.push(Reverse((head.seq, shard)));
        }
    }
}

impl Iterator for Listing {
    type Item = Vec<ListedOrder>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.started && self.heads.is_empty() {
            return None;
        }
        self.started = true;
        let mut batch = Vec::with_capacity(self.batch.min(self.heads.len() * REFILL));
        while batch.len() < self.batch {
            let Some(Reverse((_, shard))) = self.heads.pop() else {
                break;
            };
            let Some(row) = self.cursors.get_mut(shard).and_then(|c| c.rows.pop_front()) else {
                continue;
            };
            self.refill(shard);
            batch.push(ListedOrder {
                seq: u64::from(row.seq),
                user_id: row.user.to_string(),
                quantity: row.quantity,
                request_id: row.request_id,
            });
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_shards_in_sequence_order_in_bounded_batches() {
        let book = Arc::new(Book::new(10_000));
        for i in 0..2500u32 {
            book.record(&format!("u{}", i % 97), i % 3 + 1, &format!("q{i}"), false);
        }
        let ends = book.lens();
        // Recorded after the snapshot: not listed.
        book.record("late", 1, "", false);
        let batches: Vec<_> = Listing::new(book, ends, 1024).collect();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        let all: Vec<_> = batches.into_iter().flatten().collect();
        for (i, order) in all.iter().enumerate() {
            let n = i as u32;
            assert_eq!(order.seq, u64::from(n) + 1);
            assert_eq!(order.user_id, format!("u{}", n % 97));
            assert_eq!(order.quantity, n % 3 + 1);
            assert_eq!(order.request_id, format!("q{n}"));
        }
    }

    #[test]
    fn an_empty_book_lists_one_empty_batch() {
        let book = Arc::new(Book::new(10));
        let ends = book.lens();
        let batches: Vec<_> = Listing::new(book, ends, 1024).collect();
        assert_eq!(batches, [Vec::<ListedOrder>::new()]);
    }
}
