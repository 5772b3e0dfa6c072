//! The HTTP/JSON transport of a custom checkout: one [`HttpConnection`] per driver connection,
//! cloned for each virtual user on it, sending the spec's calls (`METHOD /path?query` with a
//! JSON body) and reading their replies.
//!
//! - **Protocol.** HTTP/1.1 with keep-alive, or HTTP/2 (`http2`: prior knowledge over
//!   plaintext, ALPN `h2` over TLS). Both go through a pool of [`hyper_util`]'s client that
//!   belongs to the connection and is shared by its clones: over HTTP/2 every user's request is
//!   a stream on one socket; over HTTP/1.1 a socket carries one request at a time, so the pool
//!   opens as many keep-alive sockets as there are requests in flight (1000 users really are in
//!   flight together) and reuses them.
//! - **TLS** for `https://` targets with the run's settings ([`crate::spec::ClientTls`]): the
//!   CA, the system's roots, `--insecure`, a client identity, `--authority` as the name
//!   verified, sent as SNI and as `Host`/`:authority` (the socket still goes to the target).
//! - **Headers**: the run's metadata (`-H`) on every request; `content-type: application/json`
//!   on requests with a body.
//! - **Replies**: the status and the body parsed as JSON (`None` when empty or not JSON). At
//!   most [`MAX_REPLY_BYTES`] of a body are read (the order listing: a cap of its own); a larger one is reported as
//!   `RESOURCE_EXHAUSTED` without reading further.
//! - **Failures** are statuses, never errors or panics. A socket that could not be opened
//!   (refused, unreachable, TLS refused) sent nothing, so nothing can have been bought: it is
//!   a refusal, reported as HTTP 503. Anything that fails once the request may have left (the
//!   connection reset or closed before a reply, a broken reply) is indeterminate: gRPC
//!   `UNKNOWN`, which the audit counts as "may have been applied". The deadline is the
//!   caller's: it drops the call's future, which abandons the request (its socket is closed).
//!
//! [`HttpConnection::connect`] opens one socket first, so an unreachable target, a certificate
//! that fails verification or a server that wants a client certificate is a connection error
//! before the run starts (over TLS without a client certificate it waits up to 250 ms for the
//! server's refusal, which TLS 1.3 sends after the handshake).

mod dial;
mod tls;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{HeaderMap, Method, Request, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::Code;

use super::Reply;
use crate::checkout::{CONNECT_TIMEOUT, error_chain};
use crate::error::DriverError;
use crate::spec::custom::{Call, CustomApi, ReplyStatus, Transport, Values};
use crate::spec::{Connection, Metadata};
use dial::Dialer;

/// Most bytes of a reply body read.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// How long an idle keep-alive socket stays in the pool.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One connection to an HTTP checkout (a pool of sockets over HTTP/1.1, one socket over
/// HTTP/2), cheap to clone for each virtual user on it (its clones share the pool).
#[derive(Clone)]
pub struct HttpConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<Dialer, Full<Bytes>>,
    scheme: Scheme,
    /// What `Host` / `:authority` say: `--authority`, else the target's.
    authority: Authority,
    metadata: Metadata,
}

impl std::fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConnection")
            .field("scheme", &self.inner.scheme)
            .field("authority", &self.inner.authority)
            .finish_non_exhaustive()
    }
}

/// A request of a call, rendered.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// Path and query, URL-escaped.
    pub path: String,
    /// A JSON document.
    pub body: Option<String>,
}

impl HttpConnection {
    /// One connection to `url` (normalized `http://` or `https://`), TLS and headers as
    /// `connection` says, HTTP/1.1 or HTTP/2 as `api` says.
    pub async fn connect(
        url: &str,
        connection: &Connection,
        api: &Arc<CustomApi>,
    ) -> Result<Self, DriverError> {
        let http2 = matches!(&api.transport, Transport::Http(options) if options.http2);
        Self::open(url, connection, http2).await
    }

    /// Sends `call` with its templates rendered from `values`; its status and JSON body.
    pub async fn call(&mut self, call: &Call, values: &Values<'_>) -> Reply {
        self.call_capped(call, values, MAX_REPLY_BYTES).await
    }

    /// [`Self::call`] reading at most `cap` bytes of the reply's body (the order listing's
    /// may be large).
    pub async fn call_capped(&mut self, call: &Call, values: &Values<'_>, cap: usize) -> Reply {
        let Ok(method) = Method::from_bytes(call.target.as_bytes()) else {
            return status_only(ReplyStatus::Grpc(Code::InvalidArgument));
        };
        let path = match &call.path {
            Some(template) => {
                let mut path = String::with_capacity(64);
                template.render_into(values, &mut path);
                path
            }
            None => "/".to_string(),
        };
        let body = call.body.as_ref().map(|template| {
            let mut body = String::with_capacity(128);
            template.render_into(values, &mut body);
            body
        });
        let request = Outgoing {
            method: &method,
            path,
            body,
        };
        self.send_capped(request, cap).await
    }

