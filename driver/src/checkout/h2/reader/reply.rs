//! The frames that carry a reply: DATA (flow control, the reply's size cap) and complete
//! header blocks (response headers, 1xx skipped, trailers).

use tonic::Code;

use super::super::frame::{self, Head, flag, reason};
use super::super::headers::ReplyHeaders;
use super::super::state::State;
use super::super::status::code_of_http;
use super::super::{CONNECTION_WINDOW, MAX_REPLY_BYTES, STREAM_WINDOW};
use super::{ConnError, Reader, bad_padding, violation};

impl Reader {
    pub(super) fn data(
        &mut self,
        state: &mut State,
        head: Head,
        payload: &[u8],
    ) -> Result<(), ConnError> {
        let len = i64::from(head.len);
        if len > self.conn_recv_window {
            return Err(violation(
                reason::FLOW_CONTROL_ERROR,
                format!(
                    "DATA of {len} bytes on stream {} over the connection's window",
                    head.stream
                ),
            ));
        }
        self.conn_recv_window -= len;
        if self.conn_recv_window <= i64::from(CONNECTION_WINDOW / 2) {
            let used = i64::from(CONNECTION_WINDOW) - self.conn_recv_window;
            frame::put_window_update(&mut state.out, 0, u32::try_from(used).unwrap_or(0));
            self.conn_recv_window = i64::from(CONNECTION_WINDOW);
        }
        let data = frame::unpad(&head, payload).ok_or_else(|| bad_padding(&head))?;
        let end = head.has(flag::END_STREAM);
        // A stream we closed or cancelled: late DATA is dropped.
        let Some((_, slot)) = state.slot_of(head.stream) else {
            return Ok(());
        };
        if len > slot.recv_window {
            let id = head.stream;
            tracing::debug!(
                stream = id,
                "lean connection: DATA over the stream's window"
            );
            state.finish(id, Err(Code::Internal), Some(reason::FLOW_CONTROL_ERROR));
            return Ok(());
        }
        slot.recv_window -= len;
        let outcome = if !slot.headers_seen {
            Some((Code::Internal, Some(reason::PROTOCOL_ERROR)))
        } else if slot.reply.len() + data.len() > MAX_REPLY_BYTES {
            Some((Code::ResourceExhausted, (!end).then_some(reason::CANCEL)))
        } else {
            slot.reply.extend_from_slice(data);
            // A reply without trailers has no status.
            end.then_some((Code::Unknown, None))
        };
        if outcome.is_none() && slot.recv_window <= i64::from(STREAM_WINDOW / 2) {
            let used = i64::from(STREAM_WINDOW) - slot.recv_window;
            slot.recv_window = i64::from(STREAM_WINDOW);
            let increment = u32::try_from(used).unwrap_or(0);
            frame::put_window_update(&mut state.out, head.stream, increment);
        }
        if let Some((code, reset)) = outcome {
            state.finish(head.stream, Err(code), reset);
        }
        Ok(())
    }

    /// A complete header block: decoded (always, for the HPACK table), then applied.
    pub(super) fn end_block(&mut self, state: &mut State) -> Result<(), ConnError> {
        let Some((id, end)) = self.continuing.take() else {
            return Ok(());
        };
        let reply = self.hpack.decode(&self.block)?;
        state.stats.replied = true;
        let Some((_, slot)) = state.slot_of(id) else {
            return Ok(());
        };
        let keep_open = |end: bool| (!end).then_some(reason::CANCEL);
        let (result, reset) = if slot.headers_seen {
            trailers(reply, end)
        } else {
            match response(reply) {
                // Informational (1xx) headers are not the response: skipped (RFC 9113 §8.1).
                _ if informational(&reply) && !end => return Ok(()),
                None if end => (Err(Code::Unknown), None),
                None => {
                    slot.headers_seen = true;
                    return Ok(());
                }
                Some(code) => (Err(code), keep_open(end)),
            }
        };
        state.finish(id, result, reset);
        Ok(())
    }
}

/// An informational (1xx) response's headers: a final response follows.
fn informational(reply: &ReplyHeaders) -> bool {
    reply.status.is_some_and(|s| (100..200).contains(&s)) && reply.grpc_status.is_none()
}

/// The failure response headers amount to, `None` when a reply may follow (200 and no
/// `grpc-status`).
fn response(reply: ReplyHeaders) -> Option<Code> {
    if reply.too_large {
        return Some(Code::Internal);
    }
    if reply.status != Some(200) {
        return Some(code_of_http(reply.status.unwrap_or(0)));
    }
    // Trailers-only: a status and no message (an OK without a message breaks unary).
    match reply.grpc_status? {
        Some(0) => Some(Code::Internal),
        Some(code) => Some(Code::from_i32(code)),
        None => Some(Code::Unknown),
    }
}

/// The outcome trailers amount to, and the reset to send when they did not end the stream.
fn trailers(reply: ReplyHeaders, end: bool) -> (Result<(), Code>, Option<u32>) {
    if !end {
        return (Err(Code::Internal), Some(reason::PROTOCOL_ERROR));
    }
    let result = match reply.grpc_status {
        _ if reply.too_large => Err(Code::Internal),
        Some(Some(0)) => Ok(()),
        Some(Some(code)) => Err(Code::from_i32(code)),
        Some(None) | None => Err(Code::Unknown),
    };
    (result, None)
}
