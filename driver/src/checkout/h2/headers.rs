//! Header blocks. A request's block is encoded once per (path, deadline) with HPACK's static
//! table and literals that are neither indexed nor Huffman coded (RFC 7541 §6.1, §6.2.2), so a
//! call copies it as it is. A reply's blocks are decoded with `loona-hpack`, which keeps the
//! connection's dynamic table (servers index and Huffman-code their replies).

use std::time::Duration;

use http::HeaderMap;

use super::status::grpc_timeout;

/// Largest header list (RFC 9113 §6.5.2: names, values and 32 bytes each) a reply may have;
/// advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
pub const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Our HPACK decoder's table size (SETTINGS_HEADER_TABLE_SIZE, left at its default).
pub const DECODER_TABLE: usize = 4096;

/// HPACK's integer with an `prefix_bits`-bit prefix whose high bits are `first` (§5.1).
fn put_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        // Fits in the prefix: `value < max <= 255`.
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_int(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// A literal without indexing whose name is the static table's entry `index`.
fn put_indexed_name(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    put_int(out, 0, 4, index);
    put_string(out, value);
}

/// A literal without indexing with a new name.
fn put_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    put_string(out, name);
    put_string(out, value);
}

/// The request header block for `path` on `authority` with `deadline` and `extra` (the run's
/// metadata; `content-type`, `te` and `grpc-timeout` there are ours to set), and the size of
/// its header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2).
pub fn request_block(
    authority: &str,
    path: &str,
    deadline: Duration,
    extra: &HeaderMap,
) -> (Vec<u8>, u32) {
    let mut out = Vec::with_capacity(128);
    out.push(0x83); // :method POST
    out.push(0x86); // :scheme http
    put_indexed_name(&mut out, 4, path.as_bytes()); // :path
    put_indexed_name(&mut out, 1, authority.as_bytes()); // :authority
    put_indexed_name(&mut out, 31, b"application/grpc"); // content-type
    put_literal(&mut out, b"te", b"trailers");
    put_literal(&mut out, b"grpc-timeout", grpc_timeout(deadline).as_bytes());
    for (name, value) in extra {
        if matches!(name.as_str(), "content-type" | "te" | "grpc-timeout") {
            continue;
        }
        put_literal(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    let timeout = grpc_timeout(deadline);
    let fixed = [
        (":method", "POST".len()),
        (":scheme", "http".len()),
        (":path", path.len()),
        (":authority", authority.len()),
        ("content-type", "application/grpc".len()),
        ("te", "trailers".len()),
        ("grpc-timeout", timeout.len()),
    ];
    let fixed = fixed.iter().map(|(n, v)| n.len() + v + 32);
    let extra = extra
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "content-type" | "te" | "grpc-timeout"))
        .map(|(n, v)| n.as_str().len() + v.len() + 32);
    let size = fixed.chain(extra).fold(0usize, usize::saturating_add);
    (out, u32::try_from(size).unwrap_or(u32::MAX))
}

/// What a reply's header block says that matters to a unary call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeaders {
    /// `:status`, when present and a number.
    pub status: Option<u16>,
    /// `grpc-status`: `Some(None)` when present but not a number.
    pub grpc_status: Option<Option<i32>>,
    /// The list exceeded [`MAX_HEADER_LIST`].
    pub too_large: bool,
}

/// A header's value as a decimal number of at most 9 digits (statuses are 1 to 3).
fn number(value: &[u8]) -> Option<i32> {
    if value.is_empty() || value.len() > 9 {
        return None;
    }
    value.iter().try_fold(0i32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i32::from(b - b'0'))
    })
}

/// Why a header block could not be decoded: the connection's HPACK state is lost.
#[derive(Debug, thiserror::Error)]
#[error("HPACK: {0}")]
pub struct CompressionError(loona_hpack::decoder::DecoderError);

/// The connection's HPACK decoder.
pub struct Decoder(loona_hpack::Decoder<'static>);

impl Decoder {
    pub fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(DECODER_TABLE);
        Self(decoder)
    }

    /// Decodes one complete block (every block must be decoded, to keep the table in step).
    pub fn decode(&mut self, block: &[u8]) -> Result<ReplyHeaders, CompressionError> {
        let mut reply = ReplyHeaders::default();
        let mut size = 0usize;
        self.0
            .decode_with_cb(block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size > MAX_HEADER_LIST as usize {
                    reply.too_large = true;
                    return;
                }
                match &name[..] {
                    b":status" => reply.status = number(&value).and_then(|n| n.try_into().ok()),
                    b"grpc-status" => reply.grpc_status = Some(number(&value)),
                    _ => {}
                }
            })
            .map_err(CompressionError)?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_blocks_decode_to_the_call_s_headers() {
        let mut extra = HeaderMap::new();
        extra.insert("x-run", "r1".parse().unwrap());
        extra.insert("te", "gzip".parse().unwrap());
        let long = "/a".repeat(100);
        let (block, size) = request_block("h:1", &long, Duration::from_millis(10), &extra);
        let decoded = loona_hpack::Decoder::new().decode(&block).unwrap();
        let text: Vec<(String, String)> = decoded
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        let want = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", long.as_str()),
            (":authority", "h:1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", "10000u"),
            ("x-run", "r1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let listed: usize = want.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert_eq!(size as usize, listed);
        assert_eq!(text, want);
    }

    #[test]
    fn replies_are_read_and_capped() {
        let mut decoder = Decoder::new();
        // :status 200 (static index 8), then a literal grpc-status.
        let mut block = vec![0x88];
        put_literal(&mut block, b"grpc-status", b"x");
        let reply = decoder.decode(&block).unwrap();
        assert_eq!(reply.status, Some(200));
        assert_eq!(reply.grpc_status, Some(None));
        let mut big = Vec::new();
        put_literal(&mut big, b"x-big", &vec![b'a'; MAX_HEADER_LIST as usize]);
        assert!(decoder.decode(&big).unwrap().too_large);
        assert!(
            decoder
                .decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
                .is_err()
        );
        assert!(
            decoder.decode(&[0xbf]).is_err(),
            "index 63 is not in the table"
        );
    }
}
