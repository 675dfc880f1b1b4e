//! Keys on the four curves, and the ECDH agreement, with RustCrypto's
//! curve crates. A key's curve is chosen at run time, so each type is an
//! enum over the curves and every operation is one generic function.

use elliptic_curve::pkcs8::AssociatedOid;
use elliptic_curve::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use elliptic_curve::sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize};
use rand_core::CryptoRngCore;

use super::{Curve, KeyError};

/// A private key: the server's long-lived one, or a client's ephemeral one.
#[derive(Clone)]
pub struct PrivateKey(Secret);

#[derive(Clone)]
enum Secret {
    K256(elliptic_curve::SecretKey<k256::Secp256k1>),
    P256(elliptic_curve::SecretKey<p256::NistP256>),
    P224(elliptic_curve::SecretKey<p224::NistP224>),
    P192(elliptic_curve::SecretKey<p192::NistP192>),
}

/// A public key, as a client is built with the server's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(Public);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Public {
    K256(elliptic_curve::PublicKey<k256::Secp256k1>),
    P256(elliptic_curve::PublicKey<p256::NistP256>),
    P224(elliptic_curve::PublicKey<p224::NistP224>),
    P192(elliptic_curve::PublicKey<p192::NistP192>),
}

/// Runs `$body` with `$key` bound to the curve-typed key inside.
macro_rules! on_curve {
    ($enum:ident, $value:expr, $key:ident => $body:expr) => {
        match $value {
            $enum::K256($key) => $body,
            $enum::P256($key) => $body,
            $enum::P224($key) => $body,
            $enum::P192($key) => $body,
        }
    };
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").field("curve", &self.curve()).finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Reads a raw private key (the scalar, big-endian, exactly
    /// [`Curve::coordinate_len`] bytes): FPNN's server key file format.
    pub fn from_raw(curve: Curve, raw: &[u8]) -> Result<Self, KeyError> {
        let expected = curve.coordinate_len();
        let bad = || KeyError::BadPrivateKey { curve, expected, got: raw.len() };
        if raw.len() != expected {
            return Err(bad());
        }
        let secret = match curve {
            Curve::Secp256k1 => Secret::K256(elliptic_curve::SecretKey::from_slice(raw).map_err(|_| bad())?),
            Curve::Secp256r1 => Secret::P256(elliptic_curve::SecretKey::from_slice(raw).map_err(|_| bad())?),
            Curve::Secp224r1 => Secret::P224(elliptic_curve::SecretKey::from_slice(raw).map_err(|_| bad())?),
            Curve::Secp192r1 => Secret::P192(elliptic_curve::SecretKey::from_slice(raw).map_err(|_| bad())?),
        };
        Ok(Self(secret))
    }

    /// A new random key.
    pub fn generate(curve: Curve, rng: &mut impl CryptoRngCore) -> Self {
        let secret = match curve {
            Curve::Secp256k1 => Secret::K256(elliptic_curve::SecretKey::random(rng)),
            Curve::Secp256r1 => Secret::P256(elliptic_curve::SecretKey::random(rng)),
            Curve::Secp224r1 => Secret::P224(elliptic_curve::SecretKey::random(rng)),
            Curve::Secp192r1 => Secret::P192(elliptic_curve::SecretKey::random(rng)),
        };
        Self(secret)
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.0 {
            Secret::K256(_) => Curve::Secp256k1,
            Secret::P256(_) => Curve::Secp256r1,
            Secret::P224(_) => Curve::Secp224r1,
            Secret::P192(_) => Curve::Secp192r1,
        }
    }

    /// The raw private key, as [`PrivateKey::from_raw`] reads it.
    pub fn to_raw(&self) -> Vec<u8> {
        on_curve!(Secret, &self.0, key => key.to_bytes().to_vec())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(match &self.0 {
            Secret::K256(key) => Public::K256(key.public_key()),
            Secret::P256(key) => Public::P256(key.public_key()),
            Secret::P224(key) => Public::P224(key.public_key()),
            Secret::P192(key) => Public::P192(key.public_key()),
        })
    }

    /// The ECDH shared secret (the x coordinate) with the peer whose
    /// public key is the raw point `X‖Y`.
    pub fn agree(&self, peer_xy: &[u8]) -> Result<Vec<u8>, KeyError> {
        let curve = self.curve();
        on_curve!(Secret, &self.0, key => agree(key, peer_xy, curve))
    }
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo in PEM (`-----BEGIN PUBLIC KEY-----`)
    /// or DER, on any supported curve: what client builds are given.
    pub fn from_pem_or_der(data: &[u8]) -> Result<Self, KeyError> {
        let pem = data.trim_ascii_start().starts_with(b"-----BEGIN");
        let text = if pem {
            Some(std::str::from_utf8(data).map_err(|_| KeyError::BadPem("the PEM is not UTF-8".into()))?)
        } else {
            None
        };
        let read = |curve: Curve| -> Option<Public> {
            match curve {
                Curve::Secp256k1 => decode(text, data).map(Public::K256),
                Curve::Secp256r1 => decode(text, data).map(Public::P256),
                Curve::Secp224r1 => decode(text, data).map(Public::P224),
                Curve::Secp192r1 => decode(text, data).map(Public::P192),
            }
        };
        Curve::ALL.into_iter().find_map(read).map(Self).ok_or_else(|| {
            let form = if pem { "PEM" } else { "DER" };
            KeyError::BadPem(format!("cannot read the {form} as a public key on any of the four curves"))
        })
    }

    /// The key as PEM (SubjectPublicKeyInfo), for client builds.
    pub fn to_pem(&self) -> String {
        on_curve!(Public, &self.0, key => key.to_public_key_pem(LineEnding::LF).expect("a valid point encodes"))
    }

    /// The key's curve.
    pub fn curve(&self) -> Curve {
        match self.0 {
            Public::K256(_) => Curve::Secp256k1,
            Public::P256(_) => Curve::Secp256r1,
            Public::P224(_) => Curve::Secp224r1,
            Public::P192(_) => Curve::Secp192r1,
        }
    }

    /// The raw point `X‖Y`, as `*key` carries it.
    pub fn to_xy(&self) -> Vec<u8> {
        on_curve!(Public, &self.0, key => key.to_encoded_point(false).as_bytes()[1..].to_vec())
    }
}

