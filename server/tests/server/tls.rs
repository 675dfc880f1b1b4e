//! The TLS listener, with certificates made at test time.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rtm_sdk::{ClientOptions, ErrorKind, RtmServerClient};
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// A CA and a "localhost" certificate signed by it, written to a fresh
/// temporary directory.
pub struct Pki {
    dir: PathBuf,
    pub ca_pem: String,
}

impl Pki {
    #[allow(clippy::new_without_default)] // each one is a fresh CA: no default
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rtm-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Self { dir, ca_pem: String::new() };
        pki.issue()
    }

    /// Makes a new CA and server certificate, replacing the files.
    fn issue(mut self) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &ca).unwrap();
        std::fs::write(self.cert_path(), cert.pem()).unwrap();
        std::fs::write(self.key_path(), key.serialize_pem()).unwrap();
        self.ca_pem = ca.pem();
        self
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    pub fn configure(&self, config: &mut rtm_server::Config) {
        config.tls.cert_path = self.cert_path().display().to_string();
        config.tls.key_path = self.key_path().display().to_string();
    }

    fn client_options(&self, addr: std::net::SocketAddr, ca_pem: &str) -> ClientOptions {
        ClientOptions::new(addr.to_string(), PID, SECRET)
            .auto_reconnect(false)
            .connect_timeout(Duration::from_secs(5))
            .tls_with_ca_pem(ca_pem.as_bytes())
            .unwrap()
            .tls_server_name("localhost")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn calls_over_tls_and_refusals() {
    let pki = Pki::new();
    let server = TestServer::start_full(|c| pki.configure(c), false, true).await;
    let tls_addr = server.tls_addr.unwrap();

    // The SDK over TLS, trusting the test CA.
    let client = RtmServerClient::connect(pki.client_options(tls_addr, &pki.ca_pem)).await.unwrap();
    client.add_room_member(1, 2).await.unwrap();
    assert_eq!(client.get_room_members(1).await.unwrap(), vec![2]);

    // A client trusting another CA is refused.
    let other = Pki::new();
    let err = RtmServerClient::connect(pki.client_options(tls_addr, &other.ca_pem)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);

    // Plain FPNN on the TLS port is refused without harming anyone.
    let mut plain = Client::connect(tls_addr, PID, SECRET).await;
    let mut out = bytes::BytesMut::new();
    plain.encode_signed(&mut out, &rtm_protocol::methods::AddRoomMember { rid: 1, uid: 3 });
    let _ = plain.stream.write_all(&out).await;
    plain.expect_closed().await;

    client.add_room_member(1, 4).await.unwrap();
    // Heavy traffic both ways (2,000 concurrent calls with 32 KiB of info
    // each way): nothing may stall in the TLS layer's buffers.
    let big = "x".repeat(32 * 1024);
    let mut calls = tokio::task::JoinSet::new();
    for rid in 0..1_000i64 {
        let (client, big) = (client.clone(), big.clone());
        calls.spawn(async move {
            client.set_room_info(100 + rid, Some(&big), None).await.unwrap();
            client.get_room_info(100 + rid).await.unwrap().oinfo.len()
        });
    }
    while let Some(len) = calls.join_next().await {
        assert_eq!(len.unwrap(), big.len());
    }
    // TLS and plain clients see the same rooms.
    let mut c = server.client().await;
    assert_eq!(c.call(&rtm_protocol::methods::GetRoomMembers { rid: 1 }).await.unwrap().uids, vec![2, 4]);
    server.stop().await;
}

/// The real binary, killed on drop.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_old_connections() {
    let pki = Pki::new();
    let (fpnn_port, tls_port) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_rtm-server"))
        .args(["--listen", &format!("127.0.0.1:{fpnn_port}")])
        // The deprecated key still works (with a warning in the log).
        .args(["--set", &format!("tls.listen=127.0.0.1:{tls_port}")])
        .args(["--set", &format!("tls.cert_path={}", pki.cert_path().display())])
        .args(["--set", &format!("tls.key_path={}", pki.key_path().display())])
        .args(["--set", "metrics.listen="])
        .args(["--set", "storage.data_dir="])
        // Other tests' servers may hold the client gate's default ports.
        .args(["--set", r#"gates.client.listeners=[{addr="127.0.0.1:0"}]"#])
        .args(["--set", "gates.client.websocket_listeners=[]"])
        .env("RTM_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _binary = Binary(child);
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let options = |ca: &str| {
        ClientOptions::new(tls_addr.to_string(), 11000001, "demo-secret-for-local-use-only")
            .auto_reconnect(false)
            .tls_with_ca_pem(ca.as_bytes())
            .unwrap()
            .tls_server_name("localhost")
    };
    let mut old = None;
    for _ in 0..100 {
        if let Ok(client) = RtmServerClient::connect(options(&pki.ca_pem)).await {
            old = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old = old.expect("the server came up with TLS");
    old.add_room_member(1, 1).await.unwrap();

    let first_ca = pki.ca_pem.clone();
    let pki = pki.issue();
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let mut reloaded = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(client) = RtmServerClient::connect(options(&pki.ca_pem)).await {
            reloaded = Some(client);
            break;
        }
    }
    let fresh = reloaded.expect("new handshakes use the new certificate");
    fresh.add_room_member(1, 2).await.unwrap();
    // The connection made with the old certificate still works.
    assert_eq!(old.get_room_members(1).await.unwrap(), vec![1, 2]);
    // And the old CA no longer matches new handshakes.
    assert!(RtmServerClient::connect(options(&first_ca)).await.is_err());
}

#[test]
fn a_bad_certificate_path_is_a_clear_startup_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_rtm-server"))
        .args(["--set", r#"gates.server.listeners=[{addr = "127.0.0.1:0"}, {addr = "127.0.0.1:0", tls = true}]"#])
        .args(["--set", "tls.cert_path=/nonexistent/cert.pem"])
        .args(["--set", "tls.key_path=/nonexistent/key.pem"])
        .args(["--set", "metrics.listen="])
        .args(["--set", "storage.data_dir="])
        // Not the client gate's default ports: something else may hold them.
        .args(["--set", r#"gates.client.listeners=[{addr="127.0.0.1:0"}]"#])
        .args(["--set", "gates.client.websocket_listeners=[]"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls.cert_path") && stderr.contains("/nonexistent/cert.pem"), "{stderr}");
}
