//! Errors of the driver library, one variant per kind of failure. `main` maps them to exit
//! status 2 (usage or connection problems); a failed audit is not an error but a verdict
//! (exit status 1), and a target that dies mid-run still yields a report.

use std::time::Duration;

use crate::engine::counts::Overflow;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The target address does not parse or is not a URL the driver can dial.
    #[error("invalid target `{target}`: {reason}")]
    InvalidTarget { target: String, reason: String },
    /// Statistics received from a peer (a worker's report, the coordinator's result) do not
    /// decode or do not add up.
    #[error("malformed statistics: {0}")]
    MalformedStats(String),
    /// An order book received from the coordinator does not decode.
    #[error("malformed order book: {0}")]
    MalformedBook(String),
    /// The coordinator's answer lacks something a run needs.
    #[error("incomplete answer from the coordinator: {0}")]
    IncompleteResult(String),
    /// Merged counters would not fit in 64 bits.
    #[error("merging statistics: {0}")]
    Overflow(#[from] Overflow),
    /// `reason` is the transport error with its causes (why a certificate was refused).
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The first call found something else than a checkout at the target (said in `why`).
    #[error("{call} on {target} failed: {why}")]
    NotACheckout {
        call: &'static str,
        target: String,
        why: String,
    },
    #[error("{call} on {target} failed: {} ({})", status.message(), status.code())]
    Rpc {
        call: &'static str,
        target: String,
        status: Box<tonic::Status>,
    },
    /// A control call of a checkout of the team's own (its stock or reset call) failed.
    #[error("the {call} call of {target} failed: {reason}")]
    CustomCall {
        call: &'static str,
        target: String,
        reason: String,
    },
    /// A checkout of the team's own described wrongly (flags or spec file).
    #[error(transparent)]
    Custom(#[from] crate::spec::custom::CustomError),
    #[error("Reset did not take effect on {target}: {what}")]
    ResetNotApplied { target: String, what: String },
    /// A health check got no answer in time.
    #[error("health check of {target} timed out after {after:?}")]
    HealthCheckTimeout { target: String, after: Duration },
    /// A worker lost its coordinator.
    #[error("lost the coordinator: {0}")]
    LostCoordinator(String),
    #[error("embedded server: {0}")]
    Server(#[from] flashsale_server::ServerError),
    /// The run as asked for (command line or a submitted run's plan) is not valid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// TLS or metadata settings that cannot be used (unreadable PEM, invalid `-H`).
    #[error(transparent)]
    Connection(#[from] crate::spec::ConnectionError),
    /// A custom gRPC checkout whose methods cannot be resolved or called as described.
    #[error(transparent)]
    CustomGrpc(#[from] crate::checkout::custom::grpc::GrpcSchemaError),
    #[error("load thread failed: {0}")]
    Thread(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
