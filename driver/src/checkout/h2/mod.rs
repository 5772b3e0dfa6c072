//! A lean gRPC client for unary calls over plaintext HTTP/2 (issue #14), speaking the
//! protocol itself (RFC 9113, prior knowledge) instead of going through the `h2` crate, whose
//! generality (priorities, a stream store hashed by SipHash, HPACK encoding per request, frame
//! structs moved through queues) cost more than everything else per request.
//!
//! - [`conn`]: one task per connection does the socket I/O: it applies the frames it reads
//!   ([`reader`]) and writes everything queued since its last write in one write, so the
//!   frames of the calls made in one tick leave together.
//! - [`state`]: what the task and the callers share under one mutex: the write queue, a slab
//!   of stream slots, the peer's settings and the send windows. A caller appends its frames
//!   and waits on its own slot: no channel or task per call, and its buffers are reused.
//! - [`headers`]: the request's header block is encoded once per (path, deadline) with
//!   HPACK's static table and plain literals, and copied per call; replies are decoded with
//!   `loona-hpack` (the maintained fork of the `hpack` crate used by the loona server: it
//!   keeps the dynamic table, decodes Huffman, and returns errors rather than panicking on
//!   malformed blocks), under a header-list size cap.
//! - [`frame`]: frame headers and the control frames; [`status`]: gRPC's mapping of HTTP
//!   statuses and resets.
//!
//! Plaintext (`http://`) only; TLS targets use tonic's channel (see `checkout::builtin`).

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use http::{HeaderMap, Uri};
use prost::Message;
use tonic::Code;

mod conn;
mod frame;
mod headers;
mod limits;
mod reader;
mod redial;
mod shared;
mod state;
mod status;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_diff;
#[cfg(test)]
mod tests_flow;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_measure;
#[cfg(test)]
mod tests_raw;

pub use status::CallError;

use crate::error::DriverError;
use crate::spec::Metadata;
use redial::Redial;
use state::{Handle, Refused, Shared, State};

/// Largest reply accepted: a purchase reply is tens of bytes.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// HTTP/2 flow-control windows we grant the server (stream, connection): large enough that
/// WINDOW_UPDATE frames are rare.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
/// Header blocks a user keeps encoded (one per method and deadline it calls with).
const BLOCK_CACHE: usize = 8;

/// One connection's handle, cloned by each of its users.
#[derive(Clone)]
pub struct LeanClient {
    conn: Handle,
    /// Which of the connection's incarnations `conn` is (see [`Redial`]).
    generation: u64,
    redial: Arc<Redial>,
    /// `http://authority`, to which a method's path is appended.
    origin: String,
    /// `content-type`, `te` and the run's metadata.
    metadata: Arc<HeaderMap>,
    /// Encoded request header blocks (and their header lists' sizes) by (path, deadline),
    /// most recent first.
    blocks: Vec<(String, Duration, Vec<u8>, u32)>,
    /// The request's gRPC message, and the reply's (buffers reused across calls).
    body: Vec<u8>,
    reply: Vec<u8>,
}

impl std::fmt::Debug for LeanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanClient")
            .field("origin", &self.origin)
            .finish()
    }
}

impl LeanClient {
    /// Connects to the plaintext `url` (`http://host:port`, already normalized) within
    /// `connect_timeout`; every call will carry `metadata` and its deadline (`grpc-timeout`).
    /// The connection is driven by a task on the current runtime.
    pub async fn connect(
        url: &str,
        metadata: &Metadata,
        connect_timeout: Duration,
    ) -> Result<Self, DriverError> {
        let failed = |reason: String| DriverError::Connect {
            target: url.to_string(),
            reason,
        };
        let authority = url
            .strip_prefix("http://")
            .ok_or_else(|| failed("the lean client speaks plaintext http:// only".into()))?;
        let conn = conn::dial(authority, connect_timeout)
            .await
            .map_err(|e| failed(super::error_chain(&e)))?;
        let mut headers = HeaderMap::new();
        metadata.apply(&mut headers);
        let redial = Arc::new(Redial::new(authority, connect_timeout, conn.clone()));
        Ok(Self {
            conn,
            generation: 0,
            redial,
            origin: url.to_string(),
            metadata: Arc::new(headers),
            blocks: Vec::new(),
            body: Vec::new(),
            reply: Vec::new(),
        })
    }

    /// The URI of `path` (`/package.Service/Method`) on this connection's server.
    pub fn uri(&self, path: &str) -> Result<Uri, DriverError> {
        format!("{}{path}", self.origin)
            .parse()
            .map_err(|e| DriverError::InvalidTarget {
                target: self.origin.clone(),
                reason: format!("{path}: {e}"),
            })
    }

    /// One unary call of `uri` with `message` and deadline `timeout` (sent as `grpc-timeout`;
    /// the caller enforces it); the reply or the status it came to.
    pub async fn unary<R: Message + Default>(
        &mut self,
        uri: &Uri,
        message: &impl Message,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.unary_with(uri, message, timeout, |bytes| R::decode(bytes))
            .await
    }

