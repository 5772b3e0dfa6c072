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

/// The prost codec of every generated client and server, with 256-byte initial buffers instead
/// of tonic's 8 KiB: each in-flight call holds one, and these messages are tiny (at 10,000
/// streams the default buffers alone cost the driver ~80 MB). Buffers still grow on demand.
pub mod codec {
    use std::marker::PhantomData;

    use tonic::codec::{BufferSettings, Codec};
    use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

    fn settings() -> BufferSettings {
        BufferSettings::new(256, 32 * 1024)
    }

    /// [`ProstCodec`] with small initial buffers.
    #[derive(Debug, Clone, Default)]
    pub struct SmallCodec<T, U>(PhantomData<(T, U)>);

    impl<T, U> Codec for SmallCodec<T, U>
    where
        T: prost::Message + Send + 'static,
        U: prost::Message + Default + Send + 'static,
    {
        type Encode = T;
        type Decode = U;
        type Encoder = ProstEncoder<T>;
        type Decoder = ProstDecoder<U>;

        fn encoder(&mut self) -> Self::Encoder {
            ProstCodec::<T, U>::raw_encoder(settings())
        }

        fn decoder(&mut self) -> Self::Decoder {
            ProstCodec::<T, U>::raw_decoder(settings())
        }
    }
}
