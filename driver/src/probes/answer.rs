//! The probes' vocabulary: what one probe purchase came to ([`Answer`]), the stock read after
//! it ([`Shelf`]) and what the order book lists for one request id ([`Booked`]).

use tonic::Code;

use crate::outcome::{code_name, is_indeterminate_code};

/// What one probe purchase came to, as the probe needs it (the whole reply, unlike
/// [`crate::outcome::Outcome`], which trusts the requested quantity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Purchased {
        order_id: String,
        /// Units the reply accounts for, when it says.
        units: Option<u32>,
    },
    SoldOut,
    LimitReached,
    /// A reply with no known outcome.
    BadReply,
    Status(Code),
    Timeout,
}

impl Answer {
    /// Statuses after which nothing changed and the same request may simply be sent again.
    pub fn retryable(&self) -> bool {
        matches!(self, Answer::Status(Code::Unavailable | Code::Aborted))
    }

    /// Whether the effect is unknown (or nothing was decided): the probe cannot judge.
    pub fn unknown(&self) -> bool {
        match self {
            Answer::Timeout => true,
            Answer::Status(code) => is_indeterminate_code(*code) || self.retryable(),
            _ => false,
        }
    }

    pub fn order_id(&self) -> Option<&str> {
        match self {
            Answer::Purchased { order_id, .. } => Some(order_id),
            _ => None,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Purchased { order_id, .. } if order_id.is_empty() => {
                write!(f, "PURCHASED (no order id)")
            }
            Answer::Purchased { order_id, .. } => write!(f, "PURCHASED (order {order_id})"),
            Answer::SoldOut => write!(f, "SOLD_OUT"),
            Answer::LimitReached => write!(f, "LIMIT_REACHED"),
            Answer::BadReply => write!(f, "a reply without a known outcome"),
            Answer::Status(code) => write!(f, "{}", code_name(*code as i32)),
            Answer::Timeout => write!(f, "no answer within the deadline"),
        }
    }
}

/// The stock and, when the checkout keeps them, the order counter, read after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shelf {
    pub stock: i64,
    pub orders: Option<u64>,
}

/// What the order book says about one request id, when it could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    /// Orders listed with that request id.
    pub orders: usize,
    /// Their units.
    pub units: u64,
}
