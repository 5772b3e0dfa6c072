//! A lean gRPC client for the built-in purchase calls, directly over `h2` (issue #14): one
//! HTTP/2 connection is one `h2` [`SendRequest`], shared by the connection's users without a
//! tower buffer, a spawned worker or a channel per call. The request headers (content type,
//! `te`, `grpc-timeout`, the run's `-H` metadata) are built once per connection; a call clones
//! them, encodes its message into the caller's buffer, sends HEADERS and DATA, and reads the
//! reply and the trailers. The connection's frames are written by one task, so requests made
//! in the same tick leave in the same write.
//!
//! Plaintext (`http://`) only; TLS targets use tonic's channel (see `checkout::builtin`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use prost::Message;
use tokio::net::TcpStream;
use tonic::Code;

mod status;
#[cfg(test)]
mod tests;

pub use status::CallError;
use status::{code_of_http, grpc_status, grpc_timeout};

use crate::error::DriverError;
use crate::spec::Metadata;

/// Largest reply accepted: a purchase reply is tens of bytes.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// HTTP/2 flow-control windows we grant the server (stream, connection): large enough that
/// WINDOW_UPDATE frames are rare.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;

/// One connection's handle, cloned by each of its users.
#[derive(Clone)]
pub struct LeanClient {
    send: SendRequest<Bytes>,
    /// Which of the connection's incarnations `send` belongs to (see [`Redial`]).
    generation: u64,
    redial: Arc<Redial>,
    /// `http://authority`, to which a method's path is appended.
    origin: String,
    /// Every call's headers: content type, `te`, the run's metadata and, as `deadline` says,
    /// `grpc-timeout` (rebuilt only when a call's deadline differs from the last one's).
    headers: HeaderMap,
    deadline: Option<Duration>,
    buf: BytesMut,
}

impl std::fmt::Debug for LeanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanClient")
            .field("origin", &self.origin)
            .finish()
    }
}

/// What the users of one connection share to replace it once it is gone (as tonic's channel
/// reconnects): the first to find it dead dials again, the others take the new one.
struct Redial {
    authority: String,
    connect_timeout: Duration,
    current: tokio::sync::Mutex<(u64, SendRequest<Bytes>)>,
}

