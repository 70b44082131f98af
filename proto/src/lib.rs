//! The public gRPC contract of ordersaga (`ordersaga.v1`), generated from
//! `proto/` at build time without `protoc`. Depends on nothing internal; the
//! API crate owns the conversions between these types and the domain.

pub mod codec;

/// `ordersaga.v1`: the order service, its messages, client and server.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("ordersaga.v1");

    /// Encoded `FileDescriptorSet` of the package and its imports, for
    /// gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ordersaga_descriptor.bin"));
}
