//! The tower layer in front of every service of a hardened server. For each request it:
//!
//! - refuses what is not gRPC: a method other than POST gets HTTP 405, a content-type other
//!   than `application/grpc` or `application/grpc+proto` HTTP 415 (as the gRPC HTTP/2 spec
//!   asks), before any service decodes a byte;
//! - takes one of the server-wide stream permits and gives the call its read timeout
//!   ([`crate::budget`]), when the layer has a budget: a request past the cap, or whose body
//!   does not arrive in time, is answered `UNAVAILABLE` without reaching the service;
//! - checks the admin token on admin paths ([`crate::admin`]);
//! - refuses a second request message on calls that take one (unary and server-streaming):
//!   `INVALID_ARGUMENT` instead of tonic's silent discard;
//! - counts the call as in flight on its connection until its response body ends (the idle
//!   timeout of [`crate::accept`] only closes connections with nothing in flight);
//! - ends health watches when the shutdown starts and every other call or stream still open
//!   when the grace period is over, with `UNAVAILABLE` ([`crate::drain`]); a purchase or Reset
//!   whose request had reached the service by then may have been applied, and ends with
//!   `UNKNOWN` instead (`UNAVAILABLE` promises that nothing was written).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Frame;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::body::Body;

use crate::accept::{ActiveCall, ConnInfo};
use crate::admin::{self, AdminError};
use crate::budget::StreamBudget;
use crate::drain::{Drain, Phase};
use crate::hardening::AdminToken;
use crate::throttle::Throttle;

use one_message::OneMessage;

mod one_message;

/// Calls whose client sends a stream of messages; every other call takes exactly one.
const CLIENT_STREAMING: &[&str] = &[
    "/flashsale.v1.Coordinator/Join",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Calls that change the sale: cut off once their request reached the service, they may or may
/// not have been applied.
const WRITES: &[&str] = &[
    "/flashsale.v1.Checkout/PurchaseBuggy",
    "/flashsale.v1.Checkout/PurchaseUnstable",
    "/flashsale.v1.Checkout/PurchaseSafe",
    "/flashsale.v1.Checkout/Reset",
];

/// Streams that end as soon as the shutdown starts (after their last update went out).
const ENDS_ON_DRAIN: &[&str] = &["/grpc.health.v1.Health/Watch"];

static REFUSALS: Throttle = Throttle::new(crate::throttle::LOG_INTERVAL);

/// Why a request was refused before reaching a service.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("method {0} not allowed: gRPC uses POST")]
    Method(Method),
    #[error("content-type {0:?} is not gRPC (application/grpc or application/grpc+proto)")]
    ContentType(String),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

impl Refusal {
    fn into_response(self) -> Response<Body> {
        let plain = |code: StatusCode, allow: bool| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = code;
            if allow {
                response
                    .headers_mut()
                    .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
            }
            response
        };
        match self {
            Refusal::Method(_) => plain(StatusCode::METHOD_NOT_ALLOWED, true),
            Refusal::ContentType(_) => plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, false),
            Refusal::Admin(err) => Status::from(err).into_http(),
        }
    }
}

/// Whether `value` names gRPC with the protobuf codec.
fn is_grpc_proto(value: &[u8]) -> bool {
    let media = value.split(|&b| b == b';').next().unwrap_or_default();
    let media = media.trim_ascii();
    media.eq_ignore_ascii_case(b"application/grpc")
        || media.eq_ignore_ascii_case(b"application/grpc+proto")
}

