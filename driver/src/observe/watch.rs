//! Watches a run from the async side while the blocking load runs: polls `GetStock` on the
//! control connection a few times a second (recording the stock over time) and, when asked,
//! drives the progress display.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::checkout::Control;
use crate::engine::live::Live;
use crate::observe::progress;
use crate::report::timeline::StockPoint;

/// Stock poll interval of a sustained run.
pub const SUSTAINED_POLL: Duration = Duration::from_millis(200);
/// Stock poll interval of a burst, which is over in tens of milliseconds.
pub const BURST_POLL: Duration = Duration::from_millis(5);

/// The poll interval for a run of `duration` (`None`: a burst).
pub fn poll_interval(duration: Option<Duration>) -> Duration {
    match duration {
        None => BURST_POLL,
        Some(_) => SUSTAINED_POLL,
    }
}

/// A running watcher; [`Watcher::finish`] stops it and hands back the stock polls.
pub struct Watcher {
    stop: CancellationToken,
    poller: JoinHandle<Vec<(Instant, i64)>>,
    progress: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts polling through `control` every `every`; with `progress`, shows live progress
    /// labelled `label` on stderr.
    pub fn start(
        control: Control,
        live: Arc<Live>,
        every: Duration,
        progress: Option<String>,
    ) -> Self {
        let stop = CancellationToken::new();
        let progress =
            progress.map(|label| tokio::spawn(progress::show(live.clone(), label, stop.clone())));
        let poller = tokio::spawn(poll_stock(control, live, every, stop.clone()));
        Self {
            stop,
            poller,
            progress,
        }
    }

    /// Stops watching; returns the stock polls, each at the moment it was sent, in seconds
    /// after the users' start (polls before it are dropped).
    pub async fn finish(self, live: &Live) -> Vec<StockPoint> {
        self.stop.cancel();
        if let Some(progress) = self.progress {
            let _ = progress.await;
        }
        let polls = self.poller.await.unwrap_or_default();
        let Some(start) = live.started() else {
            return Vec::new();
        };
        polls
            .into_iter()
            .filter(|(at, _)| *at >= start)
            .map(|(at, stock)| StockPoint {
                t_s: (at - start).as_secs_f64(),
                stock,
            })
            .collect()
    }
}

async fn poll_stock(
    mut control: Control,
    live: Arc<Live>,
    every: Duration,
    stopped: CancellationToken,
) -> Vec<(Instant, i64)> {
    let mut polls = Vec::new();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped.cancelled() => return polls,
            _ = ticks.tick() => {}
        }
        let sent = Instant::now();
        tokio::select! {
            () = stopped.cancelled() => return polls,
            reply = control.stock() => match reply {
                Ok(reply) => {
                    // Stamped when the call was sent: the audit relies on the reading being
                    // taken no earlier than that ([`crate::audit::undersell`]).
                    polls.push((sent, reply.stock));
                    live.set_stock(reply.stock);
                }
                Err(err) => tracing::debug!(%err, "stock poll failed"),
            },
        }
    }
}
