//! The `flashsale.v1` gRPC contract, generated from `proto/` at build time and shared by the
//! server and the load driver.

/// Generated messages, client and server for `flashsale.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("flashsale.v1");

    /// Encoded `FileDescriptorSet` of every file in `proto/`.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("flashsale_descriptor");

    /// Encoded `FileDescriptorSet` of `checkout.proto` alone, for the checkout server's
    /// reflection (it does not serve the coordinator).
    pub const CHECKOUT_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("checkout_descriptor");
}

/// The names of gRPC status codes, as both binaries print and parse them.
pub mod status {
    use tonic::Code;

    /// The canonical upper-case name of `code`, e.g. `UNAVAILABLE`.
    pub fn name(code: Code) -> &'static str {
        match code {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code whose canonical name is `text` (upper case, as [`name`] gives it).
    pub fn by_name(text: &str) -> Option<Code> {
        (0..=16).map(Code::from).find(|code| name(*code) == text)
    }
}

/// The prost codec of every generated client and server, with 256-byte initial buffers instead
/// of tonic's 8 KiB: each in-flight call holds one, and these messages are tiny (at 10,000
/// streams the default buffers alone cost the driver ~80 MB). Buffers still grow on demand.
///
/// A request that does not decode is the client's fault: servers answer `INVALID_ARGUMENT`
/// (tonic's prost codec says `INTERNAL`, which clients must treat as "maybe applied"). A reply
/// that does not decode stays `INTERNAL` on the client. Which side decodes a message type is
/// said by [`Direction`], implemented for every message an RPC sends.
pub mod codec {
    use std::marker::PhantomData;

    use tonic::Status;
    use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
    use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

    use crate::pb;

    /// Whether a message travels from client to server (is decoded by servers).
    pub trait Direction {
        const REQUEST: bool;
    }

    macro_rules! direction {
        ($request:literal: $($message:ty),* $(,)?) => {
            $(impl Direction for $message {
                const REQUEST: bool = $request;
            })*
        };
    }

    direction!(true: pb::PurchaseRequest, pb::GetStockRequest, pb::ResetRequest,
        pb::ListOrdersRequest, pb::WorkerMessage, pb::RunRequest, pb::CancelRunRequest);
    direction!(false: pb::PurchaseReply, pb::StockReply, pb::OrderBatch,
        pb::CoordinatorMessage, pb::RunResult, pb::RunUpdate, pb::CancelRunReply);

    /// [`ProstDecoder`] that answers `INVALID_ARGUMENT` for requests that do not decode.
    #[derive(Debug)]
    pub struct SmallDecoder<U>(ProstDecoder<U>);

    impl<U: prost::Message + Default + Direction> Decoder for SmallDecoder<U> {
        type Item = U;
        type Error = Status;

        fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
            self.0.decode(buf).map_err(|status| {
                if U::REQUEST && status.code() == tonic::Code::Internal {
                    Status::invalid_argument(format!(
                        "the request message does not decode: {}",
                        status.message()
                    ))
                } else {
                    status
                }
            })
        }

        fn buffer_settings(&self) -> BufferSettings {
            self.0.buffer_settings()
        }
    }

    fn settings() -> BufferSettings {
        BufferSettings::new(256, 32 * 1024)
    }

    /// [`ProstCodec`] with small initial buffers.
    #[derive(Debug, Clone, Default)]
    pub struct SmallCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Codec for SmallCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Direction + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = SmallDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstCodec::<T, U>::raw_encoder(settings())
        }

        fn decoder(&mut self) -> Self::Decoder {
            SmallDecoder(ProstCodec::<T, U>::raw_decoder(settings()))
        }
    }
}
