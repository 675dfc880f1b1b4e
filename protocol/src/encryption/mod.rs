//! FPNN `*key` encryption (feature `encryption`): the ECDH key exchange and
//! the AES-CFB ciphers, as the FPNN SDKs and the C++ server speak them.
//!
//! # The handshake
//!
//! 1. The client makes an ephemeral key pair on the server's curve and sends,
//!    as its very first packet and in plain text, the twoway quest `*key`
//!    with [`KeyExchange`]: its public key as the raw point `X‖Y` (no `0x04`
//!    prefix), whether it wants stream mode, and 128 or 256 bits.
//! 2. Both sides compute the ECDH shared secret (the x coordinate) and derive
//!    from it the AES key and IV ([`SessionKeys::derive`]).
//! 3. The server switches both directions to encrypted and answers `{}`:
//!    the answer is already encrypted.
//!
//! # The ciphers
//!
//! AES-128 or AES-256 in CFB mode with 128-bit feedback, each direction its
//! own state ([`Encryptor`], [`Decryptor`]):
//! - **package mode**: every FPNN packet is sent as a `u32` little-endian
//!   plaintext length, then the packet encrypted by a cipher started afresh
//!   from the IV;
//! - **stream mode**: all the bytes of one direction are one CFB stream.
//!
//! Everything here is I/O-free but [`EncryptedStream`], which runs a pair
//! of ciphers over any tokio byte stream.

mod cipher;
mod keys;
mod stream;

pub use cipher::{CipherError, Decryptor, Encryptor};
pub use keys::{PrivateKey, PublicKey};
pub use stream::EncryptedStream;

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};
use serde::Serialize;

use crate::value::Value;

/// The method name of the key-exchange quest.
pub const KEY_METHOD: &str = "*key";

/// The curves FPNN servers use for the key exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Curve {
    /// secp256k1, FPNN's default.
    #[default]
    Secp256k1,
    /// secp256r1 (NIST P-256).
    Secp256r1,
    /// secp224r1 (NIST P-224).
    Secp224r1,
    /// secp192r1 (NIST P-192).
    Secp192r1,
}

impl Curve {
    /// Every supported curve.
    pub const ALL: [Curve; 4] = [Curve::Secp256k1, Curve::Secp256r1, Curve::Secp224r1, Curve::Secp192r1];

    /// The name FPNN's configuration uses.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Secp256k1 => "secp256k1",
            Self::Secp256r1 => "secp256r1",
            Self::Secp224r1 => "secp224r1",
            Self::Secp192r1 => "secp192r1",
        }
    }

    /// Bytes of one coordinate, of a private key, and of the shared secret.
    pub const fn coordinate_len(self) -> usize {
        match self {
            Self::Secp256k1 | Self::Secp256r1 => 32,
            Self::Secp224r1 => 28,
            Self::Secp192r1 => 24,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Curve {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| KeyError::UnknownCurve(s.to_owned()))
    }
}

/// How the encrypted bytes are laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// A length prefix and a fresh cipher per packet (the Python, Java and
    /// C++ clients).
    #[default]
    Package,
    /// One continuous cipher stream per direction (the Go client).
    Stream,
}

/// AES key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Bits {
    /// AES-128, the SDKs' default.
    #[default]
    Aes128,
    /// AES-256 (the C++ client's `reinforce`).
    Aes256,
}

impl Bits {
    /// `bits` as the `*key` quest carries it.
    pub const fn number(self) -> i64 {
        match self {
            Self::Aes128 => 128,
            Self::Aes256 => 256,
        }
    }
}

/// Why a key or a key exchange is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not one of [`Curve::ALL`].
    #[error("unknown curve '{0}' (use secp256k1, secp256r1, secp224r1 or secp192r1)")]
    UnknownCurve(String),
    /// A private key of the wrong length or out of the curve's range.
    #[error("not a {curve} private key: expected {expected} raw bytes, got {got}")]
    BadPrivateKey {
        /// The curve the key was read for.
        curve: Curve,
        /// Its private-key length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The PEM is not a public key on a supported curve.
    #[error("not a PEM public key on secp256k1, secp256r1, secp224r1 or secp192r1: {0}")]
    BadPem(String),
    /// The peer's public key has the wrong length for the curve.
    #[error("public key of {got} bytes, expected {expected} (X‖Y on {curve})")]
    BadPublicKeyLength {
        /// The server's curve.
        curve: Curve,
        /// Twice the coordinate length.
        expected: usize,
        /// What came.
        got: usize,
    },
    /// The peer's public key is not a point on the curve.
    #[error("public key is not a point on {0}")]
    NotOnCurve(Curve),
    /// The `*key` quest's parameters are missing or of the wrong type.
    #[error("*key: {0}")]
    BadQuest(String),
}

/// The parameters of the `*key` quest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExchange {
    /// The client's ephemeral public key, raw `X‖Y`.
    pub public_key: Vec<u8>,
    /// Package or stream mode.
    pub mode: Mode,
    /// AES key size.
    pub bits: Bits,
}

