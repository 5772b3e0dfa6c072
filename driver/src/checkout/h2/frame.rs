//! HTTP/2 frames (RFC 9113 §4, §6) as the lean client writes and reads them: the 9-byte frame
//! header, the connection's opening, and the small control frames, appended to a write buffer.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEAD_LEN: usize = 9;
/// Default and smallest SETTINGS_MAX_FRAME_SIZE; we never advertise more.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// Largest SETTINGS_MAX_FRAME_SIZE a peer may set.
pub const MAX_MAX_FRAME: u32 = (1 << 24) - 1;
/// Largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// Default initial window size of streams and of the connection.
pub const DEFAULT_WINDOW: i64 = 65_535;

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// The name of frame type `kind` (RFC 9113 §6), for error messages.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        kind::DATA => "DATA",
        kind::HEADERS => "HEADERS",
        kind::PRIORITY => "PRIORITY",
        kind::RST_STREAM => "RST_STREAM",
        kind::SETTINGS => "SETTINGS",
        kind::PUSH_PROMISE => "PUSH_PROMISE",
        kind::PING => "PING",
        kind::GOAWAY => "GOAWAY",
        kind::WINDOW_UPDATE => "WINDOW_UPDATE",
        kind::CONTINUATION => "CONTINUATION",
        _ => "unknown",
    }
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes (RFC 9113 §7).
pub mod reason {
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const SETTINGS_TIMEOUT: u32 = 0x4;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const CONNECT_ERROR: u32 = 0xa;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    pub const INADEQUATE_SECURITY: u32 = 0xc;
}

/// A frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    /// The header at the start of `bytes`, if 9 bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let b: &[u8; HEAD_LEN] = bytes.first_chunk()?;
        Some(Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame header; `len` must fit in 24 bits (callers split at the peer's maximum
/// frame size, itself at most 2^24 - 1).
pub fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len)
        .unwrap_or(MAX_MAX_FRAME)
        .min(MAX_MAX_FRAME);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
}

/// The client's opening: the preface, our SETTINGS, and the connection window raised to
/// `connection_window`.
pub fn put_opening(
    out: &mut Vec<u8>,
    stream_window: u32,
    connection_window: u32,
    header_list: u32,
) {
    out.extend_from_slice(PREFACE);
    let settings = [
        (setting::ENABLE_PUSH, 0),
        (setting::INITIAL_WINDOW_SIZE, stream_window),
        (setting::MAX_HEADER_LIST_SIZE, header_list),
    ];
    put_head(out, settings.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in settings {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
    let raise = connection_window.saturating_sub(DEFAULT_WINDOW as u32);
    if raise > 0 {
        put_window_update(out, 0, raise);
    }
}

pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn put_ping_ack(out: &mut Vec<u8>, payload: &[u8; 8]) {
    put_head(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(payload);
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&(increment & 0x7fff_ffff).to_be_bytes());
}

pub fn put_rst_stream(out: &mut Vec<u8>, stream: u32, code: u32) {
    put_head(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&code.to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, code: u32) {
    put_head(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
}

/// A header block split into HEADERS and CONTINUATION frames of at most `max_frame` bytes.
pub fn put_headers(out: &mut Vec<u8>, stream: u32, block: &[u8], max_frame: usize) {
    let max_frame = max_frame.max(1);
    let mut chunks = block.chunks(max_frame).peekable();
    let mut kind = kind::HEADERS;
    if chunks.peek().is_none() {
        put_head(out, 0, kind, flag::END_HEADERS, stream);
    }
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        put_head(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
        kind = kind::CONTINUATION;
    }
}

/// `body` as DATA frames of at most `max_frame` bytes, the last one ending the stream when
/// `end` says so.
pub fn put_data(out: &mut Vec<u8>, stream: u32, body: &[u8], max_frame: usize, end: bool) {
    let max_frame = max_frame.max(1);
    if body.is_empty() {
        put_head(
            out,
            0,
            kind::DATA,
            if end { flag::END_STREAM } else { 0 },
            stream,
        );
        return;
    }
    let mut chunks = body.chunks(max_frame).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last && end { flag::END_STREAM } else { 0 };
        put_head(out, chunk.len(), kind::DATA, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// The payload of a PADDED frame without its padding: `None` when the padding does not fit.
pub fn unpad<'a>(head: &Head, payload: &'a [u8]) -> Option<&'a [u8]> {
    if !head.has(flag::PADDED) {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_padding_is_checked() {
        let mut out = Vec::new();
        put_head(&mut out, 300, kind::DATA, flag::END_STREAM, 7);
        let head = Head::parse(&out).unwrap();
        assert_eq!(
            head,
            Head {
                len: 300,
                kind: 0,
                flags: 1,
                stream: 7
            }
        );
        assert_eq!(Head::parse(&out[..8]), None);
        let padded = Head {
            len: 4,
            kind: 0,
            flags: flag::PADDED,
            stream: 1,
        };
        assert_eq!(unpad(&padded, &[2, b'a', 0, 0]), Some(&b"a"[..]));
        assert_eq!(unpad(&padded, &[4, b'a', 0, 0]), None);
        assert_eq!(unpad(&padded, &[]), None);
    }

    #[test]
    fn long_blocks_are_continued() {
        let mut out = Vec::new();
        put_headers(&mut out, 3, &[9; 10], 4);
        let first = Head::parse(&out).unwrap();
        assert_eq!((first.kind, first.len, first.flags), (kind::HEADERS, 4, 0));
        let last = Head::parse(&out[2 * 13..]).unwrap();
        assert_eq!((last.kind, last.len), (kind::CONTINUATION, 2));
        assert!(last.has(flag::END_HEADERS));
        let mut data = Vec::new();
        put_data(&mut data, 3, &[1; 5], 4, true);
        assert_eq!(data.len(), 2 * HEAD_LEN + 5);
        assert!(Head::parse(&data[13..]).unwrap().has(flag::END_STREAM));
    }
}
