//! FPNN `*key` encryption against vectors from an independent implementation
//! (Python's `cryptography`): `tests/golden/encryption.py` made
//! `tests/golden/encryption.json`, for every curve and both key sizes:
//! fixed server and client private keys, the client's public key as sent in
//! `*key`, the shared secret, the derived AES key and IV, and two identical
//! frames encrypted in package mode and in stream mode.

use bytes::BytesMut;
use rtm_protocol::encryption::{Bits, Curve, Decryptor, Encryptor, Mode, PrivateKey, PublicKey, SessionKeys};

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn matches_an_independent_implementation() {
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("golden/encryption.json")).expect("golden vectors");
    assert_eq!(vectors.len(), 8, "four curves, two key sizes");
    for v in &vectors {
        let field = |name: &str| hex(v[name].as_str().unwrap());
        let curve: Curve = v["curve"].as_str().unwrap().parse().unwrap();
        let bits = match v["bits"].as_i64().unwrap() {
            128 => Bits::Aes128,
            _ => Bits::Aes256,
        };
        let case = format!("{curve} {bits:?}");

        let server = PrivateKey::from_raw(curve, &field("server_private")).unwrap();
        let client = PrivateKey::from_raw(curve, &field("client_private")).unwrap();
        let server_public = PublicKey::from_pem_or_der(v["server_public_pem"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(server_public, server.public_key(), "{case}: server PEM");
        assert_eq!(client.public_key().to_xy(), field("client_public_xy"), "{case}: client X‖Y");

        // Both ends of the exchange reach the same secret.
        let secret = server.agree(&field("client_public_xy")).unwrap();
        assert_eq!(secret, field("secret"), "{case}: server side secret");
        assert_eq!(client.agree(&server_public.to_xy()).unwrap(), secret, "{case}: client side secret");

        let keys = SessionKeys::derive(&secret, bits);
        assert_eq!(keys.key, field("key"), "{case}: key");
        assert_eq!(keys.iv.to_vec(), field("iv"), "{case}: iv");

        let plain = field("plain");
        for (mode, expected) in [(Mode::Package, field("package")), (Mode::Stream, field("stream"))] {
            let mut out = BytesMut::new();
            Encryptor::new(&keys, mode).encrypt(&plain, &mut out).unwrap();
            assert_eq!(out.to_vec(), expected, "{case} {mode:?}: ciphertext");
            let (mut input, mut back) = (BytesMut::from(&expected[..]), BytesMut::new());
            Decryptor::new(&keys, mode).decrypt(&mut input, &mut back, 1 << 16).unwrap();
            assert_eq!(back.to_vec(), plain, "{case} {mode:?}: decrypted");
        }
    }
}
