//! The request body of a call that takes one message: fails with `INVALID_ARGUMENT` when a
//! second gRPC message starts (tonic would silently drop it), says when the first has passed
//! whole to the service (after which a call that writes may have been applied) and when the
//! body has ended (for the read timeout of [`crate::budget`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame};
use tonic::Status;
use tonic::body::Body;

/// A request body that fails with `INVALID_ARGUMENT` when a second gRPC message starts.
pub(super) struct OneMessage {
    inner: Body,
    header: [u8; 5],
    have: usize,
    remaining: u64,
    messages: u32,
    /// Set once the whole first message has passed.
    delivered: Arc<AtomicBool>,
    /// Set once the body has ended (end of stream or trailers).
    complete: Arc<AtomicBool>,
}

impl OneMessage {
    pub(super) fn new(inner: Body, delivered: Arc<AtomicBool>, complete: Arc<AtomicBool>) -> Self {
        if inner.is_end_stream() {
            complete.store(true, Ordering::Release);
        }
        Self {
            inner,
            header: [0; 5],
            have: 0,
            remaining: 0,
            messages: 0,
            delivered,
            complete,
        }
    }

    /// Follows the length-prefixed framing through `data`.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == self.header.len() {
                self.have = 0;
                self.messages += 1;
                if self.messages > 1 {
                    return Err(Status::invalid_argument(
                        "this call takes exactly one request message; got more",
                    ));
                }
                let [_, a, b, c, d] = self.header;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        Ok(())
    }
}

impl http_body::Body for OneMessage {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let ended = match &frame {
            None => true,
            Some(Ok(frame)) => frame.is_trailers() || self.inner.is_end_stream(),
            Some(Err(_)) => false,
        };
        if ended {
            self.complete.store(true, Ordering::Release);
        }
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            if let Err(status) = self.scan(data) {
                return Poll::Ready(Some(Err(status)));
            }
            if self.messages == 1 && self.have == 0 && self.remaining == 0 {
                self.delivered.store(true, Ordering::Release);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let mut one = OneMessage::new(Body::empty(), Arc::default(), Arc::default());
        // One 3-byte message split across chunks, then the start of a second one.
        assert!(one.scan(&[0, 0, 0]).is_ok());
        assert!(one.scan(&[0, 3, 1, 2]).is_ok());
        assert!(one.scan(&[3]).is_ok());
        assert!(one.scan(&[0, 0]).is_ok());
        assert!(one.scan(&[0, 0, 0]).is_err());
        let mut empty = OneMessage::new(Body::empty(), Arc::default(), Arc::default());
        assert!(empty.scan(&[0, 0, 0, 0, 0]).is_ok());
        assert!(empty.scan(&[0, 0, 0, 0, 0]).is_err());
    }
}
