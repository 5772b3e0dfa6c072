//! What one request came to as the client saw it, and the vocabulary of gRPC status codes the
//! rest of the driver speaks about it.

use std::time::Duration;

use tonic::Code;

/// What one request came to, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Status OK, outcome PURCHASED.
    Purchased {
        order_id: String,
        quantity: u32,
        /// The stock the reply reported, when the checkout reports one.
        stock_after: Option<i64>,
    },
    /// Status OK, outcome SOLD_OUT.
    SoldOut { stock_after: Option<i64> },
    /// Status OK, outcome LIMIT_REACHED (the customer's per-user limit).
    LimitReached { stock_after: Option<i64> },
    /// Status OK but the reply breaks the contract (unknown outcome).
    BadReply,
    /// A gRPC status other than OK.
    Status(Code),
    /// No answer within the client's deadline.
    Timeout,
}

/// How far into its deadline a DEADLINE_EXCEEDED or CANCELLED must come to be the deadline
/// expiring, in thousandths of the deadline: 900 (the last tenth). A server enforcing the
/// client's `grpc-timeout` answers at the deadline (its clock starts later than the
/// client's); one that answers clearly before chose to fail the call.
pub const EXPIRY_FROM_PERMILLE: u32 = 900;

impl Outcome {
    /// This outcome of a call that took `latency` with deadline `timeout`: a DEADLINE_EXCEEDED
    /// or CANCELLED in the last tenth of the deadline (or past it) is the deadline expiring,
    /// a [`Outcome::Timeout`]; earlier, it stays an error status the server sent.
    pub fn judged(self, latency: Duration, timeout: Duration) -> Outcome {
        match self {
            Outcome::Status(Code::DeadlineExceeded | Code::Cancelled)
                if latency >= timeout * EXPIRY_FROM_PERMILLE / 1000 =>
            {
                Outcome::Timeout
            }
            other => other,
        }
    }

    /// Whether the purchase may or may not have happened: the audit counts these as a range.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            Outcome::Timeout => true,
            Outcome::Status(code) => is_indeterminate_code(*code),
            _ => false,
        }
    }
}

/// Statuses after which a purchase may have been applied. `UNAVAILABLE` (the server refused
/// before doing anything, the gRPC form of HTTP 503), `INVALID_ARGUMENT` and the other
/// "rejected" codes are counted as not applied.
pub fn is_indeterminate_code(code: Code) -> bool {
    matches!(
        code,
        Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal | Code::DataLoss
    )
}

/// The canonical upper-case name of a gRPC status code, e.g. `UNAVAILABLE`.
pub fn code_name(code: i32) -> &'static str {
    flashsale::status::name(Code::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_statuses_are_expiries_only_at_the_deadline() {
        let deadline = Duration::from_secs(3);
        for code in [Code::DeadlineExceeded, Code::Cancelled] {
            let early = Outcome::Status(code).judged(Duration::from_millis(25), deadline);
            assert_eq!(early, Outcome::Status(code));
            let late = Outcome::Status(code).judged(Duration::from_millis(2_700), deadline);
            assert_eq!(late, Outcome::Timeout);
        }
        let internal = Outcome::Status(Code::Internal).judged(deadline, deadline);
        assert_eq!(internal, Outcome::Status(Code::Internal));
    }
}
