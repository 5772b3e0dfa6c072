//! Live counters of a running load, for the progress display: one [`AtomicCounts`] per
//! connection (written only by that connection's task, so never contended on the request
//! path), summed into [`Counts`] by whoever watches. Also the users' start instant and the last
//! stock polled.
//!
//! Latencies the same way: each connection's [`AtomicLatency`] is a fixed array of relaxed
//! atomics, one per [`bins`](crate::engine::bins) bin up to [`LIVE_MAX_US`] (a single relaxed
//! load and store per request, no lock, no allocation); the watcher sums them into cumulative
//! [`LatencyBins`] and a [`LatencyWindow`] subtracts the snapshot of about a second earlier to
//! get the percentiles of the last second.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::bins::{self, LatencyBins};
use crate::engine::counts::{AtomicCounts, Counts};
use crate::outcome::Outcome;

/// Latencies at or above this (100 s) count in the last live bin.
pub const LIVE_MAX_US: u64 = 99_999_999;
/// Number of live latency bins: every bin of [`bins`](crate::engine::bins) up to
/// [`LIVE_MAX_US`] (640), the bound of what a peer may send of them.
pub const LIVE_BINS: usize = bins::index(LIVE_MAX_US) as usize + 1;
/// The span of the live percentiles.
pub const LATENCY_WINDOW: Duration = Duration::from_secs(1);

/// One connection's latency counts, one relaxed atomic per bin: written only by that
/// connection's task (its only writer), read by a watcher.
#[derive(Debug)]
pub struct AtomicLatency([AtomicU64; LIVE_BINS]);