    /// [`LeanClient::unary`] with the reply's message decoded by `decode` (a dynamic message,
    /// whose type is known only at run time); a reply `decode` refuses is `INTERNAL`.
    ///
    /// A call whose stream the server never processed (REFUSED_STREAM, or above a GOAWAY's
    /// last stream id) is retried once, transparently, as grpc-go does.
    pub async fn unary_with<R>(
        &mut self,
        uri: &Uri,
        message: &impl Message,
        timeout: Duration,
        decode: impl FnOnce(&[u8]) -> Result<R, prost::DecodeError>,
    ) -> Result<R, CallError> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let block = self.block(path, timeout);
        self.encode(message);
        let mut retried = false;
        loop {
            let (index, id) = match self.open(block, timeout).await {
                Ok(opened) => opened,
                Err(code) => {
                    // Nothing was sent. Yield, so that a dead target's fast failures cannot
                    // keep the other tasks of this thread from running.
                    tokio::task::yield_now().await;
                    return Err(CallError::Status(code));
                }
            };
            let mut call = Call {
                conn: &self.conn,
                index,
                id,
                done: false,
            };
            let reply = &mut self.reply;
            let (result, unprocessed) = poll_fn(|cx| {
                let polled = call.conn.lock().poll_done(index, cx.waker(), reply);
                call.done = polled.is_ready();
                polled
            })
            .await;
            drop(call);
            if result.is_err() && unprocessed && !retried {
                retried = true;
                let n = self.redial.retried.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    stream = id,
                    retried = n,
                    "lean connection: the target never processed the stream; retrying once"
                );
                continue;
            }
            result.map_err(CallError::Status)?;
            return decode_reply(&self.reply, decode);
        }
    }

    /// Calls retried on this connection's users because the server never processed their
    /// stream (counted apart from their outcomes).
    #[cfg_attr(not(test), expect(dead_code, reason = "read by tests only for now"))]
    pub(crate) fn retried(&self) -> u64 {
        self.redial.retried.load(Ordering::Relaxed)
    }

    /// The index in `blocks` of the header block for `path` with deadline `timeout`.
    fn block(&mut self, path: &str, timeout: Duration) -> usize {
        if let Some(found) = self
            .blocks
            .iter()
            .position(|(p, t, _, _)| *t == timeout && p == path)
        {
            return found;
        }
        let authority = self.redial.authority.as_str();
        let (block, size) = headers::request_block(authority, path, timeout, &self.metadata);
        if self.blocks.len() >= BLOCK_CACHE {
            self.blocks.pop();
        }
        self.blocks
            .insert(0, (path.to_string(), timeout, block, size));
        0
    }

    /// Opens the call's stream (header block `block`, body `self.body`), waiting for a free
    /// stream when the server's limit is reached; when the connection is gone, it is replaced
    /// once for all its users (see [`redial`]; a call waits at most half its `timeout`, and at
    /// most `redial::MAX_CALL_WAIT`, for that). UNAVAILABLE when no connection can be had,
    /// INTERNAL when the request's headers are over the server's limit: nothing was sent.
    async fn open(&mut self, block: usize, timeout: Duration) -> Result<(u32, u32), Code> {
        let mut redialled = false;
        loop {
            let (_, _, bytes, size) = &self.blocks[block];
            match open_on(&self.conn, (bytes, *size), &self.body).await {
                Ok(opened) => return Ok(opened),
                Err(Refused::TooLarge) => {
                    tracing::debug!(
                        list = size,
                        "lean connection: the request's header list is over the target's \
                         SETTINGS_MAX_HEADER_LIST_SIZE; not sent"
                    );
                    return Err(Code::Internal);
                }
                Err(_) if redialled => return Err(Code::Unavailable),
                Err(_) => redialled = true,
            }
            (self.generation, self.conn) =
                self.redial.replace(self.generation, timeout / 2).await?;
        }
    }

    /// `message` as one uncompressed gRPC message in `self.body`: flag, 4-byte length,
    /// protobuf.
    fn encode(&mut self, message: &impl Message) {
        let len = message.encoded_len();
        self.body.clear();
        self.body.reserve(5 + len);
        self.body.push(0);
        // A purchase request is under 300 bytes (its strings are validated); saturating keeps
        // an impossible length from wrapping.
        self.body
            .extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        // Cannot fail: a Vec grows to fit.
        let _ = message.encode(&mut self.body);
    }
}

/// Opens a stream on `conn`, waiting while it is at its concurrent-stream limit; why not when
/// the connection takes no new streams or not this one.
async fn open_on(conn: &Shared, block: (&[u8], u32), body: &[u8]) -> Result<(u32, u32), Refused> {
    let mut waiting = Waiting {
        conn,
        queued: false,
    };
    let opened = poll_fn(|cx| {
        let polled = conn.update(|state| match state.open(block, body, cx.waker()) {
            Ok(opened) => Poll::Ready(Ok(opened)),
            Err(Refused::Full) => Poll::Pending,
            Err(refused) => Poll::Ready(Err(refused)),
        });
        waiting.queued = polled.is_pending();
        polled
    })
    .await;
    waiting.queued = false;
    opened
}

/// A caller queued for a free stream; if it goes away (its deadline) after being woken, the
/// wake-up passes to the next in line.
struct Waiting<'a> {
    conn: &'a Shared,
    queued: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.conn.update(State::pass_on);
        }
    }
}

/// A call in flight; dropped before its outcome (its deadline), its stream is cancelled
/// (RST_STREAM CANCEL) and its slot freed, and a late reply is ignored.
struct Call<'a> {
    conn: &'a Shared,
    index: u32,
    id: u32,
    done: bool,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.conn.update(|state| state.abandon(self.index, self.id));
    }
}

/// Exactly one uncompressed message in `all` (a reply's DATA), decoded by `decode`.
fn decode_reply<R>(
    all: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<R, prost::DecodeError>,
) -> Result<R, CallError> {
    let internal = Err(CallError::Status(Code::Internal));
    let Some((&[flag, a, b, c, d], message)) = all.split_first_chunk::<5>() else {
        return internal;
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if flag != 0 || len != message.len() {
        return internal;
    }
    decode(message).or(internal)
}
