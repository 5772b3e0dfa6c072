//! The tower layer that counts RPCs: in front of every service of the router (checkout, health,
//! reflection), it counts each request in flight, then by method and status code, and observes
//! its latency. The code is the response's `grpc-status` header: exact for unary calls (tonic
//! answers an error with headers only and OK in the trailers); a stream that fails after its
//! headers counts as OK. Without metrics ([`MetricsLayer::off`]) requests pass straight through.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::{BoxFuture, Either};
use http::{Request, Response};
use tonic::Code;

use super::Metrics;

/// Counts the requests of the services it wraps into `metrics` (nothing when off).
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    metrics: Option<Arc<Metrics>>,
}

impl MetricsLayer {
    /// Counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
        }
    }

    /// Passing requests through uncounted.
    pub fn off() -> Self {
        Self { metrics: None }
    }
}

impl<S> tower_layer::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// A service whose requests are counted (see [`MetricsLayer`]).
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

/// Decrements the in-flight gauge when the call ends, however it ends (cancelled included).
struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight().dec();
    }
}

impl<S, B, R> tower_service::Service<Request<B>> for MetricsService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<R>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(metrics) = self.metrics.clone() else {
            return Either::Left(self.inner.call(request));
        };
        let method = Metrics::method_index(request.uri().path());
        metrics.in_flight().inc();
        let in_flight = InFlight(metrics);
        let start = Instant::now();
        let call = self.inner.call(request);
        Either::Right(Box::pin(async move {
            let metrics = &in_flight.0;
            let result = call.await;
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32),
                Err(_) => Code::Internal,
            };
            metrics.record(method, code, start.elapsed());
            drop(in_flight);
            result
        }))
    }
}
