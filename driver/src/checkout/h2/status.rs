//! How a call over the lean client fails, in gRPC's words: the status codes the gRPC HTTP/2
//! protocol assigns to HTTP statuses and to HTTP/2 stream resets, and the `grpc-timeout`
//! header's value.

use std::time::Duration;

use http::{HeaderMap, HeaderName, StatusCode};
use tonic::Code;

/// A call that did not come back with a usable reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server's `grpc-status`, or the status a transport failure amounts to.
    #[error("gRPC status {0:?}")]
    Status(Code),
}

impl From<h2::Error> for CallError {
    fn from(err: h2::Error) -> Self {
        CallError::Status(code_of_reset(&err))
    }
}

/// The status of a stream that ended in an HTTP/2 error (gRPC's PROTOCOL-HTTP2 "Errors"):
/// a refused stream was never processed (UNAVAILABLE); a reset without a gRPC status is a
/// protocol violation (INTERNAL); a broken connection is UNKNOWN, as tonic reports it.
pub fn code_of_reset(err: &h2::Error) -> Code {
    use h2::Reason;
    match err.reason() {
        Some(Reason::REFUSED_STREAM) => Code::Unavailable,
        Some(Reason::CANCEL) => Code::Cancelled,
        Some(Reason::ENHANCE_YOUR_CALM) => Code::ResourceExhausted,
        Some(Reason::INADEQUATE_SECURITY) => Code::PermissionDenied,
        Some(
            Reason::NO_ERROR
            | Reason::PROTOCOL_ERROR
            | Reason::INTERNAL_ERROR
            | Reason::FLOW_CONTROL_ERROR
            | Reason::SETTINGS_TIMEOUT
            | Reason::FRAME_SIZE_ERROR
            | Reason::COMPRESSION_ERROR
            | Reason::CONNECT_ERROR,
        ) => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The status of a response whose HTTP status is not 200 (gRPC's "HTTP to gRPC Status Code
/// Mapping").
pub fn code_of_http(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The `grpc-status` in `headers` (a trailers-only response or the trailers), if any. A value
/// that is not a number is UNKNOWN.
pub fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    // A static name: the lookup neither parses nor allocates.
    static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    let value = headers.get(&GRPC_STATUS)?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from_i32);
    Some(code)
}

/// Longest deadline the header can say: 8 digits of seconds.
const MAX_SECONDS: u64 = 99_999_999;

/// `timeout` as a `grpc-timeout` value: at most 8 digits, in the finest unit that fits.
pub fn grpc_timeout(timeout: Duration) -> String {
    let micros = timeout.as_micros();
    let millis = timeout.as_millis();
    if micros <= 99_999_999 {
        format!("{micros}u")
    } else if millis <= 99_999_999 {
        format!("{millis}m")
    } else {
        format!("{}S", timeout.as_secs().min(MAX_SECONDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_fit_in_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_millis(10)), "10000u");
        assert_eq!(grpc_timeout(Duration::from_secs(120)), "120000m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999S");
    }

    #[test]
    fn statuses() {
        let mut headers = HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(Code::Unavailable));
        headers.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(grpc_status(&headers), Some(Code::Unknown));
        assert_eq!(code_of_http(StatusCode::NOT_FOUND), Code::Unimplemented);
        assert_eq!(
            code_of_http(StatusCode::SERVICE_UNAVAILABLE),
            Code::Unavailable
        );
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert_eq!(code_of_reset(&refused), Code::Unavailable);
        assert_eq!(code_of_reset(&h2::Reason::CANCEL.into()), Code::Cancelled);
    }
}