    /// One connection to `url` (normalized `http://` or `https://`), TLS and headers as
    /// `connection` says, speaking HTTP/2 when `http2`. Opens one socket to check that the
    /// target is there and its certificate is accepted.
    pub async fn open(
        url: &str,
        connection: &Connection,
        http2: bool,
    ) -> Result<Self, DriverError> {
        connection.check_target(url)?;
        let invalid = |reason: String| DriverError::InvalidTarget {
            target: url.to_string(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| invalid(format!("not a valid URL ({e})")))?;
        let (Some(scheme), Some(target)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
            return Err(invalid(
                "expected http://host:port or https://host:port".into(),
            ));
        };
        let tls = if scheme == Scheme::HTTPS {
            let defaults = crate::spec::ClientTls::default();
            let settings = connection.tls.as_ref().unwrap_or(&defaults);
            Some(tls::configure(url, target.host(), settings, http2)?)
        } else {
            None
        };
        let authority = match connection.tls.as_ref().and_then(|t| t.authority.as_deref()) {
            Some(name) => name
                .parse()
                .map_err(|e| invalid(format!("--authority {name}: {e}")))?,
            None => target.clone(),
        };
        let dialer = Dialer {
            address: target.as_str().into(),
            tls,
            timeout: CONNECT_TIMEOUT,
        };
        let anonymous = connection.tls.as_ref().is_none_or(|t| t.identity.is_none());
        let anonymous_tls = anonymous && scheme == Scheme::HTTPS;
        dialer
            .probe(anonymous)
            .await
            .map_err(|e| DriverError::Connect {
                target: url.to_string(),
                reason: explain(&e, anonymous_tls),
            })?;
        let client = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .build(dialer);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                metadata: connection.metadata.clone(),
            }),
        })
    }

    /// Sends `request` and reads its reply (see the module's doc for what failures become).
    pub async fn send(&self, request: Outgoing<'_>) -> Reply {
        self.send_capped(request, MAX_REPLY_BYTES).await
    }

    /// [`Self::send`] reading at most `cap` bytes of the body.
    pub async fn send_capped(&self, request: Outgoing<'_>, cap: usize) -> Reply {
        let inner = &*self.inner;
        let path = match PathAndQuery::from_maybe_shared(Bytes::from(request.path)) {
            Ok(path) => path,
            Err(e) => {
                tracing::debug!("not a valid request path: {e}");
                return status_only(ReplyStatus::Grpc(Code::InvalidArgument));
            }
        };
        let uri = Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(path)
            .build();
        let Ok(uri) = uri else {
            tracing::debug!("not a valid request URI");
            return status_only(ReplyStatus::Grpc(Code::InvalidArgument));
        };
        let builder = Request::builder().method(request.method.clone()).uri(uri);
        let mut headers = HeaderMap::with_capacity(4);
        let body = match request.body {
            Some(body) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        headers.insert(
            header::ACCEPT,
            header::HeaderValue::from_static("application/json"),
        );
        inner.metadata.apply(&mut headers);
        let Ok(mut http_request) = builder.body(Full::new(body)) else {
            return status_only(ReplyStatus::Grpc(Code::InvalidArgument));
        };
        *http_request.headers_mut() = headers;
        let response = match inner.client.request(http_request).await {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                tracing::debug!("no connection to the checkout: {}", error_chain(&e));
                return status_only(ReplyStatus::Http(503));
            }
            Err(e) => {
                tracing::debug!(
                    "request failed after it may have been sent: {}",
                    error_chain(&e)
                );
                return status_only(ReplyStatus::Grpc(Code::Unknown));
            }
        };
        let status = ReplyStatus::Http(response.status().as_u16());
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return status_only(ReplyStatus::Grpc(Code::ResourceExhausted));
        }
        let bytes = match Limited::new(response.into_body(), cap).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return status_only(ReplyStatus::Grpc(Code::ResourceExhausted));
            }
            Err(e) => {
                tracing::debug!("reply body broken: {e}");
                return status_only(ReplyStatus::Grpc(Code::Unknown));
            }
        };
        let body = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        Reply { status, body }
    }
}

fn status_only(status: ReplyStatus) -> Reply {
    Reply { status, body: None }
}

/// A dial failure with its causes, and what to do about a certificate that was refused.
/// `anonymous_tls`: over TLS without a client certificate.
fn explain(err: &dial::DialError, anonymous_tls: bool) -> String {
    let mut reason = error_chain(err);
    if reason.contains("invalid peer certificate") {
        reason.push_str(
            " (the server's certificate was not accepted: give --ca-cert with the CA that \
             signed it, --authority with a name it holds, or --insecure to skip verification)",
        );
    } else if reason.contains("CertificateRequired") {
        reason.push_str(" (the server requires a client certificate: give --cert and --key)");
    } else if anonymous_tls && matches!(err, dial::DialError::Tls { .. }) {
        reason.push_str(" (if the server requires client certificates, give --cert and --key)");
    }
    reason
}
