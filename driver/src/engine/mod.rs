//! The load engine: virtual users spread over HTTP/2 connections, connections spread over OS
//! threads that each run a single-threaded tokio runtime. Every thread records into its own
//! [`Stats`] (its connections share it unlocked); they are merged once when the run ends.
//!
//! Several targets (server replicas): connection `c` is bound to replica `c % replicas`, so
//! connections spread round-robin. What each replica answered is read once at the end from
//! its connections' own counters (the lock-free ones a watcher reads): nothing more is
//! recorded per request.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub mod arrivals;
pub mod bins;
pub mod counts;
pub mod history;
pub mod live;
pub mod series;
pub mod stats;
pub mod tries;
mod user;

use crate::checkout;
use crate::engine::counts::Counts;
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
    /// One entry per target, in the order given: what its connections did.
    pub replicas: Vec<ReplicaLoad>,
}

/// What the connections bound to one target (replica) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLoad {
    /// The target's URL.
    pub target: String,
    /// Connections bound to it.
    pub connections: u32,
    /// What its connections' requests came to.
    pub counts: Counts,
}

impl ReplicaLoad {
    /// A single target that took all of `counts` (over `connections` connections).
    pub fn single(target: &str, connections: u32, counts: Counts) -> Vec<ReplicaLoad> {
        vec![ReplicaLoad {
            target: target.to_string(),
            connections,
            counts,
        }]
    }
}

/// One connection of a load thread's plan: its index (which picks its replica) and its users.
struct Planned {
    connection: u32,
    users: Vec<u64>,
}

/// A thread's result: merged stats, the counts of each of its connections (by connection
/// index) and when its users started and finished.
type ThreadResult = Result<
    (
        Stats,
        Vec<(u32, Counts)>,
        std::time::Instant,
        std::time::Instant,
    ),
    DriverError,
>;

/// Connections for a run of `users` over `replicas` targets when `wanted` were asked for: at
/// least one per replica (so every replica is driven), at most one per user.
pub fn connections_for(wanted: u32, users: u32, replicas: usize) -> u32 {
    let replicas = u32::try_from(replicas).unwrap_or(u32::MAX);
    wanted.max(replicas).clamp(1, users.max(1))
}

/// Runs `spec` against `urls` (one or more replicas of one checkout; connections spread
/// round-robin over them), blocking the calling thread until every user is done, and
/// publishes live counters and the users' start into `live` for a watcher.
///
/// Every connection is established before any user starts; then all threads release their
/// users together (or at `start_at`, a wall-clock instant shared by distributed workers).
pub fn run_observed(
    urls: &[String],
    spec: &LoadSpec,
    start_at: Option<SystemTime>,
    live: &Arc<Live>,
) -> Result<LoadResult, DriverError> {
    run_observed_with(urls, &Connection::default(), spec, start_at, live)
}