/// Opens one HTTP/2 connection to `authority` and spawns the task that drives it.
async fn dial(authority: &str, connect_timeout: Duration) -> std::io::Result<SendRequest<Bytes>> {
    let connect = async {
        let tcp = TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(std::io::Error::other)
    };
    let (send, connection) = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {connect_timeout:?}"),
            )
        })??;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "lean connection ended");
        }
    });
    Ok(send)
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
        let send = dial(authority, connect_timeout)
            .await
            .map_err(|e| failed(super::error_chain(&e)))?;
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        metadata.apply(&mut headers);
        let redial = Arc::new(Redial {
            authority: authority.to_string(),
            connect_timeout,
            current: tokio::sync::Mutex::new((0, send.clone())),
        });
        Ok(Self {
            send,
            generation: 0,
            redial,
            origin: url.to_string(),
            headers,
            deadline: None,
            buf: BytesMut::new(),
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
    pub async fn unary_with<R>(
        &mut self,
        uri: &Uri,
        message: &impl Message,
        timeout: Duration,
        decode: impl FnOnce(&[u8]) -> Result<R, prost::DecodeError>,
    ) -> Result<R, CallError> {
        if self.deadline != Some(timeout) {
            static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
            // Digits and a unit letter: always a valid header value.
            if let Ok(value) = HeaderValue::try_from(grpc_timeout(timeout)) {
                self.headers.insert(&GRPC_TIMEOUT, value);
            }
            self.deadline = Some(timeout);
        }
        if let Err(code) = self.ready().await {
            // Nothing was sent. Yield, so that a dead target's fast failures cannot keep the
            // other tasks of this thread from running.
            tokio::task::yield_now().await;
            return Err(CallError::Status(code));
        }
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = self.headers.clone();
        let (response, mut stream) = self
            .send
            .send_request(request, false)
            .map_err(|_| CallError::Status(Code::Unavailable))?;
        stream.send_data(self.encode(message), true)?;
        let (parts, mut body) = response.await?.into_parts();
        if parts.status != StatusCode::OK {
            return Err(CallError::Status(code_of_http(parts.status)));
        }
        if let Some(code) = grpc_status(&parts.headers) {
            // Trailers-only: a status and no message (an OK without a message breaks unary).
            return Err(CallError::Status(if code == Code::Ok {
                Code::Internal
            } else {
                code
            }));
        }
        let mut reply = Reply::default();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            // The window is ours to give back: the data is consumed (or the call fails).
            let _ = body.flow_control().release_capacity(chunk.len());
            reply.push(chunk)?;
        }
        match body.trailers().await?.as_ref().and_then(grpc_status) {
            Some(Code::Ok) => reply.decode(decode),
            Some(code) => Err(CallError::Status(code)),
            None => Err(CallError::Status(Code::Unknown)),
        }
    }

    /// Waits until the connection takes a new stream; when it is gone, replaces it once for
    /// all its users. UNAVAILABLE when no connection can be had: the call was not sent.
    async fn ready(&mut self) -> Result<(), Code> {
        let ready = futures::future::poll_fn(|cx| self.send.poll_ready(cx)).await;
        if ready.is_ok() {
            return Ok(());
        }
        let mut current = self.redial.current.lock().await;
        if current.0 == self.generation {
            let send = dial(&self.redial.authority, self.redial.connect_timeout)
                .await
                .map_err(|err| {
                    tracing::debug!(%err, "lean connection: redial failed");
                    Code::Unavailable
                })?;
            *current = (current.0.wrapping_add(1), send);
        }
        (self.generation, self.send) = (current.0, current.1.clone());
        drop(current);
        futures::future::poll_fn(|cx| self.send.poll_ready(cx))
            .await
            .map_err(|_| Code::Unavailable)
    }

    /// `message` as one uncompressed gRPC message: flag, 4-byte length, protobuf.
    fn encode(&mut self, message: &impl Message) -> Bytes {
        let len = message.encoded_len();
        self.buf.reserve(5 + len);
        self.buf.put_u8(0);
        // A purchase request is under 300 bytes (its strings are validated); saturating keeps
        // an impossible length from wrapping.
        self.buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        // Cannot fail: the buffer was reserved to fit.
        let _ = message.encode(&mut self.buf);
        self.buf.split().freeze()
    }
}

/// The DATA of a reply: usually one chunk, kept as it came.
#[derive(Default)]
struct Reply {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl Reply {
    fn len(&self) -> usize {
        self.rest
            .as_ref()
            .map_or_else(|| self.first.as_ref().map_or(0, Bytes::len), BytesMut::len)
    }

    fn push(&mut self, chunk: Bytes) -> Result<(), CallError> {
        if self.len().saturating_add(chunk.len()) > MAX_REPLY_BYTES {
            return Err(CallError::Status(Code::ResourceExhausted));
        }
        match (&self.first, &mut self.rest) {
            (None, _) => self.first = Some(chunk),
            (Some(_), Some(rest)) => rest.extend_from_slice(&chunk),
            (Some(first), None) => {
                let mut rest = BytesMut::from(&first[..]);
                rest.extend_from_slice(&chunk);
                self.rest = Some(rest);
            }
        }
        Ok(())
    }

    /// Exactly one uncompressed message, decoded by `decode`.
    fn decode<R>(
        self,
        decode: impl FnOnce(&[u8]) -> Result<R, prost::DecodeError>,
    ) -> Result<R, CallError> {
        let all: &[u8] = match (&self.first, &self.rest) {
            (_, Some(rest)) => rest,
            (Some(first), None) => first,
            (None, None) => &[],
        };
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
}
