//! TEMPORARY stand-in until the lead's integration lands (replaced on merge).

pub mod http;

use crate::spec::custom::ReplyStatus;

/// A reply of a custom checkout.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: ReplyStatus,
    pub body: Option<serde_json::Value>,
}
