//! The load engine: virtual users spread over HTTP/2 connections, connections spread over OS
//! threads that each run a single-threaded tokio runtime. Every thread records into its own
//! [`Stats`] (its connections share it unlocked); they are merged once when the run ends.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub mod bins;
pub mod counts;
pub mod history;
pub mod live;
pub mod outcome;
pub mod series;
pub mod stats;
mod user;

use crate::checkout;
use crate::error::DriverError;
use crate::spec::{Connection, LoadSpec};
use live::Live;
use stats::Stats;
use user::drive_connection;

/// What a load run produced.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub stats: Stats,
    /// From the moment the users started to the moment the last one finished.
    pub elapsed: Duration,
    pub connections: u32,
    pub threads: u32,
}

/// Per-thread result: merged stats and when its users started and finished.
type ThreadResult = Result<(Stats, std::time::Instant, std::time::Instant), DriverError>;

/// Runs `spec` against `url`, blocking the calling thread until every user is done, and
/// publishes live counters and the users' start into `live` for a watcher.
///
/// Every connection is established before any user starts; then all threads release their
/// users together (or at `start_at`, a wall-clock instant shared by distributed workers).
pub fn run_observed(
    url: &str,
    spec: &LoadSpec,
    start_at: Option<SystemTime>,
    live: &Arc<Live>,
) -> Result<LoadResult, DriverError> {
    run_observed_with(url, &Connection::default(), spec, start_at, live)
}

/// [`run_observed`] with connections made as `connection` says (TLS, metadata on every call).
pub fn run_observed_with(
    url: &str,
    connection: &Connection,
    spec: &LoadSpec,
    start_at: Option<SystemTime>,
    live: &Arc<Live>,
) -> Result<LoadResult, DriverError> {
    let connections = spec.connections.clamp(1, spec.users.max(1));
    let threads = spec.threads.clamp(1, connections);
    let barrier = Arc::new(Barrier::new(threads as usize));
    let failed = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            // Connection c serves users u with u % connections == c; thread t runs the
            // connections c with c % threads == t.
            let plan: Vec<Vec<u64>> = (thread..connections)
                .step_by(threads as usize)
                .map(|c| {
                    (u64::from(c)..u64::from(spec.users))
                        .step_by(connections as usize)
                        .collect()
                })
                .collect();
            let (url, spec) = (url.to_string(), spec.clone());
            let connection = connection.clone();
            let (barrier, failed, live) = (barrier.clone(), failed.clone(), live.clone());
            std::thread::Builder::new()
                .name(format!("load-{thread}"))
                .spawn(move || {
                    let target = (url.as_str(), &connection);
                    load_thread(target, &spec, plan, start_at, &barrier, &failed, &live)
                })
        })
        .collect::<Result<_, _>>()?;

    let mut stats = Stats::default();
    let mut window: Option<(std::time::Instant, std::time::Instant)> = None;
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok((thread_stats, start, end))) => {
                // One process's own requests cannot sum past 2^64; should they, say so.
                if let Err(overflow) = stats.merge(thread_stats) {
                    first_error.get_or_insert(overflow.into());
                }
                window = Some(window.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
            }
            Ok(Err(err)) => {
                first_error.get_or_insert(err);
            }
            Err(_) => {
                first_error.get_or_insert(DriverError::Thread("a load thread panicked".into()));
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    Ok(LoadResult {
        stats,
        elapsed: window.map_or(Duration::ZERO, |(s, e)| e - s),
        connections,
        threads,
    })
}

/// `start + duration`, or a century later when that does not fit in an `Instant` (a sustained
/// run of `Duration::MAX` runs until cancelled rather than panicking).
fn deadline_after(start: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    start
        .checked_add(duration)
        .or_else(|| start.checked_add(CENTURY))
        .unwrap_or(start)
}

fn load_thread(
    (url, connection): (&str, &Connection),
    spec: &LoadSpec,
    plan: Vec<Vec<u64>>,
    start_at: Option<SystemTime>,
    barrier: &Barrier,
    failed: &AtomicBool,
    live: &Live,
) -> ThreadResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let connected = match &runtime {
        Ok(rt) => rt.block_on(async {
            futures::future::try_join_all(
                plan.iter()
                    .map(|_| checkout::connect_checkout(url, connection)),
            )
            .await
        }),
        Err(err) => Err(DriverError::Thread(format!(
            "cannot start a runtime: {err}"
        ))),
    };
    if connected.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    // Every thread reaches the barrier, connected or not, so none is left waiting.
    barrier.wait();
    let channels = connected?;
    if failed.load(Ordering::SeqCst) {
        return Err(DriverError::Thread(
            "another load thread could not connect".into(),
        ));
    }
    let runtime = runtime.map_err(|e| DriverError::Thread(e.to_string()))?;
    runtime.block_on(async move {
        if let Some(at) = start_at {
            if let Ok(wait) = at.duration_since(SystemTime::now()) {
                tokio::time::sleep(wait).await;
            }
            let late = SystemTime::now().duration_since(at).unwrap_or_default();
            tracing::debug!(
                late_us = late.as_micros() as u64,
                "users released at the shared start"
            );
        }
        let started = Instant::now();
        live.mark_started(started.into_std());
        let deadline = spec.duration.map(|d| deadline_after(started, d));
        // One Stats per load thread: its connections run on this single-threaded runtime, so
        // they share it through a RefCell without a lock (one HDR histogram per thread, not
        // one per connection: ~175 KB each).
        let stats = RefCell::new(Stats::with_bucket_ms(series::bucket_ms_for(spec.duration)));
        let per_connection = channels.into_iter().zip(plan).map(|(channel, users)| {
            let counters = live.register();
            let window = (started, deadline);
            drive_connection(channel, users, spec, window, (counters, live), &stats)
        });
        futures::future::join_all(per_connection).await;
        Ok((
            stats.into_inner(),
            started.into_std(),
            std::time::Instant::now(),
        ))
    })
}
