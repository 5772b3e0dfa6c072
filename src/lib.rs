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
