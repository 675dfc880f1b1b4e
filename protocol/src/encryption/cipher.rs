//! AES-CFB (128-bit feedback) in FPNN's package and stream modes, one
//! state per direction, over byte buffers.

use aes::{Aes128, Aes256};
use bytes::{Buf, BufMut, BytesMut};
use cfb_mode::cipher::{InnerIvInit, KeyInit};
use cfb_mode::{BufDecryptor, BufEncryptor};

use super::{Mode, SessionKeys};
use crate::header::Header;

/// Why encrypted bytes cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CipherError {
    /// A package-mode length prefix above the frame cap.
    #[error("encrypted packet of {len} bytes exceeds the {max}-byte limit")]
    PacketTooLarge {
        /// The prefix's length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A package-mode packet of length 0.
    #[error("empty encrypted packet")]
    EmptyPacket,
    /// Package mode was asked to encrypt bytes that are not FPNN frames.
    #[error("package mode encrypts whole FPNN frames only")]
    NotAFrame,
}

/// The block cipher with its key schedule, made once per connection.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per connection direction; boxing buys nothing
enum Aes {
    A128(Aes128),
    A256(Aes256),
}

impl Aes {
    fn new(keys: &SessionKeys) -> Self {
        match keys.key.len() {
            16 => Self::A128(Aes128::new_from_slice(&keys.key).expect("16-byte key")),
            _ => Self::A256(Aes256::new_from_slice(&keys.key).expect("32-byte key")),
        }
    }
}

/// One direction's CFB state.
#[allow(clippy::large_enum_variant)] // one per connection direction; boxing buys nothing
enum CfbEncrypt {
    A128(BufEncryptor<Aes128>),
    A256(BufEncryptor<Aes256>),
}

impl CfbEncrypt {
    fn start(aes: &Aes, iv: &[u8; 16]) -> Self {
        match aes {
            Aes::A128(aes) => Self::A128(BufEncryptor::inner_iv_init(aes.clone(), iv.into())),
            Aes::A256(aes) => Self::A256(BufEncryptor::inner_iv_init(aes.clone(), iv.into())),
        }
    }

    fn apply(&mut self, data: &mut [u8]) {
        match self {
            Self::A128(c) => c.encrypt(data),
            Self::A256(c) => c.encrypt(data),
        }
    }
}

#[allow(clippy::large_enum_variant)] // one per connection direction; boxing buys nothing
enum CfbDecrypt {
    A128(BufDecryptor<Aes128>),
    A256(BufDecryptor<Aes256>),
}

impl CfbDecrypt {
    fn start(aes: &Aes, iv: &[u8; 16]) -> Self {
        match aes {
            Aes::A128(aes) => Self::A128(BufDecryptor::inner_iv_init(aes.clone(), iv.into())),
            Aes::A256(aes) => Self::A256(BufDecryptor::inner_iv_init(aes.clone(), iv.into())),
        }
    }

    fn apply(&mut self, data: &mut [u8]) {
        match self {
            Self::A128(c) => c.decrypt(data),
            Self::A256(c) => c.decrypt(data),
        }
    }
}

/// Encrypts what one side sends.
pub struct Encryptor {
    aes: Aes,
    iv: [u8; 16],
    /// Stream mode's running state; `None` in package mode.
    stream: Option<CfbEncrypt>,
    /// Package mode: the start of a frame whose end has not been given yet.
    partial: BytesMut,
}

impl Encryptor {
    /// A fresh state for one direction.
    pub fn new(keys: &SessionKeys, mode: Mode) -> Self {
        let aes = Aes::new(keys);
        let stream = (mode == Mode::Stream).then(|| CfbEncrypt::start(&aes, &keys.iv));
        Self { aes, iv: keys.iv, stream, partial: BytesMut::new() }
    }

    /// Appends the encryption of `plain` to `out`. In package mode `plain`
    /// must be FPNN frames; a frame may be split across calls, and goes out
    /// once it is whole.
    pub fn encrypt(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), CipherError> {
        if let Some(stream) = &mut self.stream {
            let start = out.len();
            out.extend_from_slice(plain);
            stream.apply(&mut out[start..]);
            return Ok(());
        }
        if self.partial.is_empty() {
            let used = self.packets(plain, out)?;
            self.partial.extend_from_slice(&plain[used..]);
        } else {
            self.partial.extend_from_slice(plain);
            let held = std::mem::take(&mut self.partial);
            let used = self.packets(&held, out)?;
            self.partial.extend_from_slice(&held[used..]);
        }
        Ok(())
    }

    /// Bytes held back waiting for the rest of their frame (package mode).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Package mode: encrypts every whole frame at the start of `data`;
    /// returns the bytes used.
    fn packets(&self, data: &[u8], out: &mut BytesMut) -> Result<usize, CipherError> {
        let mut used = 0;
        loop {
            let rest = &data[used..];
            let header = match Header::parse(rest) {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(used),
                Err(_) => return Err(CipherError::NotAFrame),
            };
            let len = usize::try_from(header.frame_len()).map_err(|_| CipherError::NotAFrame)?;
            if rest.len() < len {
                return Ok(used);
            }
            let prefix = u32::try_from(len).map_err(|_| CipherError::NotAFrame)?;
            out.reserve(4 + len);
            out.put_u32_le(prefix);
            let start = out.len();
            out.extend_from_slice(&rest[..len]);
            // Every packet starts afresh from the IV.
            CfbEncrypt::start(&self.aes, &self.iv).apply(&mut out[start..]);
            used += len;
        }
    }
}

