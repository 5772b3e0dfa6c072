//! Live progress on stderr (indicatif): elapsed, requests/s, purchased, sold out, errors,
//! the last second's p50/p99 latency and the last stock polled. The same line for every run: a standalone run reads the load's
//! relaxed per-connection counters ([`Live`]), a distributed client what the coordinator last
//! reported ([`Remote`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::engine::bins::LatencyBins;
use crate::engine::counts::Counts;
use crate::engine::live::{LatencyWindow, Live, Totals};

/// How often the line is redrawn.
const REFRESH: Duration = Duration::from_millis(100);
/// Window of the requests/s figure.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What the progress line shows, read at each redraw.
pub trait Source: Send + Sync + 'static {
    /// Counters so far.
    fn totals(&self) -> Totals;
    /// Time since the users started (zero before).
    fn elapsed(&self, now: Instant) -> Duration;
    /// The last stock polled, if any.
    fn stock(&self) -> Option<i64>;
    /// Every counter, when this source has them (a standalone run's); else only
    /// [`Source::totals`].
    fn counts(&self) -> Option<Counts> {
        None
    }
    /// Every latency recorded so far (cumulative), when this source has them.
    fn latency(&self) -> Option<LatencyBins> {
        None
    }
    /// One row per worker (a distributed run's), else empty.
    fn workers(&self) -> Vec<WorkerRow> {
        Vec::new()
    }
}

/// Where a worker of a distributed run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    Running,
    /// Gone silent, disconnected, or no result in time.
    Lost,
    /// Sent a report impossible for its share (dropped).
    Faulty,
    /// Reported its result.
    Done,
}

/// One worker's live row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerRow {
    pub name: String,
    pub attempts: u64,
    pub purchased: u64,
    pub sold_out: u64,
    pub errors: u64,
    pub state: WorkerState,
}

/// Receives the live [`Source`] of each run (or each run of a comparison) as it starts: how an
/// observer such as the web dashboard watches a run without a flag threaded through every
/// call. Set for the duration of a future with [`tapped`].
pub type Tap = Arc<dyn Fn(Arc<dyn Source>) + Send + Sync>;

tokio::task_local! {
    static TAP: Tap;
}

/// Runs `run` with `tap` receiving the live source of every run it starts.
pub async fn tapped<F: std::future::Future>(tap: Tap, run: F) -> F::Output {
    TAP.scope(tap, run).await
}

/// Hands `source` to the [`Tap`] of the current task, if any (once per run, never per request).
pub fn publish(source: Arc<dyn Source>) {
    let _ = TAP.try_with(|tap| tap(source));
}

impl Source for Live {
    fn totals(&self) -> Totals {
        Live::totals(self)
    }
    fn elapsed(&self, now: Instant) -> Duration {
        self.started()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }
    fn stock(&self) -> Option<i64> {
        Live::stock(self)
    }
    fn counts(&self) -> Option<Counts> {
        Some(Live::counts(self))
    }
    fn latency(&self) -> Option<LatencyBins> {
        Some(Live::latency(self))
    }
}

/// Progress reported from elsewhere (the coordinator's summed worker counters).
#[derive(Debug, Default)]
pub struct Remote(Mutex<RemoteState>);

/// One progress report of a coordinator.
#[derive(Debug, Default, Clone)]
pub struct RemoteState {
    pub totals: Totals,
    pub elapsed: Duration,
    pub stock: Option<i64>,
    /// The workers' latencies summed (cumulative), if reported.
    pub latency: Option<LatencyBins>,
    pub workers: Vec<WorkerRow>,
}

impl Remote {
    /// Records the latest report.
    pub fn update(&self, state: RemoteState) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }

    fn with<T>(&self, read: impl FnOnce(&RemoteState) -> T) -> T {
        read(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Source for Remote {
    fn totals(&self) -> Totals {
        self.with(|s| s.totals)
    }
    fn elapsed(&self, _now: Instant) -> Duration {
        self.with(|s| s.elapsed)
    }
    fn stock(&self) -> Option<i64> {
        self.with(|s| s.stock)
    }
    fn latency(&self) -> Option<LatencyBins> {
        self.with(|s| s.latency.clone())
    }
    fn workers(&self) -> Vec<WorkerRow> {
        self.with(|s| s.workers.clone())
    }
}

/// `p50 1.2ms p99 8.0ms`, or empty without latencies.
fn latency_text(window: &mut LatencyWindow, now: Instant, bins: Option<LatencyBins>) -> String {
    let Some(p) = bins.and_then(|b| window.push(now, b)) else {
        return String::new();
    };
    let ms = |us: u64| us as f64 / 1_000.0;
    format!("  p50 {:.1}ms p99 {:.1}ms", ms(p.p50_us), ms(p.p99_us))
}

/// Shows progress of `source` until `stopped` is cancelled, then clears the line.
pub async fn show<S: Source + ?Sized>(source: Arc<S>, label: String, stopped: CancellationToken) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label);
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut latency = LatencyWindow::default();
    let mut ticks = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            () = stopped.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let now = Instant::now();
        let totals = source.totals();
        samples.push_back((now, totals.attempts));
        while samples.len() > 2 && now - samples[1].0 >= RATE_WINDOW {
            samples.pop_front();
        }
        let rate = match (samples.front(), samples.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                n1.saturating_sub(n0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let elapsed = source.elapsed(now);
        let stock = source.stock().map_or("-".to_string(), |s| s.to_string());
        let latency = latency_text(&mut latency, now, source.latency());
        bar.set_message(format!(
            "{:>6.1}s  {rate:>8.0} req/s{latency}  purchased {}  sold out {}  errors {}  stock {stock}",
            elapsed.as_secs_f64(),
            totals.purchased,
            totals.sold_out,
            totals.errors,
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
