//! The workers currently joined to the coordinator, and where their run events go.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use flashsale::pb;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;

use crate::engine::bins::LatencyBins;
use crate::engine::live::Totals;

/// Messages down a worker's Join stream.
pub type Outbox = mpsc::Sender<Result<pb::CoordinatorMessage, Status>>;

/// What a worker said or did during a run.
#[derive(Debug)]
pub enum RunEvent {
    Heartbeat {
        worker: u64,
        totals: Totals,
        /// Its latencies so far (cumulative), if it sent well-formed ones.
        latency: Option<LatencyBins>,
    },
    Result {
        worker: u64,
        result: Box<pb::WorkerResult>,
    },
    /// A part of a result still to come.
    Part {
        worker: u64,
        part: Box<pb::ResultPart>,
    },
    Gone {
        worker: u64,
        reason: String,
    },
}

/// A joined worker as a run sees it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub name: String,
    pub outbox: Outbox,
}

#[derive(Debug)]
struct Entry {
    member: Member,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    workers: BTreeMap<u64, Entry>,
    run: Option<(u64, mpsc::UnboundedSender<RunEvent>)>,
}

/// Joined workers, with change notifications.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Inner>,
    changed: watch::Sender<()>,
    stale_after: Duration,
}

impl Registry {
    /// A worker silent for longer than `stale_after` no longer counts as present.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            inner: Mutex::default(),
            changed: watch::Sender::new(()),
            stale_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a worker; returns its id.
    pub fn join(&self, name: String, outbox: Outbox) -> u64 {
        let id = {
            let mut inner = self.lock();
            inner.next_id += 1;
            let id = inner.next_id;
            let member = Member { id, name, outbox };
            inner.workers.insert(
                id,
                Entry {
                    member,
                    last_seen: Instant::now(),
                },
            );
            id
        };
        self.changed.send_replace(());
        id
    }

    /// Removes a worker whose stream ended, telling the running run if there is one.
    pub fn leave(&self, worker: u64, reason: String) {
        {
            let mut inner = self.lock();
            inner.workers.remove(&worker);
            if let Some((_, events)) = &inner.run {
                let _ = events.send(RunEvent::Gone { worker, reason });
            }
        }
        self.changed.send_replace(());
    }

    /// Notes that `worker` is alive and forwards run events of the current run.
    pub fn heard(&self, worker: u64, run_id: u64, event: Option<RunEvent>) {
        let mut inner = self.lock();
        if let Some(entry) = inner.workers.get_mut(&worker) {
            entry.last_seen = Instant::now();
        }
        if let (Some((current, events)), Some(event)) = (&inner.run, event)
            && *current == run_id
        {
            let _ = events.send(event);
        }
    }

    /// Workers heard from recently, in join order.
    pub fn present(&self) -> Vec<Member> {
        let now = Instant::now();
        self.lock()
            .workers
            .values()
            .filter(|e| now.duration_since(e.last_seen) <= self.stale_after)
            .map(|e| e.member.clone())
            .collect()
    }

    /// Waits until at least `n` workers are present, or `timeout` passes (then returns
    /// what is there).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Member> {
        let mut changed = self.changed.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let present = self.present();
            if present.len() >= n {
                return present;
            }
            // Re-check on every change, and now and then for workers going stale.
            let recheck = Instant::now() + Duration::from_millis(500);
            tokio::select! {
                _ = changed.changed() => {}
                () = tokio::time::sleep_until(recheck.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                return self.present();
            }
        }
    }

    /// Routes run events of `run_id` to `events` until the returned guard is dropped (also
    /// when the submitting client goes away and the run's future is dropped midway).
    pub fn begin_run(&self, run_id: u64, events: mpsc::UnboundedSender<RunEvent>) -> RunGuard<'_> {
        self.lock().run = Some((run_id, events));
        RunGuard(self)
    }

    /// Drops every worker, which ends their Join streams (used at shutdown).
    pub fn close_all(&self) {
        self.lock().workers.clear();
        self.changed.send_replace(());
    }
}

/// Ends event routing for a run when dropped.
#[must_use = "events stop flowing when the guard is dropped"]
pub struct RunGuard<'a>(&'a Registry);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().run = None;
    }
}
