//! TLS and a password to Redis (`engine.redis_tls*`, `redis_password`),
//! against a one-master cluster the test starts itself: TLS only, client
//! certificates required (`tls-auth-clients yes`), `tls-cluster yes` so
//! that `CLUSTER SLOTS` names TLS ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rtm_protocol::methods::*;

use crate::support::*;

/// TLS port of the test's Redis (its cluster bus: 27301).
const PORT: u16 = 17301;
const PASSWORD: &str = "s3cret-for-tls-test";

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in a
/// fresh directory; and the Redis node using them, stopped on drop.
struct TlsRedis {
    dir: PathBuf,
    redis: Child,
}

impl TlsRedis {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("rtm-redis-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // Names of their own: OpenSSL (Redis, redis-cli) takes a leaf whose
        // issuer name equals its subject for self-signed.
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "rtm test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (name, san) in [("server", "127.0.0.1"), ("client", "rtm-node")] {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec![san.to_string()]).unwrap();
            params.distinguished_name.push(rcgen::DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        let path = |name: &str| dir.join(name).display().to_string();
        let redis = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &PORT.to_string()])
            .args(["--tls-cert-file", &path("server.pem"), "--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem"), "--tls-auth-clients", "yes"])
            .args(["--cluster-enabled", "yes", "--tls-cluster", "yes", "--cluster-port", "27301"])
            .args(["--cluster-config-file", &path("nodes.conf"), "--dir", &path("")])
            .args(["--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--logfile", &path("redis.log")])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/redis-cluster.sh needs it too)");
        let node = Self { dir, redis };
        node.wait_for("PING", "PONG");
        // One master serving every slot is a whole cluster.
        node.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        node.wait_for("CLUSTER INFO", "cluster_state:ok");
        node
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `redis-cli` over TLS with the client certificate and the password.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert", &self.path("ca.pem"), "--cert", &self.path("client.pem")])
            .args(["--key", &self.path("client.key"), "-p", &PORT.to_string(), "-a", PASSWORD, "--no-auth-warning"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn wait_for(&self, command: &str, expected: &str) {
        let args: Vec<&str> = command.split(' ').collect();
        for _ in 0..200 {
            if self.cli(&args).contains(expected) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis on {PORT}: no '{expected}' to {command}; log: {}", read(&self.dir.join("redis.log")));
    }

    /// Puts a node's config on this Redis, over TLS, in a fresh namespace.
    fn configure(&self, config: &mut rtm_server::Config, namespace: &str, client_cert: bool) {
        use_redis(config, namespace);
        config.engine.redis_nodes = vec![format!("127.0.0.1:{PORT}")];
        config.engine.redis_password = PASSWORD.into();
        config.engine.redis_op_timeout_ms = 1000;
        config.engine.redis_tls = true;
        config.engine.redis_tls_ca_path = self.path("ca.pem");
        if client_cert {
            config.engine.redis_tls_cert_path = self.path("client.pem");
            config.engine.redis_tls_key_path = self.path("client.key");
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.redis.kill();
        let _ = self.redis.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_node_keeps_its_state_in_redis_over_tls_with_a_password() {
    let redis = TlsRedis::start();
    let namespace = fresh_namespace();
    let mut node = TestServer::start_with(|c| redis.configure(c, &namespace, true)).await;
    node.assert_running().await;
    let mut other = TestServer::start_with(|c| redis.configure(c, &namespace, true)).await;
    other.assert_running().await;
    let mut api = node.client().await;
    api.call(&AddRoomMembers { rid: 7, uids: vec![3, 1, 2] }).await.unwrap();
    let mut members = api.call(&GetRoomMembers { rid: 7 }).await.unwrap().uids;
    members.sort_unstable();
    assert_eq!(members, vec![1, 2, 3]);
    // The other node hears of it on its sharded subscription, over TLS too.
    let mut on_other = other.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while on_other.call(&GetRoomMembers { rid: 7 }).await.unwrap().uids.len() != 3 {
        assert!(std::time::Instant::now() < deadline, "the other node never saw the change");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    other.stop().await;
    // The change is in Redis (read over TLS by redis-cli), not only in the node.
    let keys = redis.cli(&["--scan", "--pattern", &format!("{namespace}:*:r:{PID}:7:m")]);
    assert_eq!(keys.lines().count(), 1, "{keys:?}");
    let mut stored: Vec<i64> = redis.cli(&["SMEMBERS", keys.trim()]).lines().map(|l| l.parse().unwrap()).collect();
    stored.sort_unstable();
    assert_eq!(stored, vec![1, 2, 3]);
    node.stop().await;

    // A node that does not show the client certificate Redis asks for,
    // or has the wrong password, does not start, and says why.
    let without_cert = TestServer::start_with(|c| redis.configure(c, &namespace, false)).await;
    let why = without_cert.start_failure().await;
    assert!(why.contains("no redis node answered") && why.contains(&PORT.to_string()), "{why}");
    let wrong_password = TestServer::start_with(|c| {
        redis.configure(c, &namespace, true);
        c.engine.redis_password = "not-it".into();
    })
    .await;
    let why = wrong_password.start_failure().await;
    assert!(why.contains("no redis node answered"), "{why}");
}
