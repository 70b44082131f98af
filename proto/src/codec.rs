//! The codec of the shop's services: prost's, except that a request that
//! does not decode (garbage or truncated bytes, a string field that is not
//! UTF-8) is the caller's mistake, `INVALID_ARGUMENT`, where tonic's prost
//! codec answers `INTERNAL`. `build.rs` names it as the codec of every
//! generated client and server.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder};

/// [`ProstCodec`] with undecodable messages answered `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Default)]
pub struct InvalidArgumentCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for InvalidArgumentCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = InvalidArgumentDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidArgumentDecoder(self.0.decoder())
    }
}

/// [`ProstDecoder`] whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct InvalidArgumentDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for InvalidArgumentDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The prost decoder fails on undecodable bytes only.
        self.0
            .decode(buf)
            .map_err(|e| Status::invalid_argument(format!("undecodable message: {}", e.message())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
