//! TLS with a custom CA, against a TLS fake server with certificates made
//! at test time.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::methods::RoomMembers;
use rtm_protocol::{write_answer, Encoding, Frame};
use rtm_sdk::{ClientOptions, ErrorKind, RtmServerClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A CA, and a server certificate for "localhost" signed by it.
struct TestPki {
    ca_pem: String,
    server_cert_der: Vec<u8>,
    server_key_der: Vec<u8>,
    server_cert_pem: String,
    server_key_pem: String,
}

fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&server_key, &ca).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_cert_der: server_cert.der().to_vec(),
        server_key_der: server_key.serialize_der(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

/// Accepts one TLS connection and answers one `getroommembers` with `[rid]`.
async fn tls_fake_server(pki: &TestPki) -> (std::net::SocketAddr, tokio::task::JoinHandle<bool>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let Ok(mut tls) = acceptor.accept(tcp).await else { return false };
        let mut buf = BytesMut::new();
        loop {
            if let Some(Frame::Quest(quest)) = Frame::decode(&mut buf, 1 << 20).unwrap() {
                let mut out = BytesMut::new();
                write_answer(&mut out, 1, Encoding::MsgPack, quest.seq.unwrap(), 0, &RoomMembers { uids: vec![42] })
                    .unwrap();
                tls.write_all(&out).await.unwrap();
                tls.flush().await.unwrap();
                return true;
            }
            if tls.read_buf(&mut buf).await.unwrap() == 0 {
                return false;
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_call_over_tls_with_a_custom_ca() {
    let pki = pki();
    let (addr, server) = tls_fake_server(&pki).await;
    let options = ClientOptions::new(addr.to_string(), 1, "s")
        .tls_with_ca_pem(pki.ca_pem.as_bytes())
        .unwrap()
        .tls_server_name("localhost");
    let client = RtmServerClient::connect(options).await.unwrap();
    assert_eq!(client.get_room_members(42).await.unwrap(), vec![42]);
    assert!(server.await.unwrap());
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused() {
    let pki = pki();
    let other = self::pki();
    let (addr, server) = tls_fake_server(&pki).await;
    let options = ClientOptions::new(addr.to_string(), 1, "s")
        .connect_timeout(Duration::from_secs(5))
        .tls_with_ca_pem(other.ca_pem.as_bytes())
        .unwrap()
        .tls_server_name("localhost");
    let err = RtmServerClient::connect(options).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(!server.await.unwrap());
}

#[test]
fn bad_ca_pem_is_an_invalid_argument() {
    let err = ClientOptions::new("localhost:1", 1, "s").tls_with_ca_pem(b"not a pem").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// A player over the real client gate's TLS endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_logs_in_over_tls() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("rtm-sdk-client-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.server_key_pem).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let server = tokio::task::spawn_blocking(move || crate::support::ServerThread::start_tls(&cert_path, &key_path))
        .await
        .unwrap();
    let backend = RtmServerClient::connect(server.options()).await.unwrap();
    let token = backend.get_token(1).await.unwrap();
    let endpoint = format!("localhost:{}", server.client_addr.port());
    let options = rtm_sdk::RtmClientOptions::new(endpoint.clone(), crate::support::PID, 1, token.clone())
        .tls_with_ca_pem(pki.ca_pem.as_bytes())
        .unwrap();
    let player = rtm_sdk::RtmClient::login(options).await.unwrap();
    player.enter_room(7).await.unwrap();
    assert_eq!(backend.get_room_members(7).await.unwrap(), vec![1]);
    // Without TLS, the TLS endpoint does not log anyone in.
    let plain = rtm_sdk::RtmClientOptions::new(endpoint, crate::support::PID, 1, token)
        .auto_relogin(false)
        .quest_timeout(Duration::from_secs(2));
    assert!(rtm_sdk::RtmClient::login(plain).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
