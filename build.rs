//! Compiles `proto/` with the pure-Rust `protox` compiler (no `protoc` needed), generates the
//! tonic client and server code, and writes the file descriptor set used by server reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/flashsale/v1/checkout.proto",
    "proto/flashsale/v1/coordinator.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Reflection of the checkout server describes only what it serves.
    let checkout = protox::compile([PROTOS[0]], ["proto"])?;
    std::fs::write(
        out_dir.join("checkout_descriptor.bin"),
        prost::Message::encode_to_vec(&checkout),
    )?;
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(
        out_dir.join("flashsale_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::SmallCodec")
        .compile_fds(fds)?;
    Ok(())
}
