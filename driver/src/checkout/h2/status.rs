//! How a call over the lean client fails, in gRPC's words: the status codes the gRPC HTTP/2
//! protocol assigns to HTTP statuses and to HTTP/2 stream resets, and the `grpc-timeout`
//! header's value.

use std::time::Duration;

use tonic::Code;

use super::frame::reason;

/// A call that did not come back with a usable reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server's `grpc-status`, or the status a transport failure amounts to.
    #[error("gRPC status {0:?}")]
    Status(Code),
}

/// The status of a stream the server reset with HTTP/2 error `code` (gRPC's PROTOCOL-HTTP2
/// "Errors"): a refused stream was never processed (UNAVAILABLE); a reset without a gRPC
/// status is a protocol violation (INTERNAL); an unknown code is UNKNOWN.
pub fn code_of_reset(code: u32) -> Code {
    match code {
        reason::REFUSED_STREAM => Code::Unavailable,
        reason::CANCEL => Code::Cancelled,
        reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        reason::NO_ERROR
        | reason::PROTOCOL_ERROR
        | reason::INTERNAL_ERROR
        | reason::FLOW_CONTROL_ERROR
        | reason::SETTINGS_TIMEOUT
        | reason::STREAM_CLOSED
        | reason::FRAME_SIZE_ERROR
        | reason::COMPRESSION_ERROR
        | reason::CONNECT_ERROR => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The status of a response whose HTTP status is not 200 (gRPC's "HTTP to gRPC Status Code
/// Mapping").
pub fn code_of_http(status: u16) -> Code {
    match status {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
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
        assert_eq!(code_of_http(404), Code::Unimplemented);
        assert_eq!(code_of_http(503), Code::Unavailable);
        assert_eq!(code_of_http(0), Code::Unknown);
        assert_eq!(code_of_reset(reason::REFUSED_STREAM), Code::Unavailable);
        assert_eq!(code_of_reset(reason::CANCEL), Code::Cancelled);
        assert_eq!(code_of_reset(reason::PROTOCOL_ERROR), Code::Internal);
        assert_eq!(code_of_reset(0xff), Code::Unknown);
    }
}
