//! The target's state after the load, read so that it can be trusted: once stock and counters
//! have been quiet for a window ([`crate::spec::quiet_window`]), the order book (read again while
//! it fails, until the settle time is over), and stock and counters once more a window later.
//! The same for a standalone run and a coordinator's.

use std::time::Duration;

use flashsale::pb;

use super::Control;
use super::book::BookState;
use crate::error::DriverError;

/// How often the stock is read while waiting for it to settle.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// What [`Control::final_state`] read.
#[derive(Debug)]
pub struct FinalState {
    /// The reading the audit uses.
    pub after: pb::StockReply,
    /// What was still moving when the settle time ran out, if it did.
    pub unsettled: Option<String>,
    /// What moved after the audit read it and the book, if anything did.
    pub moved: Option<String>,
    pub book: BookState,
}

fn same_state(a: &pb::StockReply, b: &pb::StockReply) -> bool {
    (a.stock, a.orders, a.units_sold, a.round) == (b.stock, b.orders, b.units_sold, b.round)
}

impl Control {
    /// The target's state once it settled after the load, waiting at most `settle`; the book
    /// read with the run's user `prefix` and bounded by the `acknowledged` purchases (a custom
    /// checkout's listing).
    pub async fn final_state(
        &mut self,
        settle: Duration,
        prefix: &str,
        acknowledged: u64,
    ) -> Result<FinalState, DriverError> {
        let settle = settle.min(crate::spec::MAX_SETTLE);
        let until = tokio::time::Instant::now() + settle;
        let (after, unsettled) = self.settle(settle).await?;
        let again = tokio::time::Instant::now() + crate::spec::quiet_window(settle);
        let book = self.book_until(&after, prefix, acknowledged, until).await?;
        let moved = self.recheck(&after, again).await?;
        Ok(FinalState {
            after,
            unsettled,
            moved,
            book,
        })
    }

    /// Polls GetStock until stock, counters and round have not changed for the quiet window
    /// ([`crate::spec::quiet_window`]`(within)`, polled every [`SETTLE_POLL`]) or `within`
    /// passes. Returns the last reading and, when it did not settle, what was still moving.
    async fn settle(
        &mut self,
        within: Duration,
    ) -> Result<(pb::StockReply, Option<String>), DriverError> {
        let within = within.min(crate::spec::MAX_SETTLE);
        let quiet = crate::spec::quiet_window(within);
        let start = tokio::time::Instant::now();
        let deadline = start + within;
        let first = self.stock().await?;
        let mut last = first;
        let mut since = start;
        loop {
            let now = tokio::time::Instant::now();
            if now.duration_since(since) >= quiet {
                return Ok((last, None));
            }
            if now + SETTLE_POLL > deadline {
                let what = format!(
                    "the server was still changing {:.1} s after the last reply (stock {} -> {}, orders {} -> {}, last change {:.1} s in); raise --settle",
                    within.as_secs_f64(),
                    first.stock,
                    last.stock,
                    first.orders,
                    last.orders,
                    since.duration_since(start).as_secs_f64()
                );
                return Ok((last, Some(what)));
            }
            tokio::time::sleep(SETTLE_POLL).await;
            let reading = self.stock().await?;
            if !same_state(&reading, &last) {
                since = tokio::time::Instant::now();
            }
            last = reading;
        }
    }

    /// Reads stock and counters once more, at `at` (or now, if that has passed), after the
    /// audit read `settled` and the book: what moved since, in words, or `None` when nothing
    /// did.
    async fn recheck(
        &mut self,
        settled: &pb::StockReply,
        at: tokio::time::Instant,
    ) -> Result<Option<String>, DriverError> {
        tokio::time::sleep_until(at).await;
        let now = self.stock().await?;
        if same_state(&now, settled) {
            return Ok(None);
        }
        let mut moved = Vec::new();
        for (what, was, is) in [
            ("round", settled.round as i64, now.round as i64),
            ("stock", settled.stock, now.stock),
            ("orders", settled.orders as i64, now.orders as i64),
            (
                "units sold",
                settled.units_sold as i64,
                now.units_sold as i64,
            ),
        ] {
            if was != is {
                moved.push(format!("{what} {was} -> {is}"));
            }
        }
        Ok(Some(format!(
            "after the server had been quiet and its order book was read, it changed again: {}",
            moved.join(", ")
        )))
    }

    /// Reads the book ([`Control::book`]); a book that exists but fails to read (the checkout
    /// is recovering from a fault) is read again until it reads or `until` passes.
    async fn book_until(
        &mut self,
        after: &pb::StockReply,
        prefix: &str,
        acknowledged: u64,
        until: tokio::time::Instant,
    ) -> Result<BookState, DriverError> {
        let mut wait = SETTLE_POLL;
        loop {
            let book = self.book(after, prefix, acknowledged).await?;
            if !book.failed() || tokio::time::Instant::now() + wait > until {
                return Ok(book);
            }
            tracing::info!(
                reason = book.reason().unwrap_or(""),
                "the order book could not be read; trying again"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }
}
