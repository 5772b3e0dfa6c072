//! The live web dashboard (`driver web`, and the coordinator's `--web`): an axum server on the
//! driver's tokio runtime with a page to start a run, watch it live (server-sent events, four
//! updates a second), stop it, read its verdict, download its reports, and compare runs.
//!
//! - [`form`]: the start form, validated by the CLI's own parser;
//! - [`live`]: what is shown while a run goes, sampled on a timer from the run's live
//!   counters (never from the load's request path);
//! - [`history`]: the runs of this process (bounded) and their reports;
//! - [`guard`]: CSRF, the cluster token beyond loopback, the Host check;
//! - [`routes`]: the HTTP endpoints and the embedded page.
//!
//! One run at a time: a second start while one runs is refused (409).

pub mod form;
pub mod guard;
pub mod history;
pub mod live;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cluster::auth::ClusterToken;
use crate::error::DriverError;
use crate::observe::progress::{self, Source, Tap};
use crate::observe::stop::{Stop, StoppedBy};
use crate::report::comparison::{ComparedRun, Comparison};
use crate::run::compare::CompareSpec;
use crate::spec::RunSpec;
use form::{FormError, StartForm};
use guard::Access;
use history::{Entry, History, Kind, Outcome, Phase};
use live::{LiveView, Sampler};

/// Default address of `driver web`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// Where the dashboard's runs go.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// The checkout every run loads (`None`: the form's target, else an embedded server).
    pub target: Option<String>,
    /// A coordinator (`http://host:port`) the runs are submitted to: distributed runs.
    pub coordinator: Option<String>,
    /// The cluster token: sent to the coordinator, and required to start or stop a run when
    /// the listener is not loopback.
    pub token: Option<ClusterToken>,
}

/// Why the dashboard could not serve.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
    #[error("serving the dashboard: {0}")]
    Serve(#[source] std::io::Error),
    /// A listener beyond loopback without a token would let anyone start load.
    #[error("the dashboard listens on {0}, beyond loopback: it needs a cluster token")]
    TokenRequired(SocketAddr),
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Invalid(#[from] FormError),
    #[error("run #{0} is in progress: stop it or wait for its report")]
    Busy(u64),
}

/// The dashboard's state, shared by every request.
pub struct App {
    config: WebConfig,
    access: Access,
    history: Mutex<History>,
    /// The run in progress and how to stop it.
    current: Mutex<Option<(u64, Stop)>>,
    /// The live figures of the run in progress, or of the last one.
    live: Mutex<Option<LiveView>>,
    /// The latest [`Snapshot`] as JSON, for the event streams.
    snapshots: watch::Sender<Arc<str>>,
    /// Stops the running run when the dashboard shuts down.
    shutdown: CancellationToken,
}

/// What the event stream sends (and `GET /api/state` answers).
#[derive(Debug, Serialize)]
pub struct Snapshot<'a> {
    /// A run is in progress.
    pub busy: bool,
    /// The run in progress, or the last one.
    pub run: Option<&'a Entry>,
    pub live: Option<&'a LiveView>,
    /// Runs in the history (the page reloads the list when it changes).
    pub history: Vec<HistoryLine<'a>>,
}

