//! Flags that protect the server from hostile or careless clients: the admin token, connection
//! and stream limits, the memory budget, timeouts and the shutdown grace period. Flattened into
//! [`crate::ServerConfig`]; the mechanisms live in [`crate::admin`], [`crate::accept`],
//! [`crate::budget`], [`crate::guard`] and [`crate::drain`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::budget::StreamBudget;

/// Connections served at once; more are accepted and closed at once.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// Concurrent HTTP/2 streams one connection may open.
pub const DEFAULT_MAX_STREAMS: u32 = 256;
/// A connection that has not started HTTP/2 (sent a byte of its preface) by then is closed.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no call in flight for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// HTTP/2 PING interval, and how long the answer may take.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a call may take until its response starts (a client's grpc-timeout may be shorter).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long in-flight calls may take to finish after SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// HTTP/2 streams a client may reset before the server accepted them (rapid reset, CVE-2023-44487).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server itself may reset on one connection because of client errors.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// The bearer token `Reset` and `ListOrders` require. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token: 1 to 1024 visible ASCII characters (what an HTTP header value may hold).
    pub fn new(raw: &str) -> Result<Self, HardeningError> {
        let token = raw.trim();
        if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(HardeningError::BadToken);
        }
        Ok(Self(token.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, compared without returning early on the first
    /// difference (the time depends only on the lengths).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff = expected.len() ^ presented.len();
        for i in 0..expected.len().max(presented.len()) {
            let x = expected.get(i).copied().unwrap_or(0);
            let y = presented.get(i).copied().unwrap_or(0);
            diff |= usize::from(x ^ y);
        }
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// What is wrong with the hardening settings.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error("the admin token must be 1 to 1024 visible ASCII characters")]
    BadToken,
    #[error("cannot read the admin token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Admin authorisation, limits and timeouts of the server.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Hardening {
    /// Bearer token that Reset and ListOrders require (`authorization: Bearer TOKEN`).
    /// Without one (and without --admin-token-file) they are open to anyone who reaches the
    /// port.
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true,
          value_parser = |raw: &str| AdminToken::new(raw).map_err(|e| e.to_string()))]
    pub admin_token: Option<AdminToken>,

    /// Read the admin token from this file (trailing whitespace ignored), so it does not show
    /// in `ps`.
    #[arg(
        long,
        env = "FLASHSALE_ADMIN_TOKEN_FILE",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,

    /// Connections served at once; further ones are accepted and closed at once.
    #[arg(long, env = "FLASHSALE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "FLASHSALE_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Close a connection that has not started HTTP/2 within this time.
    #[arg(long, env = "FLASHSALE_HANDSHAKE_TIMEOUT", default_value = "10s",
          value_parser = parse_positive)]
    pub handshake_timeout: Duration,

    /// Close a connection that has had no call in flight for this long.
    #[arg(long, env = "FLASHSALE_IDLE_TIMEOUT", default_value = "5m",
          value_parser = parse_positive)]
    pub idle_timeout: Duration,

    /// Interval of HTTP/2 keepalive PINGs.
    #[arg(long, env = "FLASHSALE_KEEPALIVE_INTERVAL", default_value = "30s",
          value_parser = parse_positive)]
    pub keepalive_interval: Duration,

    /// Close a connection whose keepalive PING is not answered within this time.
    #[arg(long, env = "FLASHSALE_KEEPALIVE_TIMEOUT", default_value = "10s",
          value_parser = parse_positive)]
    pub keepalive_timeout: Duration,

    /// Longest a call may take until its response starts; longer ones get DEADLINE_EXCEEDED.
    #[arg(long, env = "FLASHSALE_REQUEST_TIMEOUT", default_value = "30s",
          value_parser = parse_positive)]
    pub request_timeout: Duration,

    /// Memory the server may spend on open request streams across all connections; the cap on
    /// streams is this divided by the measured bytes per held stream (8 KiB, rounded up), so
    /// 512MiB allows 65,536. Units: B, KiB, MiB, GiB.
    #[arg(long, env = "FLASHSALE_MEMORY_BUDGET", default_value = "512MiB",
          value_parser = crate::budget::parse_bytes)]
    pub memory_budget: u64,

    /// Cap on streams open across all connections, instead of the one --memory-budget gives;
    /// past it new streams are answered UNAVAILABLE at once.
    #[arg(long, env = "FLASHSALE_MAX_TOTAL_STREAMS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_total_streams: Option<u32>,

    /// A call that takes one request message must have received it whole (end of stream)
    /// within this time; otherwise it is answered UNAVAILABLE and its stream reset.
    #[arg(long, env = "FLASHSALE_REQUEST_READ_TIMEOUT", default_value = "5s",
          value_parser = parse_positive)]
    pub request_read_timeout: Duration,

    /// After SIGTERM/SIGINT: how long in-flight calls may take to finish before the remaining
    /// ones are ended with UNAVAILABLE and the server exits.
    #[arg(long, env = "FLASHSALE_SHUTDOWN_GRACE", default_value = "5s",
          value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            admin_token: None,
            admin_token_file: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_streams: DEFAULT_MAX_STREAMS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            memory_budget: crate::budget::DEFAULT_MEMORY_BUDGET,
            max_total_streams: None,
            request_read_timeout: crate::budget::DEFAULT_REQUEST_READ_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl Hardening {
    /// The admin token from the flag or the file, if any.
    pub fn admin_token(&self) -> Result<Option<AdminToken>, HardeningError> {
        if let Some(token) = &self.admin_token {
            return Ok(Some(token.clone()));
        }
        let Some(path) = &self.admin_token_file else {
            return Ok(None);
        };
        let raw = std::fs::read_to_string(path).map_err(|source| HardeningError::TokenFile {
            path: path.clone(),
            source,
        })?;
        AdminToken::new(&raw).map(Some)
    }

    /// Streams allowed open across all connections: `--max-total-streams`, else
    /// `--memory-budget / BYTES_PER_STREAM`.
    pub fn total_streams(&self) -> u64 {
        match self.max_total_streams {
            Some(n) => u64::from(n),
            None => crate::budget::streams_for(self.memory_budget),
        }
    }

    /// The server-wide stream cap and read timeout, for [`crate::guard::GuardLayer::with_budget`].
    pub fn stream_budget(&self) -> StreamBudget {
        StreamBudget::new(self.total_streams(), self.request_read_timeout)
    }

    /// A tonic server builder with these limits and timeouts.
    pub fn builder(&self) -> tonic::transport::Server {
        tonic::transport::Server::builder()
            .max_concurrent_streams(self.max_streams)
            .http2_keepalive_interval(Some(self.keepalive_interval))
            .http2_keepalive_timeout(Some(self.keepalive_timeout))
            .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_ACCEPT_RESET_STREAMS))
            .http2_max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
            .http2_max_header_list_size(crate::budget::MAX_HEADER_LIST_SIZE)
            .timeout(self.request_timeout)
    }
}

fn parse_positive(raw: &str) -> Result<Duration, String> {
    match humantime::parse_duration(raw) {
        Ok(d) if d.is_zero() => Err("must be more than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(AdminToken::new("").is_err());
        assert!(AdminToken::new("has space").is_err());
        assert!(AdminToken::new("é").is_err());
        assert_eq!(AdminToken::new(" s3cret\n").unwrap().expose(), "s3cret");
        assert!(!format!("{:?}", AdminToken::new("s3cret").unwrap()).contains("s3cret"));
    }

    #[test]
    fn token_file() {
        let path = std::env::temp_dir().join(format!("flashsale-token-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let hardening = Hardening {
            admin_token_file: Some(path.clone()),
            ..Hardening::default()
        };
        assert_eq!(
            hardening.admin_token().unwrap().unwrap().expose(),
            "from-file"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(hardening.admin_token().is_err());
    }
}
