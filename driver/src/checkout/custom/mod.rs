//! TEMPORARY scaffolding (grpc branch): the lead's integration defines this module.
pub mod grpc;
use crate::spec::custom::ReplyStatus;
pub struct Reply {
    pub status: ReplyStatus,
    pub body: Option<serde_json::Value>,
}
