//! Errors of the driver library. `main` maps them to exit status 2 (usage or connection
//! problems); a failed audit is not an error but a verdict (exit status 1).

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid target `{target}`: {reason}")]
    InvalidTarget { target: String, reason: String },
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{call} on {target} failed: {} ({})", status.message(), status.code())]
    Rpc {
        call: &'static str,
        target: String,
        status: Box<tonic::Status>,
    },
    #[error("Reset did not take effect on {target}: {what}")]
    ResetNotApplied { target: String, what: String },
    #[error("embedded server: {0}")]
    Server(#[from] flashsale_server::ServerError),
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    #[error("{0}")]
    Invalid(String),
    #[error("load thread failed: {0}")]
    Thread(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
