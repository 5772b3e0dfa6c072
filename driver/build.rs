//! Generates the test suite's own gRPC service, `shop.v1` (driver/tests/shop/shop.proto), with
//! the pure-Rust `protox` compiler (no `protoc`): its tonic code and its descriptor set for
//! reflection. Only the tests include them (`include!(concat!(env!("OUT_DIR"), ...))`).

use std::{env, path::PathBuf};

const SHOP: &str = "tests/shop/shop.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={SHOP}");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile([SHOP], ["tests/shop"])?;
    std::fs::write(
        out_dir.join("shop_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