/// One history line of a snapshot.
#[derive(Debug, Serialize)]
pub struct HistoryLine<'a> {
    pub id: u64,
    pub label: &'a str,
    pub phase: Phase,
    pub verdict: Option<&'a str>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// A dashboard with `config` whose listener is `loopback` or not.
    pub fn new(config: WebConfig, loopback: bool) -> Arc<Self> {
        let access = Access::new(loopback, config.token.clone());
        let (snapshots, _) = watch::channel(Arc::from("{}"));
        let app = Arc::new(Self {
            config,
            access,
            history: Mutex::default(),
            current: Mutex::default(),
            live: Mutex::default(),
            snapshots,
            shutdown: CancellationToken::new(),
        });
        app.publish();
        app
    }

    /// The latest snapshot as JSON.
    pub fn snapshot(&self) -> Arc<str> {
        self.snapshots.borrow().clone()
    }

    /// Follows the snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<str>> {
        self.snapshots.subscribe()
    }

    /// Recomputes the snapshot and sends it to every event stream.
    fn publish(&self) {
        let current = lock(&self.current).as_ref().map(|(id, _)| *id);
        let history = lock(&self.history);
        let live = lock(&self.live);
        let run = match current {
            Some(id) => history.get(id),
            None => history.entries().last(),
        };
        let snapshot = Snapshot {
            busy: current.is_some(),
            run,
            live: live.as_ref(),
            history: history
                .entries()
                .map(|e| HistoryLine {
                    id: e.id,
                    label: &e.label,
                    phase: e.phase,
                    verdict: e.verdict.as_deref(),
                })
                .collect(),
        };
        let json = serde_json::to_string(&snapshot).expect("a snapshot always serializes");
        self.snapshots.send_replace(Arc::from(json));
    }

    /// Starts a run of `form` (or, with `all_modes`, the comparison of every mode) in the
    /// background; returns its id.
    pub fn start(self: &Arc<Self>, form: &StartForm, all_modes: bool) -> Result<u64, StartError> {
        let job = self.job(form, all_modes)?;
        let stop = Stop::new();
        if self.shutdown.is_cancelled() {
            stop.stop(StoppedBy::Shutdown);
        }
        let id = {
            let mut current = lock(&self.current);
            if let Some((busy, _)) = &*current {
                return Err(StartError::Busy(*busy));
            }
            let mut history = lock(&self.history);
            let id = history.next_id();
            history.push(job.entry(id));
            *current = Some((id, stop.clone()));
            id
        };
        *lock(&self.live) = None;
        self.publish();
        tokio::spawn(execute(self.clone(), id, job, stop));
        Ok(id)
    }

    /// Stops the run in progress (it still settles, audits and reports, marked as stopped from
    /// the dashboard); its id, if any.
    pub fn stop(&self) -> Option<u64> {
        self.stop_by(StoppedBy::Dashboard)
    }

    /// [`App::stop`], recording `by` as the cause.
    fn stop_by(&self, by: StoppedBy) -> Option<u64> {
        let id = {
            let current = lock(&self.current);
            let (id, stop) = current.as_ref()?;
            stop.stop(by);
            *id
        };
        if let Some(entry) = lock(&self.history).get_mut(id)
            && entry.phase == Phase::Running
        {
            entry.phase = Phase::Stopping;
        }
        self.publish();
        Some(id)
    }

    /// The validated run or comparison `form` describes, under this dashboard's rules.
    fn job(&self, form: &StartForm, all_modes: bool) -> Result<Job, FormError> {
        let form_target = form.target.trim();
        if let Some(fixed) = &self.config.target
            && !form_target.is_empty()
            && crate::checkout::normalize_target(form_target).ok().as_ref() != Some(fixed)
        {
            return Err(FormError(format!(
                "this dashboard runs against {fixed} only (leave the target empty)"
            )));
        }
        let coordinator = self.config.coordinator.clone();
        let token = self.config.token.as_ref().map(|t| t.expose().to_string());
        let distribute = |run: &mut RunSpec| {
            if run.targets.is_empty() {
                run.targets.extend(self.config.target.iter().cloned());
            }
            if coordinator.is_some() {
                run.coordinator.clone_from(&coordinator);
                run.cluster_token.clone_from(&token);
            }
        };
        if all_modes {
            let mut spec = form.compare_spec()?;
            if spec.targets.is_empty() {
                spec.targets.extend(self.config.target.iter().cloned());
            }
            spec.runs.iter_mut().for_each(distribute);
            Ok(Job::Compare(spec))
        } else {
            let mut spec = form.run_spec()?;
            distribute(&mut spec);
            Ok(Job::Run(Box::new(spec)))
        }
    }

    /// Records how run `id` ended and frees the dashboard for the next one.
    fn finish(&self, id: u64, result: Result<Outcome, DriverError>) {
        {
            let mut history = lock(&self.history);
            if let Some(entry) = history.get_mut(id) {
                match result {
                    Ok(outcome) => {
                        entry.stopped = history::stopped(&outcome);
                        entry.phase = if entry.stopped.is_some() {
                            Phase::Stopped
                        } else {
                            Phase::Done
                        };
                        entry.verdict = Some(match &outcome {
                            Outcome::Report(report) => report.verdict.to_string(),
                            Outcome::Comparison(cmp) => history::verdicts(cmp),
                        });
                        entry.outcome = Some(outcome);
                    }
                    Err(err) => {
                        tracing::warn!(run = id, %err, "dashboard run failed");
                        entry.phase = Phase::Failed;
                        entry.error =
                            Some(crate::report::text::printable(&err.to_string()).into_owned());
                    }
                }
            }
        }
        *lock(&self.current) = None;
        self.publish();
    }

    /// The history, for pages and downloads.
    pub fn history(&self) -> std::sync::MutexGuard<'_, History> {
        lock(&self.history)
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn config(&self) -> &WebConfig {
        &self.config
    }
}

/// What a start asked for.
enum Job {
    Run(Box<RunSpec>),
    Compare(CompareSpec),
}

