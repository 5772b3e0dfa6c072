//! A checkout of the team's own, described by flags or a spec file instead of our proto: the
//! request templates, the rules that read its replies, and where its stock is. Everything is
//! parsed and checked once when the spec is built ([`template`], [`path`], [`rules`]); the
//! transports that use it live in [`crate::checkout`].

pub mod file;
pub mod orders;
pub mod path;
pub mod rules;
pub mod template;

use std::path::PathBuf;

pub use file::{CustomFile, MAX_SPEC_FILE_BYTES};
pub use orders::{OrdersFile, OrdersSpec};
pub use path::FieldPath;
pub use rules::{OutcomeRules, ReplyStatus, Rule};
pub use template::{Escape, Template, Values, Var};

/// A checkout of the team's own, checked and compiled once.
#[derive(Debug, Clone)]
pub struct CustomApi {
    /// A short name for reports: the purchase call, e.g. `shop.v1.Orders/PlaceOrder` or
    /// `POST /api/v1/checkout/safe`.
    pub name: String,
    /// How replies are read.
    pub rules: OutcomeRules,
    /// The purchase each virtual user sends.
    pub purchase: Call,
    /// The call that reads the stock, and where in its reply the stock is.
    pub stock_call: Call,
    pub stock: FieldPath,
    /// The call that restocks to `{{stock}}` before a run, if the checkout has one.
    pub reset: Option<Call>,
    /// The call that lists the checkout's orders, and how its reply is read, if it has one.
    pub orders: Option<OrdersSpec>,
    pub transport: Transport,
    /// `http://host:port` when the calls were given as whole URLs: the target unless
    /// `--target` says otherwise.
    pub origin: Option<String>,
    /// The description as a spec file (flags folded in): what a coordinator ships to workers.
    pub source: String,
}

/// One call of a custom checkout.
#[derive(Debug, Clone)]
pub struct Call {
    /// gRPC: the method, `package.Service/Method`. HTTP: the method, e.g. `POST`.
    pub target: String,
    /// HTTP only: the path and query, URL-escaped, e.g. `/api/v1/checkout/safe`.
    pub path: Option<Template>,
    /// The JSON body (gRPC: the request message in proto3 JSON). `None`: empty (gRPC: `{}`).
    pub body: Option<Template>,
}

impl Call {
    /// Whether the call's path or body holds `var` (e.g. whether a purchase sends its request
    /// id at all).
    pub fn uses(&self, var: Var) -> bool {
        [&self.path, &self.body]
            .into_iter()
            .flatten()
            .any(|t| t.uses(var))
    }
}

/// How the checkout is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Grpc(GrpcOptions),
    Http(HttpOptions),
}

/// Where the gRPC messages' descriptors come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcOptions {
    /// `.proto` files to compile in-process; empty: ask the server (reflection).
    pub protos: Vec<PathBuf>,
    /// Where their imports are found [default: each file's folder].
    pub import_paths: Vec<PathBuf>,
}

/// HTTP settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpOptions {
    /// HTTP/2 (prior knowledge over plaintext, ALPN over TLS) instead of HTTP/1.1 keep-alive.
    pub http2: bool,
}

impl CustomApi {
    /// A description received as spec text (from a coordinator or a client): size-checked,
    /// parsed and compiled like a file. `.proto` files named in it would be another machine's,
    /// so they are refused: the receiver asks the server's reflection instead.
    pub fn from_source(text: &str) -> Result<Self, CustomError> {
        if text.len() as u64 > MAX_SPEC_FILE_BYTES {
            return Err(CustomError::Spec(format!(
                "larger than {MAX_SPEC_FILE_BYTES} bytes"
            )));
        }
        let api = CustomFile::parse(text)?.compile()?;
        api.check_portable()?;
        Ok(api)
    }

    /// Whether this description works on another machine: it names no local `.proto` files.
    pub fn check_portable(&self) -> Result<(), CustomError> {
        match &self.transport {
            Transport::Grpc(g) if !g.protos.is_empty() => Err(CustomError::Spec(
                "--proto files stay on this machine: a distributed run of a gRPC checkout finds its methods through the server's reflection".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the reset call is there.
    pub fn can_reset(&self) -> bool {
        self.reset.is_some()
    }
}

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
    #[error("cannot read the checkout spec {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid checkout spec: {0}")]
    Spec(String),
}
