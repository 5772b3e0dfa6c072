//! Live progress on stderr (indicatif): elapsed, requests/s, purchased, sold out, errors and
//! the last stock polled. The same line for every run: a standalone run reads the load's
//! relaxed per-connection counters ([`Live`]), a distributed client what the coordinator last
//! reported ([`Remote`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::engine::counts::Counts;
use crate::engine::live::{Live, Totals};

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
}

/// Progress reported from elsewhere (the coordinator's summed worker counters).
#[derive(Debug, Default)]
pub struct Remote(Mutex<RemoteState>);

#[derive(Debug, Default, Clone, Copy)]
struct RemoteState {
    totals: Totals,
    elapsed: Duration,
    stock: Option<i64>,
}

impl Remote {
    /// Records the latest report.
    pub fn update(&self, totals: Totals, elapsed: Duration, stock: Option<i64>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = RemoteState {
            totals,
            elapsed,
            stock,
        };
    }

    fn get(&self) -> RemoteState {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Source for Remote {
    fn totals(&self) -> Totals {
        self.get().totals
    }
    fn elapsed(&self, _now: Instant) -> Duration {
        self.get().elapsed
    }
    fn stock(&self) -> Option<i64> {
        self.get().stock
    }
}

/// Shows progress of `source` until `stopped` is cancelled, then clears the line.
pub async fn show<S: Source + ?Sized>(source: Arc<S>, label: String, stopped: CancellationToken) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label);
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
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
        bar.set_message(format!(
            "{:>6.1}s  {rate:>8.0} req/s  purchased {}  sold out {}  errors {}  stock {stock}",
            elapsed.as_secs_f64(),
            totals.purchased,
            totals.sold_out,
            totals.errors,
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
