//! The frames a server sends, applied to the connection's state (RFC 9113 §6): replies
//! complete their streams, SETTINGS / PING are acknowledged, WINDOW_UPDATE opens the send
//! windows, GOAWAY and RST_STREAM fail what the server will not answer. A violation is a
//! [`ConnError`] that closes the connection; it names what the server did (issue #25).

use std::borrow::Cow;

use super::CONNECTION_WINDOW;
use super::frame::{self, HEAD_LEN, Head, flag, kind, reason};
use super::headers::{CompressionError, Decoder};
use super::limits::{self, MAX_CONTINUATIONS, MAX_PENDING_PING_ACKS, MAX_PENDING_SETTINGS_ACKS};
use super::state::State;
use super::status::code_of_reset;

mod control;
mod reply;

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