/// [`run_observed`] with connections made as `connection` says (TLS, metadata on every call).
pub fn run_observed_with(
    urls: &[String],
    connection: &Connection,
    spec: &LoadSpec,
    start_at: Option<SystemTime>,
    live: &Arc<Live>,
) -> Result<LoadResult, DriverError> {
    if urls.is_empty() {
        return Err(DriverError::from(crate::spec::SpecError::NoTarget));
    }
    let connections = connections_for(spec.connections, spec.users, urls.len());
    let threads = spec.threads.clamp(1, connections);
    let barrier = Arc::new(Barrier::new(threads as usize));
    let failed = Arc::new(AtomicBool::new(false));

    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            // Connection c serves users u with u % connections == c; thread t runs the
            // connections c with c % threads == t.
            // Connection c is bound to replica c % urls.len().
            let plan: Vec<Planned> = (thread..connections)
                .step_by(threads as usize)
                .map(|c| Planned {
                    connection: c,
                    users: (u64::from(c)..u64::from(spec.users))
                        .step_by(connections as usize)
                        .collect(),
                })
                .collect();
            let (urls, spec) = (urls.to_vec(), spec.clone());
            let connection = connection.clone();
            let (barrier, failed, live) = (barrier.clone(), failed.clone(), live.clone());
            std::thread::Builder::new()
                .name(format!("load-{thread}"))
                .spawn(move || {
                    let targets = (urls.as_slice(), &connection);
                    let place = (thread, threads);
                    load_thread(
                        targets,
                        &spec,
                        (plan, place),
                        start_at,
                        &barrier,
                        &failed,
                        &live,
                    )
                })
        })
        .collect::<Result<_, _>>()?;

    let mut stats = Stats::default();
    let mut replicas: Vec<ReplicaLoad> = urls
        .iter()
        .map(|url| ReplicaLoad {
            target: url.clone(),
            connections: 0,
            counts: Counts::default(),
        })
        .collect();
    let mut window: Option<(std::time::Instant, std::time::Instant)> = None;
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok((thread_stats, per_connection, start, end))) => {
                // One process's own requests cannot sum past 2^64; should they, say so.
                if let Err(overflow) = stats.merge(thread_stats) {
                    first_error.get_or_insert(overflow.into());
                }
                for (connection, counts) in per_connection {
                    let replica = &mut replicas[connection as usize % urls.len()];
                    replica.connections += 1;
                    if let Err(overflow) = replica.counts.checked_merge(&counts) {
                        first_error.get_or_insert(overflow.into());
                    }
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
        replicas,
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
    (urls, connection): (&[String], &Connection),
    spec: &LoadSpec,
    (plan, (thread, threads)): (Vec<Planned>, (u32, u32)),
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
            futures::future::try_join_all(plan.iter().map(|planned| {
                let url = &urls[planned.connection as usize % urls.len()];
                checkout::Purchaser::connect(url, connection)
            }))
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
    let purchasers = connected?;
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
        // Times in every thread's history count from the first thread's start, so that they
        // compare with each other and with the watcher's stock polls.
        let origin = live.started().map_or(started, Instant::from_std);
        let deadline = spec.duration.map(|d| deadline_after(started, d));
        // One Stats per load thread: its connections run on this single-threaded runtime, so
        // they share it through a RefCell without a lock (one HDR histogram per thread, not
        // one per connection: ~175 KB each).
        let stats = RefCell::new(Stats::with_bucket_ms(series::bucket_ms_for(spec.duration)));
        let mut counters = Vec::with_capacity(plan.len());
        if let crate::spec::Shape::Rate {
            stages,
            max_in_flight,
        } = &spec.shape
        {
            let lanes = purchasers
                .into_iter()
                .zip(&plan)
                .map(|(purchaser, planned)| {
                    let connection_counters = live.register();
                    counters.push((planned.connection, connection_counters.clone()));
                    arrivals::Lane::new(purchaser, connection_counters)
                })
                .collect();
            let share = arrivals::Share::new(thread, threads, *max_in_flight);
            arrivals::drive_arrivals(lanes, (stages, share), spec, origin, (live, &stats)).await;
        } else {
            let per_connection = purchasers
                .into_iter()
                .zip(plan)
                .map(|(purchaser, planned)| {
                    let connection_counters = live.register();
                    counters.push((planned.connection, connection_counters.clone()));
                    let window = (origin, deadline);
                    let live_counters = (connection_counters, live);
                    drive_connection(
                        purchaser,
                        planned.users,
                        spec,
                        window,
                        live_counters,
                        &stats,
                    )
                });
            let per_connection: Vec<_> = per_connection.collect();
            futures::future::join_all(per_connection).await;
        }
        // Every user of this thread is done: the connections' counters are final.
        let counts = counters
            .into_iter()
            .map(|(connection, counters)| (connection, counters.counts.snapshot()))
            .collect();
        Ok((
            stats.into_inner(),
            counts,
            started.into_std(),
            std::time::Instant::now(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::connections_for;

    #[test]
    fn every_replica_gets_a_connection_when_the_users_allow() {
        assert_eq!(connections_for(1, 300, 3), 3);
        assert_eq!(connections_for(10, 300, 3), 10);
        assert_eq!(connections_for(1, 2, 3), 2);
        assert_eq!(connections_for(5, 300, 1), 5);
        assert_eq!(connections_for(0, 0, 1), 1);
    }
}