impl Job {
    fn entry(&self, id: u64) -> Entry {
        let (kind, label, load, stock, target) = match self {
            Job::Run(spec) => (
                Kind::Run,
                spec.label(),
                &spec.load,
                spec.stock,
                spec.targets.first().cloned(),
            ),
            Job::Compare(spec) => (
                Kind::Compare,
                "all modes".to_string(),
                &spec.runs[0].load,
                spec.stock,
                spec.targets.first().cloned(),
            ),
        };
        let mut entry = Entry::new(id, kind, label, load.users, stock);
        entry.duration_s = load.duration.map(|d| d.as_secs_f64());
        entry.target = target;
        entry
    }

    async fn run(self, stop: Stop) -> Result<Outcome, DriverError> {
        match self {
            Job::Run(spec) => crate::run::run_with_progress(&spec, false, stop)
                .await
                .map(|r| Outcome::Report(Arc::new(r))),
            Job::Compare(spec) if spec.runs.iter().any(|r| r.coordinator.is_some()) => {
                distributed_compare(&spec, stop)
                    .await
                    .map(|c| Outcome::Comparison(Arc::new(c)))
            }
            Job::Compare(spec) => crate::run::compare::compare(&spec, false, stop)
                .await
                .map(|c| Outcome::Comparison(Arc::new(c))),
        }
    }
}

/// Every mode of `spec` in turn through its coordinator, side by side.
async fn distributed_compare(spec: &CompareSpec, stop: Stop) -> Result<Comparison, DriverError> {
    let mut runs = Vec::with_capacity(spec.runs.len());
    for run in &spec.runs {
        if stop.is_stopped() {
            break;
        }
        let report = crate::run::run_with_progress(run, false, stop.clone()).await?;
        runs.push(ComparedRun {
            label: run.label(),
            report,
        });
    }
    let first = runs.first().map(|r| &r.report);
    Ok(Comparison {
        schema_version: crate::report::SCHEMA_VERSION,
        target: first.map_or_else(String::new, |r| r.run.target.clone()),
        embedded: false,
        users: spec.runs[0].load.users,
        stock: spec.stock,
        duration_s: spec.runs[0].load.duration.map(|d| d.as_secs_f64()),
        runs,
    })
}

/// Runs `job` as run `id`, sampling its live source until it ends, then records the result.
async fn execute(app: Arc<App>, id: u64, job: Job, stop: Stop) {
    let slot: Arc<Mutex<Option<Arc<dyn Source>>>> = Arc::default();
    let tap: Tap = {
        let slot = slot.clone();
        Arc::new(move |source| *lock(&slot) = Some(source))
    };
    let done = CancellationToken::new();
    let sampling = tokio::spawn(sample(app.clone(), slot, done.clone()));
    // Its own task, so that a panic in a run still frees the dashboard.
    let result = tokio::spawn(progress::tapped(tap, job.run(stop)))
        .await
        .unwrap_or_else(|e| Err(DriverError::Thread(format!("the run failed: {e}"))));
    done.cancel();
    let _ = sampling.await;
    app.finish(id, result);
}

/// Samples the run's live source every [`live::SAMPLE_EVERY`] and publishes it, until `done`.
async fn sample(app: Arc<App>, slot: Arc<Mutex<Option<Arc<dyn Source>>>>, done: CancellationToken) {
    let mut sampler: Option<Sampler> = None;
    let mut ticks = tokio::time::interval(live::SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = done.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Some(source) = lock(&slot).clone() else {
            continue;
        };
        let sampler = match &mut sampler {
            Some(s) if s.watches(&source) => s,
            other => {
                // A new run of a comparison: its own charts.
                let part = other.as_ref().map_or(1, |s| s.part().saturating_add(1));
                other.insert(Sampler::new(source, part))
            }
        };
        let view = sampler.sample(Instant::now()).clone();
        *lock(&app.live) = Some(view);
        app.publish();
    }
    if let Some(sampler) = &mut sampler {
        let view = sampler.sample(Instant::now()).clone();
        *lock(&app.live) = Some(view);
    }
}

/// Serves the dashboard on `listener` until `shutdown` completes (a run in progress is
/// cancelled then).
pub async fn serve(
    listener: TcpListener,
    config: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let addr = listener.local_addr().map_err(WebError::Listener)?;
    let loopback = addr.ip().is_loopback();
    if !loopback && config.token.is_none() {
        return Err(WebError::TokenRequired(addr));
    }
    let app = App::new(config, loopback);
    tracing::info!(%addr, loopback, "dashboard listening");
    let stopping = app.clone();
    axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.shutdown.cancel();
            stopping.stop_by(StoppedBy::Shutdown);
        })
        .await
        .map_err(WebError::Serve)
}
