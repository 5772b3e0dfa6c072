//! The server-wide memory budget: a cap on the request streams open across all connections, and
//! a read timeout for streams whose request has not arrived whole.
//!
//! - Every request takes one of [`StreamBudget::max_streams`] permits in [`crate::guard`] (after
//!   its gRPC and admin checks, before any service sees it) and keeps it until its response body
//!   ends. A request that finds
//!   none left is answered at once with `UNAVAILABLE` (nothing was read, nothing written: the
//!   gRPC meaning of HTTP/2's REFUSED_STREAM, which hyper gives a service no way to send), so
//!   its stream is freed as soon as the reply is out (h2 then resets it with NO_ERROR).
//! - The cap defaults to `--memory-budget / BYTES_PER_STREAM`, the measured cost of one held
//!   half-open stream (headers received, body never sent) rounded up; `--max-total-streams`
//!   sets it directly.
//! - A call that takes one request message (unary and server-streaming) must have received its
//!   whole request body within `--request-read-timeout`; otherwise it is answered `UNAVAILABLE`
//!   (the service never saw the request), its stream reset and its memory freed. Client-streaming
//!   calls (reflection, the coordinator's `Join`) send for as long as they live and have no such
//!   timeout; they count against the cap like any other stream.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::throttle::Throttle;

/// Measured memory (RSS) the server holds per half-open request stream, rounded up: ~6.5 KB
/// measured with 10k-40k streams held (release build, docs/server.md "Memory budget").
pub const BYTES_PER_STREAM: u64 = 8 * 1024;
/// Default `--memory-budget`: 512 MiB, i.e. 65,536 streams.
pub const DEFAULT_MEMORY_BUDGET: u64 = 512 * 1024 * 1024;
/// Default `--request-read-timeout`.
pub const DEFAULT_REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request message any service decodes (the largest legitimate one is under 1 KiB);
/// tonic's own default is 4 MiB.
pub const MAX_REQUEST_MESSAGE: usize = 16 * 1024;
/// SETTINGS_MAX_HEADER_LIST_SIZE the server announces and enforces (hyper's default, set
/// explicitly); a larger header block is refused (HTTP 431 / REFUSED_STREAM by h2).
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Most streams the cap may allow, whatever the budget (tokio's semaphore limit is larger).
pub const MAX_TOTAL_STREAMS: u64 = 1 << 24;

static REFUSED: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);
static READ_TIMEOUTS: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);

/// The streams `budget` bytes pay for: `budget / BYTES_PER_STREAM`, at least 1, at most
/// [`MAX_TOTAL_STREAMS`].
pub fn streams_for(budget: u64) -> u64 {
    (budget / BYTES_PER_STREAM).clamp(1, MAX_TOTAL_STREAMS)
}

/// The cap on streams open across connections, and the read timeout. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamBudget {
    permits: Arc<Semaphore>,
    max_streams: usize,
    read_timeout: Duration,
}

impl StreamBudget {
    /// A budget of `max_streams` (clamped to 1..=[`MAX_TOTAL_STREAMS`]) streams.
    pub fn new(max_streams: u64, read_timeout: Duration) -> Self {
        let max_streams =
            usize::try_from(max_streams.clamp(1, MAX_TOTAL_STREAMS)).unwrap_or(usize::MAX);
        Self {
            permits: Arc::new(Semaphore::new(max_streams)),
            max_streams,
            read_timeout,
        }
    }

    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Streams open now.
    pub fn in_use(&self) -> usize {
        self.max_streams
            .saturating_sub(self.permits.available_permits())
    }

    /// A permit for one stream, or the status to refuse it with.
    pub fn admit(&self, path: &str) -> Result<OwnedSemaphorePermit, Status> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            if let Some(n) = REFUSED.hit() {
                tracing::warn!(
                    refused = n,
                    max = self.max_streams,
                    %path,
                    "stream limit across connections reached: refusing new streams at once"
                );
            }
            Status::unavailable(format!(
                "server busy: {} streams open across all connections (its --max-total-streams / \
                 --memory-budget limit); nothing was done, retry later",
                self.max_streams
            ))
        })
    }

    /// Resolves when the request body watched by `complete` has not ended within the read
    /// timeout; never resolves once it has.
    pub fn read_deadline(
        &self,
        complete: Arc<AtomicBool>,
    ) -> impl Future<Output = Status> + Send + 'static {
        let timeout = self.read_timeout;
        async move {
            // Most bodies are whole by the first poll (the guard polls the call first): no timer.
            if complete.load(Ordering::Acquire) {
                return std::future::pending().await;
            }
            tokio::time::sleep(timeout).await;
            if complete.load(Ordering::Acquire) {
                return std::future::pending().await;
            }
            if let Some(n) = READ_TIMEOUTS.hit() {
                tracing::info!(
                    ended = n,
                    ?timeout,
                    "ending calls whose request did not arrive within the read timeout"
                );
            }
            Status::unavailable(format!(
                "the request did not arrive whole within the server's read timeout \
                 ({timeout:?}); nothing was done"
            ))
        }
    }
}

/// Parses a byte size: a number with an optional unit B, K/KB/KiB, M/MB/MiB, G/GB/GiB (all
/// powers of 1024; case-insensitive).
pub fn parse_bytes(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a size such as 512MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("unknown unit in `{raw}` (B, KiB, MiB or GiB)")),
    };
    match number.checked_mul(1 << shift) {
        Some(0) => Err("must be more than 0".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{raw}` is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("64 mb").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("2G").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        for bad in [
            "",
            "0",
            "MiB",
            "5 parsecs",
            "-1M",
            "99999999999999999999G",
            "1.5G",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(streams_for(DEFAULT_MEMORY_BUDGET), 65_536);
        assert_eq!(streams_for(1), 1);
        assert_eq!(streams_for(u64::MAX), MAX_TOTAL_STREAMS);
    }

    #[tokio::test]
    async fn permits_run_out_and_come_back() {
        let budget = StreamBudget::new(2, Duration::from_secs(1));
        let a = budget.admit("/a").unwrap();
        let _b = budget.admit("/b").unwrap();
        assert_eq!(budget.in_use(), 2);
        let refused = budget.admit("/c").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        drop(a);
        assert!(budget.admit("/d").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn read_deadline_only_for_incomplete_bodies() {
        let budget = StreamBudget::new(1, Duration::from_secs(5));
        let status = budget.read_deadline(Arc::default()).await;
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let complete = Arc::new(AtomicBool::new(true));
        let done =
            tokio::time::timeout(Duration::from_secs(60), budget.read_deadline(complete)).await;
        assert!(done.is_err(), "a complete body is never cut off");
    }
}
