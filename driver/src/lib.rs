//! The flashsale load driver: starts virtual users together against a `flashsale.v1.Checkout`
//! server, records every outcome, and audits whether the checkout oversold.
//!
//! Laid out by concept, one folder each, on top of two vocabulary modules ([`error`] and
//! [`outcome`]: what one request came to):
//! - [`spec`]: what a run is (validated once, for the command line and the wire alike), and
//!   how a checkout of the team's own is described ([`spec::custom`]);
//! - [`checkout`]: the server under test (addresses, connections, control calls, health probe);
//! - [`engine`]: the load itself (virtual users, connections, per-thread statistics);
//! - [`audit`]: what the statistics and the server's book prove;
//! - [`report`]: the report and how it prints (table, JSON, HTML with charts, comparisons);
//! - [`run`]: one run from start to report, and `compare`;
//! - [`cluster`]: distributed runs (coordinator, workers, the client, the wire format, the
//!   cluster token);
//! - [`cli`]: the command line;
//! - [`web`]: the live web dashboard (on top of everything: it validates with [`cli`]).

pub mod audit;
pub mod checkout;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod observe;
pub mod outcome;
pub mod probes;
pub mod report;
pub mod run;
pub mod spec;
pub mod web;

pub use audit::{Audit, Verdict};
pub use error::DriverError;
pub use report::Report;
pub use run::{run, run_with_progress};
pub use spec::{LoadSpec, Mode, RunSpec};

/// Exit status when every invariant held.
pub const EXIT_PASS: u8 = 0;
/// Exit status when the audit found an oversell or an inconsistency.
pub const EXIT_AUDIT_FAILED: u8 = 1;
/// Exit status for usage and connection errors.
pub const EXIT_ERROR: u8 = 2;
/// Exit status when the audit held but a distributed run lost or failed workers.
pub const EXIT_INCOMPLETE: u8 = 3;
/// Exit status when nothing failed but the run could not prove what it claims (a check not
/// exercised, attempts left unresolved).
pub const EXIT_INCONCLUSIVE: u8 = 4;
/// Exit status when the run was stopped before its planned end (Ctrl-C, SIGTERM, the
/// dashboard's Stop, CancelRun) and nothing failed in what was sent: it proved nothing about
/// the run that was asked for. A failure seen before the stop still exits
/// [`EXIT_AUDIT_FAILED`].
pub const EXIT_STOPPED: u8 = 5;

impl Report {
    /// The process exit status this report calls for.
    pub fn exit_code(&self) -> u8 {
        match self.audit.verdict {
            Verdict::Fail => EXIT_AUDIT_FAILED,
            _ if self.stopped.is_some() => EXIT_STOPPED,
            _ if !self.incomplete_workers().is_empty() => EXIT_INCOMPLETE,
            Verdict::Inconclusive => EXIT_INCONCLUSIVE,
            Verdict::Pass => EXIT_PASS,
        }
    }
}