impl KeyExchange {
    /// Reads the quest's payload, as the C++ server does: `publicKey` (bin
    /// or str), `streamMode` (absent = package mode), `bits` (absent = 128;
    /// only 128 and 256 are accepted).
    pub fn from_value(value: &Value<'_>) -> Result<Self, KeyError> {
        let Value::Map(entries) = value else {
            return Err(KeyError::BadQuest(format!("payload is a {}, not a map", value.type_name())));
        };
        let get = |name: &str| entries.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v);
        let public_key = match get("publicKey") {
            Some(Value::Bin(b) | Value::Str(b)) => b.to_vec(),
            Some(other) => return Err(KeyError::BadQuest(format!("publicKey is a {}", other.type_name()))),
            None => return Err(KeyError::BadQuest("publicKey is missing".into())),
        };
        let mode = match get("streamMode") {
            None | Some(Value::Nil | Value::Bool(false)) => Mode::Package,
            Some(Value::Bool(true)) => Mode::Stream,
            Some(other) => return Err(KeyError::BadQuest(format!("streamMode is a {}", other.type_name()))),
        };
        let bits = match get("bits") {
            None | Some(Value::Nil | Value::Int(128)) => Bits::Aes128,
            Some(Value::Int(256)) => Bits::Aes256,
            Some(Value::Int(n)) => return Err(KeyError::BadQuest(format!("bits is {n}, not 128 or 256"))),
            Some(other) => return Err(KeyError::BadQuest(format!("bits is a {}", other.type_name()))),
        };
        Ok(Self { public_key, mode, bits })
    }
}

impl Serialize for KeyExchange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Raw<'a>(&'a [u8]);
        impl Serialize for Raw<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("publicKey", &Raw(&self.public_key))?;
        map.serialize_entry("streamMode", &(self.mode == Mode::Stream))?;
        map.serialize_entry("bits", &self.bits.number())?;
        map.end()
    }
}

/// The AES key and IV both directions start from.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// 16 or 32 bytes.
    pub key: Vec<u8>,
    /// MD5 of the shared secret.
    pub iv: [u8; 16],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys").field("bits", &(self.key.len() * 8)).finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// FPNN's derivation (`KeyExchange.cpp calcKey`): the IV is MD5 of the
    /// shared secret; a 128-bit key is the secret's first 16 bytes; a
    /// 256-bit key is the secret itself when it has 32 bytes, else its
    /// SHA-256.
    pub fn derive(secret: &[u8], bits: Bits) -> Self {
        let iv: [u8; 16] = Md5::digest(secret).into();
        let key = match bits {
            Bits::Aes128 => secret[..16].to_vec(),
            Bits::Aes256 if secret.len() == 32 => secret.to_vec(),
            Bits::Aes256 => sha2::Sha256::digest(secret).to_vec(),
        };
        Self { key, iv }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;
    use crate::Encoding;

    #[test]
    fn curve_names_round_trip() {
        for curve in Curve::ALL {
            assert_eq!(curve.name().parse::<Curve>(), Ok(curve));
        }
        assert!(matches!("p256".parse::<Curve>(), Err(KeyError::UnknownCurve(_))));
    }

    #[test]
    fn key_exchange_round_trips_through_msgpack() {
        let quest = KeyExchange { public_key: vec![7; 64], mode: Mode::Stream, bits: Bits::Aes256 };
        let bytes = payload::encode(Encoding::MsgPack, &quest).unwrap();
        // publicKey goes out as msgpack bin 8 (0xc4), as the SDKs send it.
        assert!(bytes.windows(2).any(|w| w == [0xc4, 64]));
        let back = KeyExchange::from_value(&payload::parse(Encoding::MsgPack, &bytes).unwrap()).unwrap();
        assert_eq!(back, quest);
    }

    #[test]
    fn key_exchange_defaults_and_refusals() {
        let parse = |json: &str| KeyExchange::from_value(&payload::parse(Encoding::Json, json.as_bytes()).unwrap());
        let minimal = parse(r#"{"publicKey":"xy"}"#).unwrap();
        assert_eq!((minimal.mode, minimal.bits), (Mode::Package, Bits::Aes128));
        assert!(matches!(parse(r#"{"streamMode":true}"#), Err(KeyError::BadQuest(_))));
        assert!(matches!(parse(r#"{"publicKey":"xy","bits":192}"#), Err(KeyError::BadQuest(_))));
        assert!(matches!(parse(r#"{"publicKey":1}"#), Err(KeyError::BadQuest(_))));
    }

    #[test]
    fn derivation_follows_fpnn() {
        let secret: Vec<u8> = (0u8..32).collect();
        let k128 = SessionKeys::derive(&secret, Bits::Aes128);
        assert_eq!(k128.key, secret[..16]);
        let md5: [u8; 16] = Md5::digest(&secret).into();
        assert_eq!(k128.iv, md5);
        assert_eq!(SessionKeys::derive(&secret, Bits::Aes256).key, secret);
        // A 28-byte secret (secp224r1) is hashed up to 32 bytes.
        let short = &secret[..28];
        assert_eq!(SessionKeys::derive(short, Bits::Aes256).key, sha2::Sha256::digest(short).to_vec());
    }
}
