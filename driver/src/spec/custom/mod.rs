//! A checkout of the team's own, described by flags or a spec file instead of our proto: the
//! request templates, the rules that read its replies, and where its stock is. Everything is
//! parsed and checked once when the spec is built ([`template`], [`path`], [`rules`]); the
//! transports that use it live in [`crate::checkout`].

pub mod path;
pub mod rules;
pub mod template;

pub use path::FieldPath;
pub use rules::{OutcomeRules, ReplyStatus, Rule};
pub use template::{Escape, Template, Values, Var};

/// Why a custom checkout's description is refused.
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    #[error("invalid {what} template: {reason}")]
    Template { what: &'static str, reason: String },
    #[error("invalid field path `{path}`: {reason}")]
    Path { path: String, reason: String },
    #[error("invalid {what} rule `{rule}`: {reason}")]
    Rule {
        what: &'static str,
        rule: String,
        reason: String,
    },
}

// TEMPORARY scaffolding (grpc branch): the lead's integration defines these; replaced on merge.
use std::path::PathBuf;
#[derive(Debug, Clone)]
pub struct CustomApi {
    pub rules: OutcomeRules,
    pub stock: FieldPath,
    pub purchase: Call,
    pub stock_call: Call,
    pub reset: Option<Call>,
    pub transport: Transport,
    pub name: String,
}
#[derive(Debug, Clone)]
pub struct Call {
    pub target: String,
    pub path: Option<Template>,
    pub body: Option<Template>,
}
#[derive(Debug, Clone)]
pub enum Transport {
    Grpc(GrpcOptions),
    Http(HttpOptions),
}
#[derive(Debug, Clone, Default)]
pub struct GrpcOptions {
    pub protos: Vec<PathBuf>,
    pub import_paths: Vec<PathBuf>,
}
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub http2: bool,
}
