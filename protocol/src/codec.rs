//! A thin `tokio_util::codec` adapter over [`Frame::decode`] and
//! [`Frame::encode`].

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{EncodeError, FrameError};
use crate::frame::{Frame, DEFAULT_MAX_FRAME_LEN};

/// Errors of [`FpnnCodec`].
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The peer sent a frame that cannot be decoded.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Decodes and encodes whole FPNN frames.
#[derive(Debug, Clone, Copy)]
pub struct FpnnCodec {
    max_frame_len: usize,
}

impl FpnnCodec {
    /// A codec refusing frames longer than `max_frame_len` (header included).
    pub fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The configured maximum frame length.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Default for FpnnCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for FpnnCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(Frame::decode(src, self.max_frame_len)?)
    }
}

impl Encoder<Frame> for FpnnCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(frame.encode(dst)?)
    }
}

impl Encoder<&Frame> for FpnnCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(frame.encode(dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    use crate::{Answer, Encoding};

    #[test]
    fn decodes_what_it_encodes_and_waits_for_more() {
        let mut codec = FpnnCodec::default();
        let frame = Frame::Answer(Answer {
            version: 1,
            encoding: Encoding::MsgPack,
            seq: 3,
            status: 0,
            payload: Bytes::from_static(&[0x80]),
        });
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        let mut partial = buf.split_to(5);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.unsplit(buf);
        assert_eq!(codec.decode(&mut partial).unwrap(), Some(frame));
    }

    #[test]
    fn oversize_is_an_error() {
        let mut codec = FpnnCodec::new(64);
        let mut buf = BytesMut::from(&b"FPNN\x01\x80\x01\x01\xff\x00\x00\x00"[..]);
        assert!(matches!(codec.decode(&mut buf), Err(CodecError::Frame(FrameError::TooLarge { .. }))));
    }
}
