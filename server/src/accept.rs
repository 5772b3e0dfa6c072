//! The accept loop: our own stream of connections over tokio's `TcpListener`, fed to tonic.
//!
//! - At most `max_connections` are served at once; further ones are accepted and closed at once
//!   (one throttled log line per interval, not one per connection).
//! - When accepting fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the loop backs
//!   off [`ACCEPT_BACKOFF`] instead of spinning, and logs once per interval.
//! - Each connection is wrapped in [`Conn`], which closes it when it has not sent a byte of the
//!   HTTP/2 preface within the handshake timeout, or when it has had no call in flight for the
//!   idle timeout (calls are counted by [`crate::guard`] through [`ConnState`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::throttle::Throttle;

/// Pause after an accept failed for lack of file descriptors or memory.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Limits the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct AcceptLimits {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl From<&crate::hardening::Hardening> for AcceptLimits {
    fn from(h: &crate::hardening::Hardening) -> Self {
        Self {
            max_connections: h.max_connections as usize,
            handshake_timeout: h.handshake_timeout,
            idle_timeout: h.idle_timeout,
        }
    }
}

/// Calls in flight on one connection and when the last one ended.
#[derive(Debug)]
pub struct ConnState {
    active: AtomicUsize,
    last_active: Mutex<Instant>,
}

impl ConnState {
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
        }
    }

    /// Marks a call in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> ActiveCall {
        self.active.fetch_add(1, Ordering::AcqRel);
        ActiveCall(self.clone())
    }

    fn idle_since(&self) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(*self.last_active.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One call in flight on a connection.
#[derive(Debug)]
pub struct ActiveCall(Arc<ConnState>);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        *self.0.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What tonic puts into each request's extensions for connections from [`incoming`].
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub tcp: TcpConnectInfo,
    pub state: Arc<ConnState>,
}

/// An accepted connection with its handshake and idle deadlines.
#[derive(Debug)]
pub struct Conn {
    io: TcpStream,
    info: ConnInfo,
    limits: AcceptLimits,
    opened: Instant,
    started: bool,
    deadline: Pin<Box<Sleep>>,
    _slot: Slot,
}

static HANDSHAKE_TIMEOUTS: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);
static IDLE_CLOSES: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);
static REFUSED: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);
static EXHAUSTED: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);
static FAILED: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);

impl Conn {
    /// `Some(error)` when a deadline has passed; otherwise arms the timer for the next one.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let now = Instant::now();
        let due = if !self.started {
            self.opened + self.limits.handshake_timeout
        } else {
            // With calls in flight the connection is not idle: no timer needed, the end of the
            // last call wakes the connection (it writes the response) and arms it again.
            self.info.state.idle_since()? + self.limits.idle_timeout
        };
        if due > now {
            if self.deadline.deadline() != due {
                self.deadline.as_mut().reset(due);
            }
            if self.deadline.as_mut().poll(cx).is_pending() {
                return None;
            }
        }
        let (throttle, what) = if self.started {
            (&IDLE_CLOSES, "idle timeout")
        } else {
            (
                &HANDSHAKE_TIMEOUTS,
                "no HTTP/2 preface within the handshake timeout",
            )
        };
        if let Some(n) = throttle.hit() {
            tracing::info!(
                closed = n,
                peer = ?self.info.tcp.remote_addr,
                "closing connections: {what}"
            );
        }
        Some(io::Error::new(io::ErrorKind::TimedOut, what))
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.started = true;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// One of the `max_connections` places; freed when the connection drops.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections accepted from `listener` under `limits`, with TCP_NODELAY set. Never yields an
/// error: failed accepts are logged (throttled) and retried.
pub fn incoming(
    listener: TcpListener,
    limits: AcceptLimits,
) -> impl Stream<Item = Result<Conn, io::Error>> + Send {
    let open = Arc::new(AtomicUsize::new(0));
    futures::stream::unfold((listener, open), move |(listener, open)| async move {
        let conn = accept(&listener, &open, limits).await;
        Some((Ok(conn), (listener, open)))
    })
}

async fn accept(listener: &TcpListener, open: &Arc<AtomicUsize>, limits: AcceptLimits) -> Conn {
    loop {
        let (io, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) if is_exhaustion(&err) => {
                if let Some(n) = EXHAUSTED.hit() {
                    tracing::warn!(
                        failures = n,
                        %err,
                        "cannot accept connections (out of file descriptors or memory); \
                         backing off {ACCEPT_BACKOFF:?} per failure"
                    );
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            Err(err) => {
                // ECONNABORTED and friends: the peer gave up before we accepted it.
                if let Some(n) = FAILED.hit() {
                    tracing::debug!(failures = n, %err, "accept failed");
                }
                continue;
            }
        };
        if open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            open.fetch_sub(1, Ordering::AcqRel);
            if let Some(n) = REFUSED.hit() {
                tracing::warn!(
                    refused = n,
                    max = limits.max_connections,
                    %peer,
                    "connection limit reached: closing new connections at once"
                );
            }
            drop(io);
            continue;
        }
        let slot = Slot(open.clone());
        let _ = io.set_nodelay(true);
        let local: Option<SocketAddr> = io.local_addr().ok();
        let opened = Instant::now();
        return Conn {
            info: ConnInfo {
                tcp: TcpConnectInfo {
                    local_addr: local,
                    remote_addr: Some(peer),
                },
                state: Arc::new(ConnState::new()),
            },
            io,
            limits,
            opened,
            started: false,
            deadline: Box::pin(tokio::time::sleep_until(opened + limits.handshake_timeout)),
            _slot: slot,
        };
    }
}

fn is_exhaustion(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
