//! The frames a server sends, applied to the connection's state (RFC 9113 §6): replies
//! complete their streams, SETTINGS / PING are acknowledged, WINDOW_UPDATE opens the send
//! windows, GOAWAY and RST_STREAM fail what the server will not answer. A violation is a
//! [`ConnError`] that closes the connection; it names what the server did (issue #25).

use std::borrow::Cow;

use tonic::Code;

use super::frame::{self, HEAD_LEN, Head, flag, kind, reason, setting};
use super::headers::{CompressionError, Decoder, ReplyHeaders};
use super::limits::{self, MAX_CONTINUATIONS, MAX_PENDING_PING_ACKS, MAX_PENDING_SETTINGS_ACKS};
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
    #[error("{}: {what}", limits::reason_name(*.code))]
    Protocol { code: u32, what: Cow<'static, str> },
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

fn violation(code: u32, what: impl Into<Cow<'static, str>>) -> ConnError {
    ConnError::Protocol {
        code,
        what: what.into(),
    }
}

/// The connection's reading side: HPACK state, a header block being continued, and the
/// receive windows.
pub struct Reader {
    hpack: Decoder,
    /// The stream and END_STREAM of a header block awaiting CONTINUATION.
    continuing: Option<(u32, bool)>,
    /// The block's bytes so far (at most 4 × `MAX_HEADER_LIST`) and its CONTINUATION frames
    /// (at most [`MAX_CONTINUATIONS`]).
    block: Vec<u8>,
    continuations: u32,
    conn_recv_window: i64,
    /// The peer's first SETTINGS came.
    pub settings_seen: bool,
    /// The peer acknowledged our SETTINGS.
    pub settings_acked: bool,
    /// Reading stopped before a PING or SETTINGS (its type) whose acknowledgement would pass
    /// the cap: the I/O task must write the acknowledgements out first.
    pub stalled: Option<u8>,
}

impl Reader {
    pub fn new() -> Self {
        Self {
            hpack: Decoder::new(),
            continuing: None,
            block: Vec::new(),
            continuations: 0,
            conn_recv_window: i64::from(CONNECTION_WINDOW),
            settings_seen: false,
            settings_acked: false,
            stalled: None,
        }
    }

    /// Applies the complete frames at the start of `bytes`; how many bytes they took. Stops
    /// early (see [`Reader::stalled`]) at a frame whose acknowledgement must wait.
    pub fn read(&mut self, state: &mut State, bytes: &[u8]) -> Result<usize, ConnError> {
        self.read_frames(state, bytes, false)
    }

    /// [`Reader::read`] up to and including the server's first SETTINGS (the connection's
    /// opening); the frames after it are left for the I/O task.
    pub fn read_opening(&mut self, state: &mut State, bytes: &[u8]) -> Result<usize, ConnError> {
        self.read_frames(state, bytes, true)
    }

    fn read_frames(
        &mut self,
        state: &mut State,
        bytes: &[u8],
        opening: bool,
    ) -> Result<usize, ConnError> {
        let mut at = 0;
        while let Some(head) = Head::parse(&bytes[at..]) {
            // The first frame must be SETTINGS (RFC 9113 §3.4), whole frames counted.
            if !self.settings_seen && (head.kind != kind::SETTINGS || head.has(flag::ACK)) {
                return Err(violation(
                    reason::PROTOCOL_ERROR,
                    format!(
                        "the server's first frame was {}, not SETTINGS",
                        frame::kind_name(head.kind)
                    ),
                ));
            }
            if head.len > frame::DEFAULT_MAX_FRAME {
                return Err(violation(
                    reason::FRAME_SIZE_ERROR,
                    format!(
                        "{} frame of {} bytes on stream {}, over our maximum frame size",
                        frame::kind_name(head.kind),
                        head.len,
                        head.stream
                    ),
                ));
            }
            let end = at + HEAD_LEN + head.len as usize;
            let Some(payload) = bytes.get(at + HEAD_LEN..end) else {
                break;
            };
            let (pings, settings) = state.acks.pending();
            let acked = head.has(flag::ACK);
            if !acked
                && (head.kind == kind::PING && pings >= MAX_PENDING_PING_ACKS
                    || head.kind == kind::SETTINGS && settings >= MAX_PENDING_SETTINGS_ACKS)
            {
                self.stalled = Some(head.kind);
                break;
            }
            self.frame(state, head, payload)?;
            at = end;
            if opening && self.settings_seen {
                break;
            }
        }
        Ok(at)
    }

    fn frame(&mut self, state: &mut State, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if let Some((stream, _)) = self.continuing
            && (head.kind != kind::CONTINUATION || head.stream != stream)
        {
            return Err(violation(
                reason::PROTOCOL_ERROR,
                format!(
                    "{} frame on stream {} where CONTINUATION of stream {stream} was due",
                    frame::kind_name(head.kind),
                    head.stream
                ),
            ));
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
                format!(
                    "{} frame on stream {}",
                    frame::kind_name(head.kind),
                    head.stream
                ),
            ));
        }
        if needs_stream && head.kind != kind::PRIORITY && !state.was_opened(head.stream) {
            return Err(violation(
                reason::PROTOCOL_ERROR,
                format!(
                    "{} frame on idle stream {}",
                    frame::kind_name(head.kind),
                    head.stream
                ),
            ));
        }
        match head.kind {
            kind::DATA => self.data(state, head, payload),
            kind::HEADERS => {
                let mut block = frame::unpad(&head, payload).ok_or_else(|| bad_padding(&head))?;
                if head.has(flag::PRIORITY) {
                    block = block.get(5..).ok_or_else(|| invalid_size(&head))?;
                }
                self.block.clear();
                self.block.extend_from_slice(block);
                self.continuations = 0;
                self.continuing = Some((head.stream, head.has(flag::END_STREAM)));
                if head.has(flag::END_HEADERS) {
                    self.end_block(state)?;
                }
                Ok(())
            }
            kind::CONTINUATION => {
                if self.continuing.is_none() {
                    return Err(violation(
                        reason::PROTOCOL_ERROR,
                        format!("CONTINUATION without HEADERS on stream {}", head.stream),
                    ));
                }
                self.continuations += 1;
                if self.continuations > MAX_CONTINUATIONS {
                    return Err(violation(
                        reason::ENHANCE_YOUR_CALM,
                        format!(
                            "more than {MAX_CONTINUATIONS} CONTINUATION frames in one header \
                             block on stream {}",
                            head.stream
                        ),
                    ));
                }
                if self.block.len() + payload.len() > 4 * super::headers::MAX_HEADER_LIST as usize {
                    return Err(violation(
                        reason::ENHANCE_YOUR_CALM,
                        format!("header block over 64 KiB on stream {}", head.stream),
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
                let code = u32_at(&head, payload, 4)?;
                if code == reason::REFUSED_STREAM {
                    // Never processed (RFC 9113 §8.7): the call may be retried.
                    state.refuse(head.stream);
                } else {
                    if code != reason::CANCEL && code != reason::NO_ERROR {
                        tracing::debug!(
                            stream = head.stream,
                            code = %limits::reason_name(code),
                            "lean connection: the target reset a stream"
                        );
                    }
                    state.finish(head.stream, Err(code_of_reset(code)), None);
                }
                Ok(())
            }
            kind::SETTINGS => self.settings(state, head, payload),
            kind::PUSH_PROMISE => Err(violation(
                reason::PROTOCOL_ERROR,
                format!("PUSH_PROMISE on stream {}: push is disabled", head.stream),
            )),
            kind::PING => {
                let payload: &[u8; 8] = payload.try_into().map_err(|_| invalid_size(&head))?;
                if head.has(flag::ACK) {
                    return Ok(());
                }
                if !state.acks.ping() {
                    return Err(violation(
                        reason::ENHANCE_YOUR_CALM,
                        format!(
                            "PING flood: over {MAX_PENDING_PING_ACKS} acknowledgements unsent \
                             (the target sends PINGs and does not read)"
                        ),
                    ));
                }
                frame::put_ping_ack(&mut state.out, payload);
                Ok(())
            }
            kind::GOAWAY => {
                let last = u32_at(&head, payload, payload.len().max(8))? & 0x7fff_ffff;
                let code = payload
                    .get(4..8)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if code != reason::NO_ERROR {
                    let debug = limits::debug_text(payload.get(8..).unwrap_or_default());
                    let cause = format!(
                        "GOAWAY {} from the target: {debug}",
                        limits::reason_name(code)
                    );
                    tracing::debug!(%cause, last, "lean connection");
                    state.stats.cause = Some(cause.into());
                }
                state.draining = true;
                // Streams above `last` were not processed: safe to retry elsewhere.
                state.refuse_above(last);
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
    fn end_block(&mut self, state: &mut State) -> Result<(), ConnError> {
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

    fn settings(&mut self, state: &mut State, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.has(flag::ACK) {
            self.settings_acked = true;
            return match payload.is_empty() {
                true => Ok(()),
                false => Err(violation(
                    reason::FRAME_SIZE_ERROR,
                    format!("SETTINGS acknowledgement with {} bytes", payload.len()),
                )),
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(violation(
                reason::FRAME_SIZE_ERROR,
                format!("SETTINGS of {} bytes, not 6-byte entries", payload.len()),
            ));
        }
        if !state.acks.settings() {
            return Err(violation(
                reason::ENHANCE_YOUR_CALM,
                format!(
                    "SETTINGS flood: over {MAX_PENDING_SETTINGS_ACKS} acknowledgements unsent \
                     (the target sends SETTINGS and does not read)"
                ),
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
                        return Err(violation(
                            reason::FLOW_CONTROL_ERROR,
                            format!("SETTINGS_INITIAL_WINDOW_SIZE of {value}"),
                        ));
                    }
                    let delta = value - state.peer_initial_window;
                    state.peer_initial_window = value;
                    state.adjust_stream_windows(delta)?;
                }
                setting::MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..=frame::MAX_MAX_FRAME).contains(&value) {
                        return Err(violation(
                            reason::PROTOCOL_ERROR,
                            format!("SETTINGS_MAX_FRAME_SIZE of {value}"),
                        ));
                    }
                    state.max_frame = value as usize;
                }
                setting::ENABLE_PUSH if value > 1 => {
                    return Err(violation(
                        reason::PROTOCOL_ERROR,
                        format!("SETTINGS_ENABLE_PUSH of {value}"),
                    ));
                }
                // A request whose header list is larger is not sent (INTERNAL, as grpc-go).
                setting::MAX_HEADER_LIST_SIZE => state.peer_max_header_list = value,
                // HEADER_TABLE_SIZE: our encoder uses no dynamic table; unknown settings are
                // ignored (§6.5.2).
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
        let increment = i64::from(u32_at(&head, payload, 4)? & 0x7fff_ffff);
        if head.stream == 0 {
            if increment == 0 {
                return Err(violation(
                    reason::PROTOCOL_ERROR,
                    "WINDOW_UPDATE of 0 on the connection",
                ));
            }
            state.conn_send_window += increment;
            if state.conn_send_window > frame::MAX_WINDOW {
                return Err(violation(
                    reason::FLOW_CONTROL_ERROR,
                    "WINDOW_UPDATE past 2^31 - 1 on the connection",
                ));
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
fn u32_at(head: &Head, payload: &[u8], len: usize) -> Result<u32, ConnError> {
    match payload.first_chunk::<4>() {
        Some(b) if payload.len() == len => Ok(u32::from_be_bytes(*b)),
        _ => Err(invalid_size(head)),
    }
}

/// "frame of invalid size on stream N".
fn invalid_size(head: &Head) -> ConnError {
    violation(
        reason::FRAME_SIZE_ERROR,
        format!(
            "{} frame of invalid size ({} bytes) on stream {}",
            frame::kind_name(head.kind),
            head.len,
            head.stream
        ),
    )
}

fn bad_padding(head: &Head) -> ConnError {
    violation(
        reason::PROTOCOL_ERROR,
        format!(
            "{} frame with padding longer than itself on stream {}",
            frame::kind_name(head.kind),
            head.stream
        ),
    )
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