impl Default for AtomicLatency {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl AtomicLatency {
    /// Counts one latency: a relaxed load and store of one bin (one writer, so no
    /// read-modify-write), no lock, no allocation.
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bin = &self.0[usize::from(bins::index(us.min(LIVE_MAX_US)))];
        bin.store(
            bin.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// Adds this connection's counts into `sum` (saturating: display figures).
    fn add_into(&self, sum: &mut [u64; LIVE_BINS]) {
        for (total, bin) in sum.iter_mut().zip(&self.0) {
            *total = total.saturating_add(bin.load(Ordering::Relaxed));
        }
    }
}

/// What one connection writes while it runs: its outcome counters and its latencies, on
/// cache lines of their own.
#[derive(Debug, Default)]
pub struct ConnectionLive {
    pub counts: AtomicCounts,
    pub latency: AtomicLatency,
}

impl ConnectionLive {
    /// Counts one finished request (its connection's task is the only caller).
    pub fn record(&self, outcome: &Outcome, quantity: u32, latency: Duration) {
        self.counts.record(outcome, quantity);
        self.latency.record(latency);
    }
}

/// Dense counts (one per live bin) as sparse [`LatencyBins`].
fn sparse(dense: &[u64; LIVE_BINS]) -> LatencyBins {
    LatencyBins {
        bins: (0u16..)
            .zip(dense)
            .filter(|&(_, &n)| n > 0)
            .map(|(idx, &n)| (idx, n))
            .collect(),
    }
}

/// `newer - older`, bin by bin (saturating: a bin that went backwards counts zero).
pub fn bins_since(newer: &LatencyBins, older: &LatencyBins) -> LatencyBins {
    let mut old = older.bins.iter().peekable();
    let mut bins = Vec::new();
    for &(idx, n) in &newer.bins {
        while old.next_if(|&&(i, _)| i < idx).is_some() {}
        let before = old.next_if(|&&(i, _)| i == idx).map_or(0, |&(_, m)| m);
        let diff = n.saturating_sub(before);
        if diff > 0 {
            bins.push((idx, diff));
        }
    }
    LatencyBins { bins }
}

/// Live bins as a peer sent them, as two columns (bin index, count): `None` unless the
/// columns have equal length, at most [`LIVE_BINS`] entries, every index a live bin, and
/// repeated bins add up in 64 bits.
pub fn live_bins_from_columns(idx: &[u32], counts: &[u64]) -> Option<LatencyBins> {
    if idx.len() != counts.len() || idx.len() > LIVE_BINS {
        return None;
    }
    let pairs = idx
        .iter()
        .zip(counts)
        .map(|(&i, &n)| {
            u16::try_from(i)
                .ok()
                .filter(|&i| usize::from(i) < LIVE_BINS)
                .map(|i| (i, n))
        })
        .collect::<Option<Vec<_>>>()?;
    LatencyBins::from_pairs(pairs)
}

/// `bins` as the two columns [`live_bins_from_columns`] reads.
pub fn live_bins_to_columns(bins: &LatencyBins) -> (Vec<u32>, Vec<u64>) {
    bins.bins.iter().map(|&(i, n)| (u32::from(i), n)).unzip()
}

/// Latency percentiles of one window, in microseconds (bin middles: within 5%).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    /// Requests finished within the window.
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
}

impl Percentiles {
    /// The percentiles of `bins`; `None` when empty.
    pub fn of(bins: &LatencyBins) -> Option<Self> {
        Some(Self {
            count: bins.count(),
            p50_us: bins.quantile(0.50)?,
            p90_us: bins.quantile(0.90)?,
            p99_us: bins.quantile(0.99)?,
        })
    }
}

/// Percentiles over the last [`LATENCY_WINDOW`] from successive cumulative snapshots: keeps
/// the snapshots of about a second and subtracts the oldest from the newest.
#[derive(Debug, Default)]
pub struct LatencyWindow {
    snapshots: VecDeque<(Instant, LatencyBins)>,
}

impl LatencyWindow {
    /// Takes the cumulative bins read at `now`; returns the percentiles of the requests that
    /// finished since the oldest snapshot kept (about [`LATENCY_WINDOW`] ago), or of all of
    /// them at the first snapshot. `None` when none finished in the window.
    pub fn push(&mut self, now: Instant, cumulative: LatencyBins) -> Option<Percentiles> {
        self.snapshots.push_back((now, cumulative));
        while self.snapshots.len() > 2
            && now.saturating_duration_since(self.snapshots[1].0) >= LATENCY_WINDOW
        {
            self.snapshots.pop_front();
        }
        let newest = &self.snapshots.back()?.1;
        match self.snapshots.front() {
            Some((_, oldest)) if self.snapshots.len() > 1 => {
                Percentiles::of(&bins_since(newest, oldest))
            }
            _ => Percentiles::of(newest),
        }
    }
}

/// The progress line's four figures, a view of [`Counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub attempts: u64,
    pub purchased: u64,
    /// Turned away: sold out or limit reached.
    pub sold_out: u64,
    /// Non-OK statuses plus timeouts.
    pub errors: u64,
}

impl From<&Counts> for Totals {
    fn from(c: &Counts) -> Self {
        Self {
            attempts: c.attempts,
            purchased: c.purchased,
            sold_out: c.refused(),
            errors: c.errors(),
        }
    }
}

/// Shared between the load threads and the async side that watches them.
#[derive(Debug, Default)]
pub struct Live {
    /// Locked only when a connection registers (before the users start) and when summing.
    slots: Mutex<Vec<Arc<ConnectionLive>>>,
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
    pub fn register(&self) -> Arc<ConnectionLive> {
        let counters = Arc::new(ConnectionLive::default());
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(counters.clone());
        counters
    }

    /// The sum over every registered connection (saturating: a display figure; the run's
    /// result is the merged [`Stats`](crate::engine::stats::Stats)).
    pub fn counts(&self) -> Counts {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.iter().fold(Counts::default(), |sum, c| {
            sum.saturating_sum(&c.counts.snapshot())
        })
    }

