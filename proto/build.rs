//! Compiles `proto/` with protox (pure Rust: no `protoc` needed) and keeps the
//! descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["ordersaga/v1/orders.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("ordersaga_descriptor.bin"), fds.encode_to_vec())?;
    // Undecodable requests are INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::codec::InvalidArgumentCodec")
        .compile_fds(fds)?;
    Ok(())
}
