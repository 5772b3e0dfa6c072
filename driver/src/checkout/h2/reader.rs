//! The frames a server sends, applied to the connection's state (RFC 9113 §6): replies
//! complete their streams, SETTINGS / PING are acknowledged, WINDOW_UPDATE opens the send
//! windows, GOAWAY and RST_STREAM fail what the server will not answer. A violation is a
//! [`ConnError`] that closes the connection.

use tonic::Code;

use super::frame::{self, HEAD_LEN, Head, flag, kind, reason, setting};
use super::headers::{CompressionError, Decoder, ReplyHeaders};
use super::state::State;
use super::status::{code_of_http, code_of_reset};
use super::{CONNECTION_WINDOW, MAX_REPLY_BYTES, STREAM_WINDOW};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("HTTP/2 protocol violation (error code {code:#x}): {what}")]
    Protocol { code: u32, what: &'static str },
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

impl ConnError {
    /// The GOAWAY error code we send for it, if we send one.
    pub fn goaway_code(&self) -> Option<u32> {
        match self {
            ConnError::Io(_) | ConnError::Closed => None,
            ConnError::Protocol { code, .. } => Some(*code),
            ConnError::Compression(_) => Some(reason::COMPRESSION_ERROR),
        }
    }
}

fn violation(code: u32, what: &'static str) -> ConnError {
    ConnError::Protocol { code, what }
}

/// The connection's reading side: HPACK state, a header block being continued, and the
/// receive windows.
pub struct Reader {
    hpack: Decoder,
    /// The stream and END_STREAM of a header block awaiting CONTINUATION.
    continuing: Option<(u32, bool)>,
    block: Vec<u8>,
    conn_recv_window: i64,
    /// The peer's first SETTINGS came.
    pub settings_seen: bool,
}

impl Reader {
    pub fn new() -> Self {
        Self {
            hpack: Decoder::new(),
            continuing: None,
            block: Vec::new(),
            conn_recv_window: i64::from(CONNECTION_WINDOW),
            settings_seen: false,
        }
    }

    /// Applies the complete frames at the start of `bytes`; how many bytes they took.
    pub fn read(&mut self, state: &mut State, bytes: &[u8]) -> Result<usize, ConnError> {
        let mut at = 0;
        while let Some(head) = Head::parse(&bytes[at..]) {
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(violation(
                    reason::FRAME_SIZE_ERROR,
                    "frame over our maximum size",
                ));
            }
            let end = at + HEAD_LEN + head.len as usize;
            let Some(payload) = bytes.get(at + HEAD_LEN..end) else {
                break;
            };
            self.frame(state, head, payload)?;
            at = end;
        }
        Ok(at)
    }

    fn frame(&mut self, state: &mut State, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if let Some((stream, _)) = self.continuing
            && (head.kind != kind::CONTINUATION || head.stream != stream)
        {
            return Err(violation(reason::PROTOCOL_ERROR, "expected CONTINUATION"));
        }
        let on_stream = head.stream != 0;
        let needs_stream = matches!(
            head.kind,
            kind::DATA | kind::HEADERS | kind::PRIORITY | kind::RST_STREAM | kind::CONTINUATION
        );
        let needs_zero = matches!(head.kind, kind::SETTINGS | kind::PING | kind::GOAWAY);
        if needs_stream && !on_stream || needs_zero && on_stream {
            return Err(violation(
                reason::PROTOCOL_ERROR,
                "frame on the wrong stream",
            ));
        }
        if needs_stream && head.kind != kind::PRIORITY && !state.was_opened(head.stream) {
            return Err(violation(reason::PROTOCOL_ERROR, "frame on an idle stream"));
        }
        match head.kind {
            kind::DATA => self.data(state, head, payload),
            kind::HEADERS => {
                let mut block = frame::unpad(&head, payload)
                    .ok_or(violation(reason::PROTOCOL_ERROR, "bad padding"))?;
                if head.has(flag::PRIORITY) {
                    block = block
                        .get(5..)
                        .ok_or(violation(reason::FRAME_SIZE_ERROR, "short HEADERS"))?;
                }
                self.block.clear();
                self.block.extend_from_slice(block);
                self.continuing = Some((head.stream, head.has(flag::END_STREAM)));
                if head.has(flag::END_HEADERS) {
                    self.end_block(state)?;
                }
                Ok(())
            }
            kind::CONTINUATION => {
                if self.continuing.is_none() {
                    return Err(violation(reason::PROTOCOL_ERROR, "unexpected CONTINUATION"));
                }
                if self.block.len() + payload.len() > 4 * super::headers::MAX_HEADER_LIST as usize {
                    return Err(violation(
                        reason::ENHANCE_YOUR_CALM,
                        "header block too long",
                    ));
                }
                self.block.extend_from_slice(payload);
                if head.has(flag::END_HEADERS) {
                    self.end_block(state)?;
                }
                Ok(())
            }
            kind::PRIORITY => Ok(()),
            kind::RST_STREAM => {
                let code = u32_at(payload, 4)?;
                state.finish(head.stream, Err(code_of_reset(code)), None);
                Ok(())
            }
            kind::SETTINGS => self.settings(state, head, payload),
            kind::PUSH_PROMISE => Err(violation(reason::PROTOCOL_ERROR, "push is disabled")),
            kind::PING => {
                let payload: &[u8; 8] = payload
                    .try_into()
                    .map_err(|_| violation(reason::FRAME_SIZE_ERROR, "PING is not 8 bytes"))?;
                if !head.has(flag::ACK) {
                    frame::put_ping_ack(&mut state.out, payload);
                }
                Ok(())
            }
            kind::GOAWAY => {
                let last = u32_at(payload, payload.len().max(8))? & 0x7fff_ffff;
                state.draining = true;
                // Streams above `last` were not processed: safe to retry elsewhere.
                state.fail_above(Some(last), Code::Unavailable);
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(state, head, payload),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn data(&mut self, state: &mut State, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let len = i64::from(head.len);
        if len > self.conn_recv_window {
            return Err(violation(
                reason::FLOW_CONTROL_ERROR,
                "DATA over the window",
            ));
        }
        self.conn_recv_window -= len;
        if self.conn_recv_window <= i64::from(CONNECTION_WINDOW / 2) {
            let used = i64::from(CONNECTION_WINDOW) - self.conn_recv_window;
            frame::put_window_update(&mut state.out, 0, u32::try_from(used).unwrap_or(0));
            self.conn_recv_window = i64::from(CONNECTION_WINDOW);
        }
        let data =
            frame::unpad(&head, payload).ok_or(violation(reason::PROTOCOL_ERROR, "bad padding"))?;
        let end = head.has(flag::END_STREAM);
        // A stream we closed or cancelled: late DATA is dropped.
        let Some((_, slot)) = state.slot_of(head.stream) else {
            return Ok(());
        };
        if len > slot.recv_window {
            let id = head.stream;
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
    fn end_block(&mut self, state: &mut State) -> Result<(), ConnError> {
        let Some((id, end)) = self.continuing.take() else {
            return Ok(());
        };
        let reply = self.hpack.decode(&self.block)?;
        let Some((_, slot)) = state.slot_of(id) else {
            return Ok(());
        };
        let keep_open = |end: bool| (!end).then_some(reason::CANCEL);
        let (result, reset) = if slot.headers_seen {
            trailers(reply, end)
        } else {
            match response(reply) {
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

    fn settings(&mut self, state: &mut State, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.has(flag::ACK) {
            return match payload.is_empty() {
                true => Ok(()),
                false => Err(violation(
                    reason::FRAME_SIZE_ERROR,
                    "SETTINGS ACK with payload",
                )),
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(violation(
                reason::FRAME_SIZE_ERROR,
                "SETTINGS not in 6-byte entries",
            ));
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            match id {
                setting::MAX_CONCURRENT_STREAMS => {
                    state.max_concurrent = usize::try_from(value).unwrap_or(usize::MAX);
                }
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(violation(reason::FLOW_CONTROL_ERROR, "window too large"));
                    }
                    let delta = value - state.peer_initial_window;
                    state.peer_initial_window = value;
                    state.adjust_stream_windows(delta)?;
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&value) {
                        return Err(violation(reason::PROTOCOL_ERROR, "bad MAX_FRAME_SIZE"));
                    }
                    state.max_frame = value as usize;
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(violation(reason::PROTOCOL_ERROR, "bad ENABLE_PUSH"));
                }
                // HEADER_TABLE_SIZE: our encoder uses no dynamic table; MAX_HEADER_LIST_SIZE:
                // the header list we send is small; unknown settings are ignored (§6.5.2).
                _ => {}
            }
        }
        frame::put_settings_ack(&mut state.out);
        self.settings_seen = true;
        state.wake_waiters();
        state.pump();
        Ok(())
    }

    fn window_update(
        &mut self,
        state: &mut State,
        head: Head,
        payload: &[u8],
    ) -> Result<(), ConnError> {
        let increment = i64::from(u32_at(payload, 4)? & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(violation(reason::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            state.conn_send_window += increment;
            if state.conn_send_window > frame::MAX_WINDOW {
                return Err(violation(reason::FLOW_CONTROL_ERROR, "window overflow"));
            }
        } else if let Some((_, slot)) = state.slot_of(head.stream) {
            slot.send_window += increment;
            if increment == 0 || slot.send_window > frame::MAX_WINDOW {
                let code = if increment == 0 {
                    reason::PROTOCOL_ERROR
                } else {
                    reason::FLOW_CONTROL_ERROR
                };
                state.finish(head.stream, Err(Code::Internal), Some(code));
            }
        }
        state.pump();
        Ok(())
    }
}

/// The first u32 of a frame payload that must be `len` bytes long (at least 4).
fn u32_at(payload: &[u8], len: usize) -> Result<u32, ConnError> {
    match payload.first_chunk::<4>() {
        Some(b) if payload.len() == len => Ok(u32::from_be_bytes(*b)),
        _ => Err(violation(
            reason::FRAME_SIZE_ERROR,
            "frame of the wrong length",
        )),
    }
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