    /// Every latency recorded so far, summed over the connections (cumulative: a
    /// [`LatencyWindow`] makes the last second's of it).
    pub fn latency(&self) -> LatencyBins {
        let mut sum = [0u64; LIVE_BINS];
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.iter() {
            slot.latency.add_into(&mut sum);
        }
        drop(slots);
        sparse(&sum)
    }

    /// The progress line's figures of [`Live::counts`].
    pub fn totals(&self) -> Totals {
        Totals::from(&self.counts())
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

    /// Resolves once the load is asked to wind down (for waits between attempts).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
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
    use crate::outcome::Outcome;
    use tonic::Code;

    #[test]
    fn sums_connections() {
        let live = Live::new(CancellationToken::new());
        let (a, b) = (live.register(), live.register());
        let ms = Duration::from_millis;
        a.record(
            &Outcome::SoldOut {
                stock_after: Some(0),
            },
            1,
            ms(1),
        );
        b.record(&Outcome::Timeout, 2, ms(20));
        b.record(&Outcome::Status(Code::Unavailable), 1, ms(1));
        b.record(&Outcome::BadReply, 1, ms(3));
        let t = live.totals();
        assert_eq!(
            (t.attempts, t.sold_out, t.errors, t.purchased),
            (4, 1, 2, 0)
        );
        let c = live.counts();
        assert_eq!((c.units_requested, c.indeterminate_units), (5, 2));
        // Both connections' latencies, summed: 1 ms twice, 3 ms, 20 ms.
        let lat = live.latency();
        assert_eq!(lat.count(), 4);
        assert_eq!(lat.quantile(0.5), Some(1_050));
        assert_eq!(lat.quantile(1.0), Some(20_500));
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
    fn atomic_bins_count_what_the_histogram_counts() {
        let atomic = AtomicLatency::default();
        let mut plain = LatencyBins::default();
        for us in [0, 7, 99, 100, 1_234, 12_345, 250_000, 99_999_999] {
            atomic.record(Duration::from_micros(us));
            plain.record(us);
        }
        // Beyond the live range: counted in the last bin, never out of bounds.
        atomic.record(Duration::from_secs(3_600));
        atomic.record(Duration::MAX);
        plain.record(LIVE_MAX_US);
        plain.record(LIVE_MAX_US);
        let mut sum = [0u64; LIVE_BINS];
        atomic.add_into(&mut sum);
        assert_eq!(sparse(&sum), plain);
        assert_eq!(LIVE_BINS, 640);
        // A second watcher's sum adds the same counts again (reads never reset).
        atomic.add_into(&mut sum);
        assert_eq!(sparse(&sum).count(), 2 * plain.count());
    }

    #[test]
    fn the_single_writer_is_never_lost_while_a_watcher_reads() {
        let live = Live::new(CancellationToken::new());
        let conns: Vec<_> = (0..4).map(|_| live.register()).collect();
        let watcher_live = live.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watching = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) || reads == 0 {
                    let n = watcher_live.latency().count();
                    assert!(n >= last, "a watcher's snapshot never goes backwards");
                    last = n;
                    reads += 1;
                }
            })
        };
        let writers: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                std::thread::spawn(move || {
                    for n in 0..20_000u64 {
                        let us = (n * 37 + i as u64 * 1_000) % 50_000;
                        conn.latency.record(Duration::from_micros(us));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        watching.join().unwrap();
        assert_eq!(live.latency().count(), 80_000);
    }

    #[test]
    fn the_window_subtracts_the_snapshot_of_a_second_ago() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut cumulative = LatencyBins::default();
        let mut window = LatencyWindow::default();
        assert_eq!(window.push(at(0), cumulative.clone()), None);
        // The first second: 100 requests at 1 ms.
        for _ in 0..100 {
            cumulative.record(1_000);
        }
        let p = window.push(at(250), cumulative.clone()).unwrap();
        assert_eq!((p.count, p.p50_us, p.p99_us), (100, 1_050, 1_050));
        for ms in [500, 750, 1_000] {
            window.push(at(ms), cumulative.clone());
        }
        // Then 100 requests at 50 ms: the 1 ms ones leave the window once a second passed.
        for _ in 0..100 {
            cumulative.record(50_000);
        }
        let p = window.push(at(1_250), cumulative.clone()).unwrap();
        assert_eq!((p.count, p.p50_us, p.p99_us), (100, 50_500, 50_500));
        assert_eq!(
            window.snapshots.len(),
            5,
            "about a second of snapshots kept"
        );
        // Nothing new for a second: no percentiles (not the stale ones).
        for ms in [1_500, 1_750, 2_000, 2_250] {
            window.push(at(ms), cumulative.clone());
        }
        assert_eq!(window.push(at(2_500), cumulative.clone()), None);
        // Bins that went backwards (a peer's) count zero, not a wrapped huge number.
        let p = window.push(at(2_750), LatencyBins::default());
        assert_eq!(p, None);
        assert_eq!(
            bins_since(
                &LatencyBins {
                    bins: vec![(1, 5), (3, 2), (9, 4)]
                },
                &LatencyBins {
                    bins: vec![(0, 7), (3, 5), (9, 1)]
                }
            ),
            LatencyBins {
                bins: vec![(1, 5), (9, 3)]
            }
        );
    }

    #[test]
    fn bins_from_a_peer_are_bounded() {
        let mut bins = LatencyBins::default();
        for us in [5, 1_234, 88_000] {
            bins.record(us);
        }
        let (idx, counts) = live_bins_to_columns(&bins);
        assert_eq!(live_bins_from_columns(&idx, &counts), Some(bins));
        assert_eq!(
            live_bins_from_columns(&[1, 2], &[1]),
            None,
            "ragged columns"
        );
        assert_eq!(
            live_bins_from_columns(&[LIVE_BINS as u32], &[1]),
            None,
            "beyond the live bins"
        );
        assert_eq!(live_bins_from_columns(&[70_000], &[1]), None);
        assert_eq!(
            live_bins_from_columns(&[3, 3], &[u64::MAX, 1]),
            None,
            "a sum that wraps"
        );
        let too_many = vec![0u32; LIVE_BINS + 1];
        assert_eq!(
            live_bins_from_columns(&too_many, &vec![1; LIVE_BINS + 1]),
            None
        );
        let all: Vec<u32> = (0..LIVE_BINS as u32).collect();
        assert_eq!(
            live_bins_from_columns(&all, &vec![1; LIVE_BINS]).map(|b| b.count()),
            Some(LIVE_BINS as u64)
        );
    }

    /// The per-request cost of the live latency record, in release mode:
    /// `cargo test --release -p flashsale-driver --lib live_record_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement: run in release mode with --nocapture"]
    fn measure_live_record_cost() {
        let conn = ConnectionLive::default();
        let outcome = Outcome::SoldOut {
            stock_after: Some(0),
        };
        let latencies: Vec<Duration> = (0..1024u64)
            .map(|i| Duration::from_micros(200 + (i * 7919) % 40_000))
            .collect();
        let rounds = 20_000_000usize;
        let time = |f: &dyn Fn(Duration)| {
            let start = Instant::now();
            for i in 0..rounds {
                f(std::hint::black_box(latencies[i & 1023]));
            }
            start.elapsed().as_nanos() as f64 / rounds as f64
        };
        let latency_only = time(&|d| conn.latency.record(d));
        let counts_only = time(&|_| conn.counts.record(&outcome, 1));
        let both = time(&|d| conn.record(&outcome, 1, d));
        println!(
            "live record: latency bin {latency_only:.2} ns, counters {counts_only:.2} ns, \
             both {both:.2} ns per request"
        );
        assert_eq!(conn.latency_count(), 2 * rounds as u64);
    }

    impl ConnectionLive {
        fn latency_count(&self) -> u64 {
            let mut sum = [0u64; LIVE_BINS];
            self.latency.add_into(&mut sum);
            sum.iter().sum()
        }
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
