//! A channel to the checkout that adds the run's metadata (`-H`) to every call. The headers are
//! added to the HTTP/2 request directly: no per-call conversion, lock or allocation beyond the
//! headers themselves.

use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::Channel;
use tonic::transport::channel::ResponseFuture;

use crate::spec::Metadata;

/// A [`Channel`] that sends [`Metadata`] on every call.
#[derive(Debug, Clone)]
pub struct CheckoutChannel {
    channel: Channel,
    metadata: Metadata,
}

impl CheckoutChannel {
    pub fn new(channel: Channel, metadata: Metadata) -> Self {
        Self { channel, metadata }
    }
}

impl tower_service::Service<http::Request<Body>> for CheckoutChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        self.metadata.apply(request.headers_mut());
        self.channel.call(request)
    }
}
