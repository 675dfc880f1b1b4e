//! FPNN `*key` encryption on both TCP gates: the Rust SDK on every curve,
//! key size and mode; raw encrypted connections whose frames are split,
//! tampered with or truncated; and the exchanges the server refuses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::encryption::{
    Bits, Curve, Decryptor, Encryptor, KeyExchange, Mode, PrivateKey, PublicKey, SessionKeys,
};
use rtm_protocol::methods::*;
use rtm_protocol::{payload, write_quest, Encoding, Frame};
use rtm_sdk::{ClientOptions, MessageBody, MessageKind, RtmClient, RtmClientOptions, RtmServerClient};
use rtm_server::config::EcdhConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A key pair written by `rtm_server::write_key_pair` into a fresh directory.
struct ServerKeys {
    curve: Curve,
    private_path: PathBuf,
    public_pem: Vec<u8>,
    public: PublicKey,
}

impl ServerKeys {
    fn new(curve: Curve) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rtm-ecdh-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (private_path, public_path) = rtm_server::write_key_pair(curve, &dir, false).unwrap();
        let public_pem = std::fs::read(public_path).unwrap();
        let public = PublicKey::from_pem_or_der(&public_pem).unwrap();
        Self { curve, private_path, public_pem, public }
    }

    fn config(&self, required: bool) -> EcdhConfig {
        EcdhConfig {
            key_path: self.private_path.to_string_lossy().into_owned(),
            curve: self.curve.name().into(),
            required,
        }
    }
}

/// A server whose two TCP gates both take `*key` with `keys`.
async fn encrypted_server(keys: &ServerKeys, required: bool, admin: bool) -> TestServer {
    let ecdh = keys.config(required);
    TestServer::start_full(
        |config| {
            config.gates.server.ecdh = ecdh.clone();
            config.gates.client.ecdh = ecdh;
        },
        admin,
        false,
    )
    .await
}

/// An encrypted connection driven by hand, to split, tamper with and
/// truncate what goes on the wire.
struct Sealed {
    stream: TcpStream,
    encryptor: Encryptor,
    decryptor: Decryptor,
    raw: BytesMut,
    plain: BytesMut,
    seq: u32,
}

/// Fresh salts for signed quests.
static SALT: AtomicI64 = AtomicI64::new(1);

fn key_quest(public_key: Vec<u8>, mode: Mode, bits: Bits) -> BytesMut {
    let mut frame = BytesMut::new();
    write_quest(&mut frame, Encoding::MsgPack, Some(1), "*key", &KeyExchange { public_key, mode, bits }).unwrap();
    frame
}

impl Sealed {
    /// Connects and runs the key exchange.
    async fn open(addr: SocketAddr, server: &PublicKey, mode: Mode, bits: Bits) -> Self {
        let ephemeral = PrivateKey::generate(server.curve(), &mut rand_core::OsRng);
        let keys = SessionKeys::derive(&ephemeral.agree(&server.to_xy()).unwrap(), bits);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&key_quest(ephemeral.public_key().to_xy(), mode, bits)).await.unwrap();
        let mut sealed = Self {
            stream,
            encryptor: Encryptor::new(&keys, mode),
            decryptor: Decryptor::new(&keys, mode),
            raw: BytesMut::new(),
            plain: BytesMut::new(),
            seq: 1,
        };
        match sealed.read_frame().await {
            Some(Frame::Answer(answer)) => assert_eq!((answer.seq, answer.status), (1, 0), "the *key answer"),
            other => panic!("expected the *key answer, got {other:?}"),
        }
        sealed
    }

    /// A signed quest in plain text; returns it and its seq.
    fn signed<M: Method>(&mut self, params: &M) -> (BytesMut, u32) {
        self.seq += 1;
        let auth = ServerAuth::new(PID, SECRET, SALT.fetch_add(1, Ordering::Relaxed), M::NAME, now_secs());
        let mut frame = BytesMut::new();
        write_quest(&mut frame, Encoding::MsgPack, Some(self.seq), M::NAME, &Signed { auth: &auth, params }).unwrap();
        (frame, self.seq)
    }

    fn seal(&mut self, plain: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        self.encryptor.encrypt(plain, &mut out).unwrap();
        out
    }

    /// The next frame, or `None` once the server closed.
    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.plain, 1 << 24).unwrap() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(ANSWER_TIMEOUT, self.stream.read(&mut chunk)).await;
            match read.expect("the server answers or closes in time") {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.raw.extend_from_slice(&chunk[..n]),
            }
            self.decryptor.decrypt(&mut self.raw, &mut self.plain, 1 << 24).unwrap();
        }
    }

    async fn answer<T: serde::de::DeserializeOwned>(&mut self, seq: u32) -> T {
        match self.read_frame().await {
            Some(Frame::Answer(answer)) => {
                assert_eq!((answer.seq, answer.status), (seq, 0), "{answer:?}");
                payload::decode(answer.encoding, &answer.payload).unwrap()
            }
            other => panic!("expected the answer to {seq}, got {other:?}"),
        }
    }

    async fn expect_closed(&mut self) {
        let frame = self.read_frame().await;
        assert!(frame.is_none(), "expected the connection to close, got {frame:?}");
    }
}

