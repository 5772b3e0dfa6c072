//! A validated description of one load run: what to call, how hard, for how long.

use std::time::Duration;

pub mod connection;
pub mod custom;
pub mod faults;
pub mod ids;
mod limits;
pub mod policy;
mod quantities;
pub mod retry;
pub mod shape;
pub mod stages;
pub mod targets;

use flashsale_server::Strategy;
use serde::Serialize;

pub use connection::{ClientTls, Connection, ConnectionError, Metadata};
pub use limits::{
    MAX_CONNECTIONS, MAX_DURATION, MAX_IN_FLIGHT, MAX_SETTLE, MAX_TARGETS, MAX_THREADS,
    MAX_TIMEOUT, MAX_USER_PREFIX_BYTES, MAX_USERS, SpecError, validate_prefix, validate_settle,
};
pub use quantities::{MAX_QUANTITY, MAX_QUANTITY_MIX, Quantities};
pub use shape::Shape;

/// Which purchase RPC the virtual users call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `PurchaseBuggy`: naive check-then-act, oversells under concurrency.
    Buggy,
    /// `PurchaseUnstable`: the buggy path plus injected `UNAVAILABLE` errors.
    Unstable,
    /// `PurchaseSafe`: atomic, never oversells.
    Safe,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Buggy => "buggy",
            Mode::Unstable => "unstable",
            Mode::Safe => "safe",
        }
    }

    /// The gRPC method this mode calls.
    pub fn rpc(self) -> &'static str {
        match self {
            Mode::Buggy => "flashsale.v1.Checkout/PurchaseBuggy",
            Mode::Unstable => "flashsale.v1.Checkout/PurchaseUnstable",
            Mode::Safe => "flashsale.v1.Checkout/PurchaseSafe",
        }
    }
}

/// Streams per HTTP/2 connection when the connection count is chosen automatically: below
/// the 100-200 concurrent streams servers usually allow per connection.
pub const STREAMS_PER_CONNECTION: u32 = 100;

/// Everything the load engine needs, already checked.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub mode: Mode,
    /// Concurrent virtual users.
    pub users: u32,
    /// HTTP/2 connections the users are spread over.
    pub connections: u32,
    /// OS threads running the connections (each with its own single-threaded runtime).
    pub threads: u32,
    /// `None`: flash-sale burst, each user buys once. `Some(d)`: users loop for `d`.
    pub duration: Option<Duration>,
    /// Units per order: one value, or a mix cycled over the attempts.
    pub quantity: Quantities,
    /// Concurrent purchases each user sends at once (a double-click is 2).
    pub clicks: u32,
    /// The round the purchases are for (0: whatever round the server is in).
    pub round: u64,
    /// Per-request deadline; a request past it is indeterminate.
    pub timeout: Duration,
    /// Prefix of the user ids, so runs and workers never share ids.
    pub user_prefix: String,
    /// Number of the first user (workers of one distributed run get disjoint ranges).
    pub first_user: u64,
    /// How purchases are retried (the default: not at all).
    pub retry: retry::Retry,
    /// How the purchases arrive: the users' burst or closed loop (the default), an arrival
    /// rate, or ramping users. Open and ramped shapes set `duration` to their stages' end.
    pub shape: Shape,
}

impl LoadSpec {
    /// Connections for `users` when the user did not choose: one per 100 streams.
    pub fn auto_connections(users: u32) -> u32 {
        users.div_ceil(STREAMS_PER_CONNECTION).max(1)
    }
}

/// Most concurrent purchases per user.
pub const MAX_CLICKS: u32 = 100;

impl RunSpec {
    /// A short name of what runs: the mode, with the strategy it switches to, e.g.
    /// `safe/mutex`; `custom` for a checkout of the team's own.
    pub fn label(&self) -> String {
        if self.connection.custom.is_some() {
            return "custom".to_string();
        }
        match self.strategy {
            Some(strategy) if self.load.mode == Mode::Safe => {
                format!("{}/{}", self.load.mode.name(), strategy.name())
            }
            _ => self.load.mode.name().to_string(),
        }
    }
}

/// A whole standalone run: the load plus what happens around it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub load: LoadSpec,
    /// `http://host:port` of the checkout under test, one per replica (connections spread
    /// round-robin over them; control calls go to the first); empty starts an in-process
    /// server (the embedded default). A name that resolves to several addresses is expanded
    /// at the start of the run ([`targets::resolve`]).
    pub targets: Vec<String>,
    /// Coordinator URL of a distributed run.
    pub coordinator: Option<String>,
    /// Stock to Reset to before the run.
    pub stock: i64,
    /// Call Reset before the run.
    pub reset: bool,
    /// Run the contract probes before the load ([`crate::probes`]).
    pub probes: bool,
    /// Safe strategy of the round the Reset starts (`None`: the server's configured one).
    pub strategy: Option<Strategy>,
    /// What the audit demands beyond correctness.
    pub policy: crate::spec::policy::Policy,
    /// How long to wait after the load for the server's stock and book to stop changing.
    pub settle: Duration,
    /// Bearer token for the server's admin calls (Reset, ListOrders).
    pub admin_token: Option<String>,
    /// Cluster token sent to the coordinator of a distributed run.
    pub cluster_token: Option<String>,
    /// TLS and metadata of the connections to the checkout (control calls and purchases).
    pub connection: crate::spec::Connection,
    /// Commands to run at moments of the load (`--fault`; this machine only).
    pub faults: Vec<faults::FaultWindow>,
}

/// Default of `--settle`.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// Longest quiet window: how long the stock and counters must stay unchanged after the last
/// reply before the audit reads them, and how long after that it reads them again.
pub const QUIET_WINDOW: Duration = Duration::from_millis(1500);

/// The quiet window of a run that may wait `settle` for the server: [`QUIET_WINDOW`], or half
/// of `settle` when that is shorter. The audit watches the stock and counters for at least
/// twice the window after their last change (3 s with the default `--settle 5s`); a change
/// later than that is outside what it can see.
pub fn quiet_window(settle: Duration) -> Duration {
    QUIET_WINDOW.min(settle / 2)
}