fn check(
    token: Option<&AdminToken>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    if method != Method::POST {
        return Err(Refusal::Method(method.clone()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !is_grpc_proto(content_type) {
        return Err(Refusal::ContentType(
            String::from_utf8_lossy(content_type).into_owned(),
        ));
    }
    admin::authorize(token, path, headers)?;
    Ok(())
}

/// Adds a [`Guard`] in front of every service.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    token: Option<Arc<AdminToken>>,
    drain: Drain,
    budget: Option<StreamBudget>,
}

impl GuardLayer {
    /// A guard without a stream budget (no cap across connections, no read timeout).
    pub fn new(token: Option<AdminToken>, drain: Drain) -> Self {
        Self {
            token: token.map(Arc::new),
            drain,
            budget: None,
        }
    }

    /// Caps the streams open across every connection this layer serves and gives calls that
    /// take one message the budget's read timeout.
    pub fn with_budget(mut self, budget: StreamBudget) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<Request<Body>> for Guard<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<GuardedBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let path = request.uri().path().to_string();
        if let Err(refusal) = check(
            self.layer.token.as_deref(),
            request.method(),
            &path,
            request.headers(),
        ) {
            if let Some(n) = REFUSALS.hit() {
                tracing::info!(refused = n, %path, reason = %refusal, "refusing requests");
            }
            let response = refusal.into_response().map(GuardedBody::plain);
            return Box::pin(async move { Ok(response) });
        }
        let permit = match self
            .layer
            .budget
            .as_ref()
            .map(|b| b.admit(&path))
            .transpose()
        {
            Ok(permit) => permit,
            Err(status) => {
                let response = status.into_http().map(GuardedBody::plain);
                return Box::pin(async move { Ok(response) });
            }
        };
        let conn = request.extensions().get::<ConnInfo>().cloned();
        let active = conn.map(|conn| {
            // Keep `Request::remote_addr()` working for the services.
            request.extensions_mut().insert(conn.tcp.clone());
            conn.state.begin()
        });
        // Set once the request message has passed to the service.
        let delivered = Arc::new(AtomicBool::new(false));
        let mut read_deadline = None;
        if !CLIENT_STREAMING.contains(&path.as_str()) {
            let delivered = delivered.clone();
            let complete = Arc::new(AtomicBool::new(false));
            if let Some(budget) = &self.layer.budget {
                read_deadline = Some(budget.read_deadline(complete.clone()));
            }
            request = request.map(|body| Body::new(OneMessage::new(body, delivered, complete)));
        }
        let writes = WRITES.contains(&path.as_str());
        let ends_at = if ENDS_ON_DRAIN.contains(&path.as_str()) {
            Phase::Draining
        } else {
            Phase::Closing
        };
        let drain = self.layer.drain.clone();
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            let read_deadline = async move {
                match read_deadline {
                    Some(deadline) => deadline.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // The call first: by the time the read deadline is first polled its body is
                // usually whole, and then it needs no timer.
                biased;
                response = inner.call(request) => response.map(|response| {
                    response.map(|body| {
                        GuardedBody::new(body, (active, permit), drain.reached(ends_at))
                    })
                }),
                status = read_deadline => Ok(status.into_http().map(GuardedBody::plain)),
                () = drain.reached(Phase::Closing) => {
                    let status = if writes && delivered.load(Ordering::Acquire) {
                        cut_off_in_flight()
                    } else {
                        shutting_down()
                    };
                    Ok(status.into_http().map(GuardedBody::plain))
                }
            }
        })
    }
}

fn shutting_down() -> Status {
    Status::unavailable("server shutting down")
}

/// A call that changes the sale, cut off by the shutdown after its request reached the service.
fn cut_off_in_flight() -> Status {
    Status::unknown(
        "outcome unknown: the server shut down while this call was in progress; it may or may \
         not have been applied",
    )
}

/// A response body that keeps its call counted as in flight and ends with `UNAVAILABLE` when
/// its shutdown phase comes.
pub struct GuardedBody {
    inner: Body,
    end: Option<BoxFuture<()>>,
    ended: bool,
    /// Counts the call as in flight on its connection and holds its stream permit.
    _held: (Option<ActiveCall>, Option<OwnedSemaphorePermit>),
}

impl GuardedBody {
    fn new(
        inner: Body,
        held: (Option<ActiveCall>, Option<OwnedSemaphorePermit>),
        end: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            inner,
            end: Some(Box::pin(end)),
            ended: false,
            _held: held,
        }
    }

    fn plain(inner: Body) -> Self {
        Self {
            inner,
            end: None,
            ended: false,
            _held: (None, None),
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Pending;
        };
        if end.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.ended = true;
        let mut trailers = HeaderMap::new();
        let _ = shutting_down().add_header(&mut trailers);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC; charset=utf-8",
        ] {
            assert!(is_grpc_proto(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json",
            "application/grpc+json",
            "application/grpc-web",
        ] {
            assert!(!is_grpc_proto(bad.as_bytes()), "{bad}");
        }
    }
}