fn decode<C>(pem: Option<&str>, der: &[u8]) -> Option<elliptic_curve::PublicKey<C>>
where
    C: CurveArithmetic + AssociatedOid,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    match pem {
        Some(pem) => elliptic_curve::PublicKey::from_public_key_pem(pem).ok(),
        None => elliptic_curve::PublicKey::from_public_key_der(der).ok(),
    }
}

fn agree<C>(secret: &elliptic_curve::SecretKey<C>, peer_xy: &[u8], curve: Curve) -> Result<Vec<u8>, KeyError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let n = curve.coordinate_len();
    let mut sec1 = Vec::with_capacity(1 + 2 * n);
    sec1.push(0x04);
    if peer_xy.len() == 2 * n {
        sec1.extend_from_slice(peer_xy);
    } else if let Some((x, y)) = padded_to_32(peer_xy, n) {
        // The Python SDK writes each coordinate as 32 bytes whatever the
        // curve (`int_to_bytes(x, 32)`), so on secp224r1 and secp192r1 it
        // sends them zero-padded; the C++ server refuses that, we read it.
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
    } else {
        return Err(KeyError::BadPublicKeyLength { curve, expected: 2 * n, got: peer_xy.len() });
    }
    let peer = elliptic_curve::PublicKey::<C>::from_sec1_bytes(&sec1).map_err(|_| KeyError::NotOnCurve(curve))?;
    let shared = elliptic_curve::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    Ok(shared.raw_secret_bytes().to_vec())
}

/// `X‖Y` with each coordinate of `n` bytes zero-padded to 32, unpadded.
fn padded_to_32(xy: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    if xy.len() != 64 || n >= 32 {
        return None;
    }
    let (x, y) = xy.split_at(32);
    let pad = 32 - n;
    let unpadded = x[..pad].iter().chain(&y[..pad]).all(|b| *b == 0);
    unpadded.then(|| (&x[pad..], &y[pad..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_on_every_curve() {
        for curve in Curve::ALL {
            let server = PrivateKey::generate(curve, &mut rand_core::OsRng);
            let client = PrivateKey::generate(curve, &mut rand_core::OsRng);
            let server_public = PublicKey::from_pem_or_der(server.public_key().to_pem().as_bytes()).unwrap();
            assert_eq!(server_public.curve(), curve);
            let xy = client.public_key().to_xy();
            assert_eq!(xy.len(), 2 * curve.coordinate_len());
            let on_server = server.agree(&xy).unwrap();
            let on_client = client.agree(&server_public.to_xy()).unwrap();
            assert_eq!(on_server, on_client);
            assert_eq!(on_server.len(), curve.coordinate_len());
            let raw = server.to_raw();
            assert_eq!(PrivateKey::from_raw(curve, &raw).unwrap().to_raw(), raw);
        }
    }

    #[test]
    fn coordinates_padded_to_32_bytes_are_read_on_the_short_curves() {
        for curve in [Curve::Secp224r1, Curve::Secp192r1] {
            let server = PrivateKey::generate(curve, &mut rand_core::OsRng);
            let client = PrivateKey::generate(curve, &mut rand_core::OsRng);
            let xy = client.public_key().to_xy();
            let n = curve.coordinate_len();
            let mut padded = vec![0u8; 64];
            padded[32 - n..32].copy_from_slice(&xy[..n]);
            padded[64 - n..].copy_from_slice(&xy[n..]);
            assert_eq!(server.agree(&padded).unwrap(), server.agree(&xy).unwrap(), "{curve}");
            padded[0] = 1;
            assert!(matches!(server.agree(&padded), Err(KeyError::BadPublicKeyLength { .. })), "{curve}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        let server = PrivateKey::generate(Curve::Secp256k1, &mut rand_core::OsRng);
        assert!(matches!(server.agree(&[1; 63]), Err(KeyError::BadPublicKeyLength { expected: 64, got: 63, .. })));
        // (1, 1) is not on secp256k1.
        let mut off_curve = [0u8; 64];
        off_curve[31] = 1;
        off_curve[63] = 1;
        assert_eq!(server.agree(&off_curve), Err(KeyError::NotOnCurve(Curve::Secp256k1)));
        assert!(matches!(PrivateKey::from_raw(Curve::Secp192r1, &[1; 32]), Err(KeyError::BadPrivateKey { .. })));
        assert!(matches!(PrivateKey::from_raw(Curve::Secp256r1, &[0; 32]), Err(KeyError::BadPrivateKey { .. })));
        assert!(PublicKey::from_pem_or_der(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }
}
