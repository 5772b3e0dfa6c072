//! Everything a checkout call can fail with, mapped to a gRPC status in one place.

use tonic::{Code, Status};

use crate::store::StoreError;

/// Longest accepted `user_id`, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Why a checkout call did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("user_id is required")]
    MissingUserId,
    #[error("user_id is {0} bytes long; at most {MAX_USER_ID_BYTES} bytes are allowed")]
    UserIdTooLong(usize),
    #[error("quantity {requested} exceeds the per-order maximum of {max}")]
    QuantityTooLarge { requested: u32, max: u32 },
    #[error("stock must be 0 or more, got {0}")]
    NegativeStock(i64),
    #[error("unknown safe_strategy value {0}")]
    UnknownStrategy(i32),
    #[error("checkout temporarily unavailable (injected failure, rate {0})")]
    InjectedFailure(f64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CheckoutError> for Status {
    fn from(err: CheckoutError) -> Self {
        let code = match &err {
            CheckoutError::MissingUserId
            | CheckoutError::UserIdTooLong(_)
            | CheckoutError::QuantityTooLarge { .. }
            | CheckoutError::NegativeStock(_)
            | CheckoutError::UnknownStrategy(_) => Code::InvalidArgument,
            CheckoutError::InjectedFailure(_)
            | CheckoutError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
        };
        Status::new(code, err.to_string())
    }
}
