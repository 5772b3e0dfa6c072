//! Everything a checkout call can fail with, mapped to a gRPC status in one place.

use tonic::{Code, Status};

use crate::store::StoreError;
use crate::store::book::MAX_REQUEST_ID_BYTES;

/// Longest accepted `user_id`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Why a checkout call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("user_id is required")]
    MissingUserId,
    #[error("user_id is {0} bytes long; at most {MAX_USER_ID_BYTES} bytes are allowed")]
    UserIdTooLong(usize),
    #[error("request_id is {0} bytes long; at most {MAX_REQUEST_ID_BYTES} bytes are allowed")]
    RequestIdTooLong(usize),
    #[error("quantity {requested} exceeds the per-order maximum of {max}")]
    QuantityTooLarge { requested: u32, max: u32 },
    #[error("stock must be 0 or more, got {0}")]
    NegativeStock(i64),
    #[error("unknown safe_strategy value {0}")]
    UnknownStrategy(i32),
    #[error("checkout temporarily unavailable (injected failure, rate {0})")]
    InjectedFailure(f64),
    #[error(
        "gave up after {attempts} attempts: every one conflicted with another purchase \
         (serializable strategy under contention); nothing was bought"
    )]
    Contended { attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CheckoutError> for Status {
    fn from(err: CheckoutError) -> Self {
        let code = match &err {
            CheckoutError::MissingUserId
            | CheckoutError::UserIdTooLong(_)
            | CheckoutError::RequestIdTooLong(_)
            | CheckoutError::QuantityTooLarge { .. }
            | CheckoutError::NegativeStock(_)
            | CheckoutError::UnknownStrategy(_) => Code::InvalidArgument,
            CheckoutError::InjectedFailure(_)
            | CheckoutError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            // The purchase may or may not have been applied (a commit in doubt the store could
            // not resolve): never UNAVAILABLE, which promises that nothing was written. UNKNOWN
            // is the status of "the server cannot say"; the driver counts it as indeterminate.
            CheckoutError::Store(StoreError::OutcomeUnknown(_)) => Code::Unknown,
            // The client named a round that is not (or no longer) the current one.
            CheckoutError::Store(StoreError::RoundMismatch { .. })
            | CheckoutError::Store(StoreError::Unsupported(_)) => Code::FailedPrecondition,
            // A Reset raced with the purchase; nothing changed, a retry in the new round may
            // succeed.
            CheckoutError::Store(StoreError::RoundEnded { .. }) => Code::Aborted,
            // Concurrency conflicts: nothing changed, a retry may succeed.
            CheckoutError::Contended { .. } | CheckoutError::Store(StoreError::Conflict(_)) => {
                Code::Aborted
            }
            // The purchase was not applied: its deadline passed while it waited for its batch.
            CheckoutError::Store(StoreError::DeadlineExceeded(_)) => Code::DeadlineExceeded,
        };
        Status::new(code, err.to_string())
    }
}