const MODES: [Mode; 2] = [Mode::Package, Mode::Stream];
const BITS: [Bits; 2] = [Bits::Aes128, Bits::Aes256];

#[tokio::test]
async fn the_sdk_works_encrypted_on_every_curve_key_size_and_mode() {
    let mut rid = 91_000;
    for curve in Curve::ALL {
        let keys = ServerKeys::new(curve);
        // Required: a client that did not encrypt would be closed.
        let server = encrypted_server(&keys, true, true).await;
        for mode in MODES {
            for bits in BITS {
                let case = format!("{curve} {mode:?} {bits:?}");
                rid += 1;
                let options = ClientOptions::new(server.addr.to_string(), PID, SECRET).enable_encryption(
                    &keys.public_pem,
                    mode,
                    bits,
                );
                let backend = RtmServerClient::connect(options.unwrap()).await.unwrap();
                backend.add_room_member(rid, 1).await.unwrap();
                assert_eq!(backend.get_room_count(&[rid]).await.unwrap()[&rid], 1, "{case}");

                // Two players on the client gate: this mode and key size, and
                // the other mode, in one room.
                let other = if mode == Mode::Package { Mode::Stream } else { Mode::Package };
                let mut players = Vec::new();
                for (uid, mode) in [(10, mode), (11, other)] {
                    let token = backend.get_token(uid).await.unwrap();
                    let options = RtmClientOptions::new(server.client_addr.to_string(), PID, uid, token)
                        .enable_encryption(&keys.public_pem, mode, bits)
                        .unwrap();
                    let player = RtmClient::login(options).await.unwrap_or_else(|e| panic!("{case}: login: {e}"));
                    player.enter_room(rid).await.unwrap();
                    players.push(player);
                }
                let mut received = players[1].messages();
                let text = format!("hello over {case}");
                players[0].send_room_message(rid, 51, MessageBody::Text(text.clone()), "").await.unwrap();
                let message = tokio::time::timeout(ANSWER_TIMEOUT, received.next()).await.unwrap().unwrap().unwrap();
                assert_eq!((message.from, message.rid), (10, rid), "{case}");
                assert_eq!(message.kind, MessageKind::Text(text), "{case}");
                for player in players {
                    player.bye().await;
                }
            }
        }
        // Per mode: two backends, and one player of each pair in every case;
        // at least that many (under a loaded CI machine an SDK has once been
        // seen to reconnect, which is one exchange more: two full runs saw 7
        // package exchanges for 6 connections; not yet explained).
        let metrics = parse_exposition(&server.http_get("/metrics").await.1);
        for mode in ["package", "stream"] {
            let exchanges = metrics.get(&format!(r#"rtm_key_exchanges_total{{result="{mode}"}}"#)).copied();
            assert!(exchanges.is_some_and(|n| n >= 6.0), "{curve} {mode}: {exchanges:?}");
        }
        let refused = metrics.get(r#"rtm_frames_rejected_total{reason="key_exchange"}"#).copied().unwrap_or(0.0);
        assert_eq!(refused, 0.0, "{curve}: no exchange was refused");
        server.stop().await;
    }
}

#[tokio::test]
async fn frames_split_across_reads_and_packed_together_decrypt_in_both_modes() {
    let keys = ServerKeys::new(Curve::Secp256k1);
    let server = encrypted_server(&keys, false, false).await;
    for mode in MODES {
        let mut conn = Sealed::open(server.addr, &keys.public, mode, Bits::Aes128).await;
        let mut plain = BytesMut::new();
        let mut seqs = Vec::new();
        for uid in 1..=3 {
            let (frame, seq) = conn.signed(&AddRoomMember { rid: 92_000, uid });
            plain.extend_from_slice(&frame);
            seqs.push(seq);
        }
        let (count, count_seq) = conn.signed(&GetRoomCount::new(vec![92_000]));
        plain.extend_from_slice(&count);
        let wire = conn.seal(&plain);
        // The first 60 bytes one at a time (each its own TCP segment), the
        // rest, packages and all, in one write.
        for byte in &wire[..60] {
            conn.stream.write_all(&[*byte]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        conn.stream.write_all(&wire[60..]).await.unwrap();
        for seq in seqs {
            let _: Empty = conn.answer(seq).await;
        }
        let answer: RoomCounts = conn.answer(count_seq).await;
        assert_eq!(answer.to_map()[&92_000], 3, "{mode:?}");
        conn.stream.shutdown().await.unwrap();
        conn.expect_closed().await;
        // The next mode starts with the room empty again.
        for uid in 1..=3 {
            server.client().await.call(&DelRoomMember { rid: 92_000, uid }).await.unwrap();
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn tampered_or_truncated_streams_close_only_their_own_connection() {
    let keys = ServerKeys::new(Curve::Secp256r1);
    let server = encrypted_server(&keys, false, false).await;
    let healthy = ClientOptions::new(server.addr.to_string(), PID, SECRET)
        .enable_encryption(&keys.public_pem, Mode::Stream, Bits::Aes256)
        .unwrap();
    let healthy = RtmServerClient::connect(healthy).await.unwrap();
    healthy.add_room_member(93_000, 1).await.unwrap();
    for mode in MODES {
        // A flipped bit in the frame header: the frame no longer starts "FPNN".
        let mut conn = Sealed::open(server.addr, &keys.public, mode, Bits::Aes128).await;
        let (quest, _) = conn.signed(&GetRoomCount::new(vec![93_000]));
        let mut wire = conn.seal(&quest);
        let header_at = if mode == Mode::Package { 4 } else { 0 };
        wire[header_at] ^= 0x01;
        conn.stream.write_all(&wire).await.unwrap();
        conn.expect_closed().await;

        // Half a packet, then the client goes away.
        let mut conn = Sealed::open(server.addr, &keys.public, mode, Bits::Aes128).await;
        let (quest, _) = conn.signed(&GetRoomCount::new(vec![93_000]));
        let wire = conn.seal(&quest);
        conn.stream.write_all(&wire[..wire.len() / 2]).await.unwrap();
        conn.stream.shutdown().await.unwrap();
        conn.expect_closed().await;

        assert_eq!(healthy.get_room_count(&[93_000]).await.unwrap()[&93_000], 1, "{mode:?}");
    }
    // Package mode: a length prefix past the frame cap closes at once.
    let mut conn = Sealed::open(server.addr, &keys.public, Mode::Package, Bits::Aes128).await;
    conn.stream.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    conn.expect_closed().await;
    assert_eq!(healthy.get_room_count(&[93_000]).await.unwrap()[&93_000], 1);
    server.stop().await;
}

/// Sends raw bytes on a new plain connection and expects it closed without an answer.
async fn expect_refused(addr: SocketAddr, bytes: &[u8]) {
    let mut client = Client::connect(addr, PID, SECRET).await;
    client.send(bytes).await;
    client.expect_closed().await;
}

#[tokio::test]
async fn key_exchanges_the_server_refuses_close_the_connection() {
    let keys = ServerKeys::new(Curve::Secp224r1);
    let server = encrypted_server(&keys, false, true).await;
    let xy_len = 2 * Curve::Secp224r1.coordinate_len();

    // `*key` after another quest: the plain quest is answered, `*key` closes.
    let mut client = server.client().await;
    let mut first = BytesMut::new();
    let seq = client.encode_signed(&mut first, &GetRoomCount::new(vec![1]));
    client.send(&first).await;
    assert_eq!(client.read_answer().await.seq, seq);
    let ephemeral = PrivateKey::generate(Curve::Secp224r1, &mut rand_core::OsRng);
    client.send(&key_quest(ephemeral.public_key().to_xy(), Mode::Package, Bits::Aes128)).await;
    client.expect_closed().await;

    // A public key of the wrong length, or not on the curve.
    expect_refused(server.addr, &key_quest(vec![4; xy_len - 1], Mode::Package, Bits::Aes128)).await;
    expect_refused(server.addr, &key_quest(vec![1; xy_len], Mode::Stream, Bits::Aes128)).await;
    // A key size FPNN does not have.
    let mut odd = BytesMut::new();
    let params = serde_json::json!({ "publicKey": "x", "bits": 192 });
    write_quest(&mut odd, Encoding::MsgPack, Some(1), "*key", &params).unwrap();
    expect_refused(server.client_addr, &odd).await;

    // Plain clients are still served: the encryption is optional.
    assert_eq!(server.client().await.call(&GetRoomCount::new(vec![1])).await.unwrap().to_map()[&1], 0);

    let metrics = parse_exposition(&server.http_get("/metrics").await.1);
    assert_eq!(metrics.get(r#"rtm_key_exchanges_total{result="not_first"}"#), Some(&1.0), "{metrics:?}");
    assert_eq!(metrics.get(r#"rtm_key_exchanges_total{result="bad_key"}"#), Some(&3.0), "{metrics:?}");
    server.stop().await;

    // A gate without a key closes on `*key`, even as the first packet.
    let plain = TestServer::start().await;
    expect_refused(plain.addr, &key_quest(ephemeral.public_key().to_xy(), Mode::Package, Bits::Aes128)).await;
    plain.stop().await;
}

#[tokio::test]
async fn a_gate_that_requires_encryption_closes_plain_connections() {
    let keys = ServerKeys::new(Curve::Secp192r1);
    let server = encrypted_server(&keys, true, true).await;
    let mut plain = server.client().await;
    let mut out = BytesMut::new();
    plain.encode_signed(&mut out, &GetRoomCount::new(vec![1]));
    plain.send(&out).await;
    plain.expect_closed().await;

    let mut sealed = Sealed::open(server.addr, &keys.public, Mode::Stream, Bits::Aes256).await;
    let (quest, seq) = sealed.signed(&GetRoomCount::new(vec![1]));
    let wire = sealed.seal(&quest);
    sealed.stream.write_all(&wire).await.unwrap();
    let answer: RoomCounts = sealed.answer(seq).await;
    assert_eq!(answer.to_map()[&1], 0);

    let metrics = parse_exposition(&server.http_get("/metrics").await.1);
    assert_eq!(metrics.get(r#"rtm_key_exchanges_total{result="plain_refused"}"#), Some(&1.0), "{metrics:?}");
    assert_eq!(metrics.get(r#"rtm_key_exchanges_total{result="stream"}"#), Some(&1.0), "{metrics:?}");
    server.stop().await;
}

#[test]
fn keygen_keeps_an_existing_key_unless_forced() {
    let keys = ServerKeys::new(Curve::Secp256k1);
    let dir = keys.private_path.parent().unwrap();
    let before = std::fs::read(&keys.private_path).unwrap();
    assert_eq!(before.len(), 32);
    let refused = rtm_server::write_key_pair(Curve::Secp256k1, dir, false).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&keys.private_path).unwrap(), before);
    rtm_server::write_key_pair(Curve::Secp256k1, dir, true).unwrap();
    assert_ne!(std::fs::read(&keys.private_path).unwrap(), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys.private_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the private key is readable by its owner only");
    }
}
