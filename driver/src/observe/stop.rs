//! Stopping a run before its planned end, and remembering who did it: Ctrl-C, SIGTERM, the
//! dashboard's Stop, a CancelRun sent to the coordinator, or the dashboard shutting down.
//!
//! A [`Stop`] is a cancellation token plus its first cause and instant. The load winds down on
//! the token (users stop after their current attempt); the run then settles and audits what was
//! sent, and its report says it was stopped ([`crate::report::Stopped`]) so that it can never
//! pass: its verdict is at best INCONCLUSIVE and the driver exits with
//! [`crate::EXIT_STOPPED`].

use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Who or what stopped a run early (the JSON report's `stopped.by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoppedBy {
    /// SIGINT: Ctrl-C in the terminal.
    CtrlC,
    /// SIGTERM: `kill`, `docker stop`, a CI runner's timeout.
    Sigterm,
    /// The dashboard's Stop button.
    Dashboard,
    /// A CancelRun sent to the coordinator by someone other than this client.
    CancelRun,
    /// The dashboard serving the run shut down.
    Shutdown,
}

impl StoppedBy {
    /// The JSON name (`ctrl-c`, `sigterm`, `dashboard`, `cancel-run`, `shutdown`).
    pub fn name(self) -> &'static str {
        match self {
            StoppedBy::CtrlC => "ctrl-c",
            StoppedBy::Sigterm => "sigterm",
            StoppedBy::Dashboard => "dashboard",
            StoppedBy::CancelRun => "cancel-run",
            StoppedBy::Shutdown => "shutdown",
        }
    }

    /// For people: `Ctrl-C`, `SIGTERM`, `the dashboard's Stop`, ...
    pub fn describe(self) -> &'static str {
        match self {
            StoppedBy::CtrlC => "Ctrl-C",
            StoppedBy::Sigterm => "SIGTERM",
            StoppedBy::Dashboard => "the dashboard's Stop",
            StoppedBy::CancelRun => "a CancelRun to the coordinator",
            StoppedBy::Shutdown => "the dashboard shutting down",
        }
    }
}

impl std::fmt::Display for StoppedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A way to stop a run early that remembers its first cause. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    token: CancellationToken,
    cause: Arc<OnceLock<(StoppedBy, Instant)>>,
}

impl Stop {
    /// Not stopped yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run, recording `by` and now unless it was stopped before (the first cause
    /// wins).
    pub fn stop(&self, by: StoppedBy) {
        let _ = self.cause.set((by, Instant::now()));
        self.token.cancel();
    }

    /// The token the load winds down on.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether [`Stop::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Who stopped it and when, if anyone did.
    pub fn cause(&self) -> Option<(StoppedBy, Instant)> {
        self.cause.get().copied()
    }

    /// Who stopped it, if anyone did by `deadline` (a stop after the load ended stopped
    /// nothing).
    pub fn cause_by(&self, deadline: Instant) -> Option<(StoppedBy, Instant)> {
        self.cause().filter(|(_, at)| *at <= deadline)
    }
}

/// A [`Stop`] triggered by this process's first SIGINT (Ctrl-C) or SIGTERM, which also says so
/// on stderr; a second signal exits at once with status 130. For binaries.
pub fn on_signals() -> Stop {
    let stop = Stop::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        let Some(mut signals) = Signals::listen() else {
            return;
        };
        let Some(by) = signals.next().await else {
            return;
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "driver: interrupted by {}: finishing in-flight requests, then the audit (again to quit)",
            by.describe()
        );
        trigger.stop(by);
        if signals.next().await.is_some() {
            std::process::exit(flashsale_server::shutdown::FORCED_EXIT_STATUS);
        }
    });
    stop
}

/// SIGINT and SIGTERM, as they arrive.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn listen() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(int), Ok(term)) => Some(Self { int, term }),
            (Err(err), _) | (_, Err(err)) => {
                tracing::error!(%err, "cannot listen for SIGINT/SIGTERM");
                None
            }
        }
    }

    #[cfg(not(unix))]
    fn listen() -> Option<Self> {
        Some(Self {})
    }

    #[cfg(unix)]
    async fn next(&mut self) -> Option<StoppedBy> {
        tokio::select! {
            got = self.int.recv() => got.map(|()| StoppedBy::CtrlC),
            got = self.term.recv() => got.map(|()| StoppedBy::Sigterm),
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Option<StoppedBy> {
        tokio::signal::ctrl_c()
            .await
            .ok()
            .map(|()| StoppedBy::CtrlC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_wins_and_clones_share_it() {
        let stop = Stop::new();
        assert!(stop.cause().is_none() && !stop.is_stopped());
        let before = Instant::now();
        let clone = stop.clone();
        clone.stop(StoppedBy::Dashboard);
        stop.stop(StoppedBy::CtrlC);
        let (by, at) = stop.cause().unwrap();
        assert_eq!(by, StoppedBy::Dashboard);
        assert!(stop.is_stopped() && stop.token().is_cancelled());
        assert!(stop.cause_by(at).is_some());
        assert!(
            stop.cause_by(before).is_none(),
            "a stop after the deadline stopped nothing"
        );
        let json = serde_json::to_string(&[StoppedBy::CtrlC, StoppedBy::CancelRun]).unwrap();
        assert_eq!(json, r#"["ctrl-c","cancel-run"]"#);
    }
}