/// Decrypts what the other side sent.
pub struct Decryptor {
    aes: Aes,
    iv: [u8; 16],
    stream: Option<CfbDecrypt>,
}

impl Decryptor {
    /// A fresh state for one direction.
    pub fn new(keys: &SessionKeys, mode: Mode) -> Self {
        let aes = Aes::new(keys);
        let stream = (mode == Mode::Stream).then(|| CfbDecrypt::start(&aes, &keys.iv));
        Self { aes, iv: keys.iv, stream }
    }

    /// Stream mode: decrypts `data` in place, continuing the stream.
    ///
    /// # Panics
    /// In package mode, whose packets need [`Decryptor::decrypt`].
    pub fn decrypt_stream(&mut self, data: &mut [u8]) {
        self.stream.as_mut().expect("stream mode").apply(data);
    }

    /// Moves what can be decrypted from `input` to `out`. Stream mode takes
    /// every byte; package mode takes whole packets, leaving a partial one
    /// in `input`, and refuses a packet longer than `max_packet_len`.
    pub fn decrypt(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        max_packet_len: usize,
    ) -> Result<(), CipherError> {
        if let Some(stream) = &mut self.stream {
            let start = out.len();
            out.extend_from_slice(input);
            stream.apply(&mut out[start..]);
            input.clear();
            return Ok(());
        }
        while input.len() >= 4 {
            let len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
            if len > max_packet_len {
                return Err(CipherError::PacketTooLarge { len, max: max_packet_len });
            }
            if len == 0 {
                return Err(CipherError::EmptyPacket);
            }
            if input.len() < 4 + len {
                input.reserve(4 + len - input.len());
                break;
            }
            let start = out.len();
            out.extend_from_slice(&input[4..4 + len]);
            CfbDecrypt::start(&self.aes, &self.iv).apply(&mut out[start..]);
            input.advance(4 + len);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::Bits;
    use crate::frame::write_quest;
    use crate::Encoding;

    fn keys(bits: Bits) -> SessionKeys {
        SessionKeys::derive(&[9u8; 32], bits)
    }

    fn frames(n: usize) -> BytesMut {
        let mut buf = BytesMut::new();
        for i in 0..n {
            let payload = serde_json::json!({ "i": i, "pad": "x".repeat(i * 7) });
            write_quest(&mut buf, Encoding::MsgPack, Some(i as u32 + 1), "m", &payload).unwrap();
        }
        buf
    }

    #[test]
    fn every_split_decrypts_to_the_same_bytes() {
        let plain = frames(5);
        for mode in [Mode::Package, Mode::Stream] {
            for bits in [Bits::Aes128, Bits::Aes256] {
                let mut whole = BytesMut::new();
                Encryptor::new(&keys(bits), mode).encrypt(&plain, &mut whole).unwrap();
                // The same bytes fed in pieces of every size encrypt alike.
                for piece in [1, 3, 12, 17, 100] {
                    let mut enc = Encryptor::new(&keys(bits), mode);
                    let mut out = BytesMut::new();
                    for chunk in plain.chunks(piece) {
                        enc.encrypt(chunk, &mut out).unwrap();
                    }
                    assert_eq!(out, whole, "{mode:?} {bits:?} pieces of {piece}");
                    assert_eq!(enc.pending(), 0);
                    let mut dec = Decryptor::new(&keys(bits), mode);
                    let (mut input, mut back) = (BytesMut::new(), BytesMut::new());
                    for chunk in out.chunks(piece) {
                        input.extend_from_slice(chunk);
                        dec.decrypt(&mut input, &mut back, 1 << 20).unwrap();
                    }
                    assert_eq!(back, plain, "{mode:?} {bits:?} pieces of {piece}");
                }
            }
        }
    }

    #[test]
    fn package_mode_restarts_the_cipher_per_packet() {
        let one = frames(1);
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        let mut out = BytesMut::new();
        Encryptor::new(&keys(Bits::Aes128), Mode::Package).encrypt(&twice, &mut out).unwrap();
        let (first, second) = out.split_at(out.len() / 2);
        assert_eq!(first, second, "identical packets, identical ciphertext");
        assert_eq!(u32::from_le_bytes(first[..4].try_into().unwrap()) as usize, one.len());
        // Stream mode does not repeat itself.
        let mut out = BytesMut::new();
        Encryptor::new(&keys(Bits::Aes128), Mode::Stream).encrypt(&twice, &mut out).unwrap();
        let (first, second) = out.split_at(out.len() / 2);
        assert_ne!(first, second);
    }

    #[test]
    fn package_mode_refuses_bad_lengths_and_non_frames() {
        let mut dec = Decryptor::new(&keys(Bits::Aes128), Mode::Package);
        let mut out = BytesMut::new();
        let mut huge = BytesMut::from(&(70_000u32).to_le_bytes()[..]);
        assert_eq!(
            dec.decrypt(&mut huge, &mut out, 65_536),
            Err(CipherError::PacketTooLarge { len: 70_000, max: 65_536 })
        );
        let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(dec.decrypt(&mut empty, &mut out, 65_536), Err(CipherError::EmptyPacket));
        let mut enc = Encryptor::new(&keys(Bits::Aes128), Mode::Package);
        assert_eq!(enc.encrypt(b"not a frame at all", &mut out), Err(CipherError::NotAFrame));
    }
}
