//! The lean client's bounds against a hostile or broken server (issue #25): everything the
//! server can make the client queue or count is capped here, and a server that goes past a
//! cap gets GOAWAY(ENHANCE_YOUR_CALM) and its connection's calls fail (the cause is logged).
//!
//! | what | bound |
//! |---|---|
//! | PING acknowledgements not yet on the socket | [`MAX_PENDING_PING_ACKS`] |
//! | SETTINGS acknowledgements not yet on the socket | [`MAX_PENDING_SETTINGS_ACKS`] |
//! | bytes queued for the socket (frames of calls and acknowledgements) | [`MAX_QUEUED_BYTES`] |
//! | CONTINUATION frames in one header block | [`MAX_CONTINUATIONS`] |
//! | a header block's bytes | 4 × `headers::MAX_HEADER_LIST` |
//! | a reply's bytes | `MAX_REPLY_BYTES` |
//! | the server's acknowledgement of our SETTINGS | the connect timeout |

use std::borrow::Cow;

/// Most PING acknowledgements that may wait for the socket: a server that sends more PINGs
/// while not reading our acknowledgements is flooding (RFC 9113 §10.5).
pub const MAX_PENDING_PING_ACKS: u32 = 16;
/// Most SETTINGS acknowledgements that may wait for the socket (one per SETTINGS received).
pub const MAX_PENDING_SETTINGS_ACKS: u32 = 4;
/// Most bytes queued for the socket and not yet written: the server is not reading. Callers
/// add at most one request each before their call ends, well under this.
pub const MAX_QUEUED_BYTES: usize = 4 << 20;
/// Most CONTINUATION frames one header block may take (empty ones included): a block of
/// 4 × 16 KiB fits in 4 frames of the default size; more is a CONTINUATION flood.
pub const MAX_CONTINUATIONS: u32 = 64;
/// Longest piece of a GOAWAY's debug data that is logged (escaped).
pub const MAX_DEBUG_DATA: usize = 256;

/// The acknowledgements queued in the state's `out` (`*_queued`) and in the I/O task's
/// buffer being written (`*_writing`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Acks {
    ping_queued: u32,
    ping_writing: u32,
    settings_queued: u32,
    settings_writing: u32,
}

impl Acks {
    /// Counts one more PING acknowledgement to queue; `false` when that would pass
    /// [`MAX_PENDING_PING_ACKS`] (nothing counted).
    pub fn ping(&mut self) -> bool {
        let ok = self.pending().0 < MAX_PENDING_PING_ACKS;
        self.ping_queued += u32::from(ok);
        ok
    }

    /// Counts one more SETTINGS acknowledgement to queue; `false` when that would pass
    /// [`MAX_PENDING_SETTINGS_ACKS`].
    pub fn settings(&mut self) -> bool {
        let ok = self.pending().1 < MAX_PENDING_SETTINGS_ACKS;
        self.settings_queued += u32::from(ok);
        ok
    }

    /// The I/O task wrote everything it had taken and takes the queue: what was being written
    /// is on the socket, what was queued is being written.
    pub fn taken(&mut self) {
        self.ping_writing = std::mem::take(&mut self.ping_queued);
        self.settings_writing = std::mem::take(&mut self.settings_queued);
    }

    /// Acknowledgements not yet on the socket: (PING, SETTINGS).
    pub fn pending(&self) -> (u32, u32) {
        (
            self.ping_queued + self.ping_writing,
            self.settings_queued + self.settings_writing,
        )
    }
}

/// What one connection saw, kept for its end (logged) and for tests.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Most bytes that were queued for the socket and not yet written at once.
    pub max_queued: usize,
    /// A reply (response headers of any status) came on this connection.
    pub replied: bool,
    /// Streams the server never processed (REFUSED_STREAM, or above a GOAWAY's last stream
    /// id) whose calls are retried on another stream.
    pub unprocessed: u64,
    /// Why the server is at fault, when it is: a GOAWAY with an error, or a violation.
    pub cause: Option<Cow<'static, str>>,
}

/// The name of HTTP/2 error `code` (RFC 9113 §7), or its number.
pub fn reason_name(code: u32) -> Cow<'static, str> {
    use super::frame::reason::*;
    let name = match code {
        NO_ERROR => "NO_ERROR",
        PROTOCOL_ERROR => "PROTOCOL_ERROR",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
        SETTINGS_TIMEOUT => "SETTINGS_TIMEOUT",
        STREAM_CLOSED => "STREAM_CLOSED",
        FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
        REFUSED_STREAM => "REFUSED_STREAM",
        CANCEL => "CANCEL",
        COMPRESSION_ERROR => "COMPRESSION_ERROR",
        CONNECT_ERROR => "CONNECT_ERROR",
        ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
        INADEQUATE_SECURITY => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        other => return Cow::Owned(format!("error code {other:#x}")),
    };
    Cow::Borrowed(name)
}

/// A GOAWAY's debug data as printable text: at most [`MAX_DEBUG_DATA`] bytes, escaped (a
/// target cannot put control characters in our logs).
pub fn debug_text(data: &[u8]) -> String {
    let shown = &data[..data.len().min(MAX_DEBUG_DATA)];
    let mut text: String = String::from_utf8_lossy(shown).escape_debug().collect();
    if data.len() > MAX_DEBUG_DATA {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_bounded_until_written() {
        let mut acks = Acks::default();
        for _ in 0..MAX_PENDING_PING_ACKS {
            assert!(acks.ping());
        }
        assert!(!acks.ping(), "a 17th unsent PING acknowledgement");
        acks.taken();
        assert!(!acks.ping(), "taken is not written yet");
        acks.taken();
        assert!(acks.ping());
        assert_eq!(acks.pending(), (1, 0));
        for _ in 0..MAX_PENDING_SETTINGS_ACKS {
            assert!(acks.settings());
        }
        assert!(!acks.settings());
    }

    #[test]
    fn causes_are_named_and_escaped() {
        assert_eq!(reason_name(0xb), "ENHANCE_YOUR_CALM");
        assert_eq!(reason_name(0x99), "error code 0x99");
        assert_eq!(debug_text(b"bad\x1b[31m"), "bad\\u{1b}[31m");
        assert_eq!(debug_text(&[b'a'; 300]).chars().count(), MAX_DEBUG_DATA + 1);
    }
}
