//! Live progress on stderr (indicatif): elapsed, requests/s, purchased, sold out, errors and
//! the last stock polled. It only reads the load's relaxed per-connection counters.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::engine::live::Live;

/// How often the line is redrawn.
const REFRESH: Duration = Duration::from_millis(100);
/// Window of the requests/s figure.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Shows progress for `live` until `stopped` is cancelled, then clears the line.
pub async fn show(live: Arc<Live>, label: String, stopped: CancellationToken) {
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
        let totals = live.totals();
        samples.push_back((now, totals.attempts));
        while samples.len() > 2 && now - samples[1].0 >= RATE_WINDOW {
            samples.pop_front();
        }
        let rate = match (samples.front(), samples.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let elapsed = live
            .started()
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        let stock = live.stock().map_or("-".to_string(), |s| s.to_string());
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
