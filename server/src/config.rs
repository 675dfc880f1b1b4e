//! Configuration: an embedded default, a TOML file, `RTM_*` environment
//! variables and `--set` flags, merged in that order, then validated.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use rtm_protocol::encryption::{Curve, KeyError};
use serde::{Deserialize, Serialize};

/// The embedded default configuration.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// The pid of the demo project in the embedded default.
pub const DEMO_PID: i64 = 11000001;

/// A configuration mistake; its message is one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server-wide settings.
    pub server: ServerConfig,
    /// The doors clients come in by: their endpoints, caps and limits.
    pub gates: GatesConfig,
    /// The metrics and health listener.
    pub metrics: MetricsConfig,
    /// The TLS listener.
    pub tls: TlsConfig,
    /// Durability.
    pub storage: StorageConfig,
    /// Where room state lives: embedded, or a Redis Cluster.
    #[serde(default)]
    pub engine: EngineConfig,
    /// Room message history and its retention.
    pub history: HistoryConfig,
    /// Room recording to files.
    #[serde(default)]
    pub recording: RecordingConfig,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Parameter limits.
    pub limits: Limits,
    /// Per-project rate limit.
    pub rate_limit: RateLimitConfig,
    /// Room events and listeners.
    pub events: EventsConfig,
    /// Client sessions: login, pings, multi-login, relogin grace, tokens.
    pub sessions: SessionsConfig,
    /// The client gate's WebSocket endpoints: origins and handshakes.
    pub websocket: WebSocketConfig,
    /// The projects this server serves.
    pub projects: Vec<ProjectConfig>,
    /// Warnings about deprecated keys the configuration was loaded with
    /// (filled by loading; logged at start-up).
    #[serde(skip)]
    pub deprecations: Vec<String>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Shutdown drain time, in seconds.
    pub drain_timeout_secs: u64,
    /// The runtime's worker threads; 0 = one per CPU the process may use.
    pub worker_threads: usize,
    /// Every how many tasks a worker runs the connection that has waited
    /// longest rather than the one woken last; 1 = always (first come,
    /// first served), 0 = tokio's default (more throughput when saturated,
    /// but some connections then wait many times as long as the rest).
    pub fair_interval: u32,
    /// Deprecated: `gates.server.listeners`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Deprecated: `gates.server.max_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Deprecated: `gates.server.idle_timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// Deprecated: `gates.server.max_frame_len`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame_len: Option<usize>,
    /// Deprecated: `gates.server.max_pending_answers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_answers: Option<usize>,
}

/// `[gates]`: one section per gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesConfig {
    /// The RTM server API, for backends.
    pub server: GateConfig,
    /// The client gate, for players' RTM client SDKs.
    pub client: GateConfig,
}

/// Several sessions per user, all receiving, or one (a new login kicks
/// the older sessions out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiLogin {
    /// Every session of a user receives everything.
    All,
    /// A new login sends `kickout` to the user's other sessions.
    Single,
}

/// `[sessions]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A client that has not logged in this long after connecting is closed.
    pub auth_timeout_secs: u64,
    /// How often the gate pings a logged-in client.
    pub ping_interval_secs: u64,
    /// Several sessions per user, or one.
    pub multi_login: MultiLogin,
    /// How long a user's client-entered rooms outlive the user's last session.
    pub relogin_grace_secs: u64,
    /// How long a token stays valid.
    pub token_lifetime_secs: u64,
    /// Pushes queued per client session before it is closed as too slow.
    pub outbox_len: usize,
    /// Bytes of pushes queued per client session before it is closed as too slow.
    pub outbox_bytes: usize,
}

/// `[gates.<name>]`: where a gate listens, and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Connections past this (over all the gate's listeners) are closed at once.
    pub max_connections: usize,
    /// Idle connections are closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// Largest accepted frame, header included.
    pub max_frame_len: usize,
    /// Answers a connection may owe before reading pauses.
    pub max_pending_answers: usize,
    /// The gate's endpoints.
    pub listeners: Vec<Endpoint>,
    /// Endpoints speaking FPNN over WebSocket (`GET /service/websocket`),
    /// for browsers; the client gate only.
    #[serde(default)]
    pub websocket_listeners: Vec<Endpoint>,
    /// FPNN `*key` encryption on the gate's plain TCP endpoints.
    #[serde(default)]
    pub ecdh: EcdhConfig,
}

/// `[gates.<name>.ecdh]`: FPNN `*key` encryption (ECDH, then AES-CFB), for
/// SDKs built with the server's public key. Off while `key_path` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcdhConfig {
    /// The server's raw private key (`rtm-server keygen` writes one).
    pub key_path: String,
    /// secp256k1, secp256r1, secp224r1 or secp192r1.
    pub curve: String,
    /// Close connections whose first packet is not `*key`.
    pub required: bool,
}

impl Default for EcdhConfig {
    fn default() -> Self {
        Self { key_path: String::new(), curve: Curve::default().name().into(), required: false }
    }
}

impl EcdhConfig {
    /// Whether `*key` is accepted.
    pub fn enabled(&self) -> bool {
        !self.key_path.is_empty()
    }

    /// The configured curve (validated with the config).
    pub fn curve(&self) -> Result<Curve, KeyError> {
        self.curve.parse()
    }
}

/// One endpoint of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Listen address.
    pub addr: SocketAddr,
    /// FPNN inside TLS (with `[tls]`'s certificate) instead of plain FPNN.
    #[serde(default)]
    pub tls: bool,
}

impl GateConfig {
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The first plain endpoint's address, if any.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|e| !e.tls).map(|e| e.addr)
    }

    /// Makes `addr` the gate's only plain endpoint, and its first, keeping
    /// its TLS ones.
    pub fn set_plain_addr(&mut self, addr: SocketAddr) {
        self.listeners.retain(|e| e.tls);
        self.listeners.insert(0, Endpoint { addr, tls: false });
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// HTTP address for `/metrics`, `/healthz`, `/readyz`; empty = off.
    pub listen: String,
}

/// `[tls]`: the certificate every TLS endpoint serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Deprecated: a `gates.server.listeners` entry with `tls = true`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub listen: String,
    /// PEM certificate chain.
    pub cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: String,
    /// Handshake timeout, in seconds.
    pub handshake_timeout_secs: u64,
}

/// Parses an optional address: empty means off.
fn optional_addr(key: &str, text: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| ConfigError(format!("config key '{key}': '{text}' is not an address like 127.0.0.1:9464")))
}

impl MetricsConfig {
    /// The listen address, or `None` when off.
    pub fn addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        optional_addr("metrics.listen", &self.listen)
    }
}

impl RecordingConfig {
    /// The recording HTTP API's address, or `None` when off.
    pub fn http_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        optional_addr("recording.http_listen", &self.http_listen)
    }
}

impl StorageConfig {
    /// The data directory, or `None` for memory only.
    pub fn dir(&self) -> Option<&std::path::Path> {
        (!self.data_dir.trim().is_empty()).then(|| std::path::Path::new(self.data_dir.trim()))
    }
}

impl TlsConfig {
    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Data directory; empty = in memory only.
    pub data_dir: String,
    /// When acknowledged changes are synced.
    pub fsync: crate::storage::FsyncPolicy,
    /// Log size that triggers a snapshot.
    pub snapshot_after_bytes: u64,
    /// Cut damaged logs instead of refusing to start.
    pub repair: bool,
}

/// `[websocket]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Browser origins allowed to connect (the `Origin` header, e.g.
    /// `https://chat.example.com`); empty allows any.
    pub allowed_origins: Vec<String>,
    /// An HTTP request that does not complete its upgrade this long after
    /// the connection opened is closed.
    pub handshake_timeout_secs: u64,
    /// WebSocket sessions one client address may hold (429 beyond); 0 = no bound.
    pub max_connections_per_ip: usize,
    /// Serve the web chat page at `/chat/` on the WebSocket endpoints.
    pub chat_page: bool,
    /// With the page on: `/chat/token?uid=N` hands a token of this project
    /// for any uid, to anyone. A demo only; 0 = off.
    pub demo_token_pid: i64,
    /// The server sends a WebSocket ping this often (proxies see traffic;
    /// a peer silent for two intervals is cut off); 0 = never.
    pub ping_secs: u64,
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `embedded` or `redis`.
    pub kind: EngineKind,
    /// Redis Cluster seed nodes, `host:port`.
    pub redis_nodes: Vec<String>,
    /// Redis ACL user; empty = none.
    pub redis_username: String,
    /// Redis password; empty = none.
    pub redis_password: String,
    /// How long one operation may retry through a failover.
    pub redis_op_timeout_ms: u64,
    /// How often each partition's sequence is checked (the idle probe).
    pub redis_check_ms: u64,
    /// The first part of every Redis key and channel of this deployment.
    pub redis_namespace: String,
    /// A change is acknowledged once this many replicas have it (`WAIT`);
    /// 0 = when the master has it.
    pub redis_wait_replicas: u32,
    /// How long a change waits for those replicas before its quest fails.
    pub redis_wait_ms: u64,
    /// Connect to Redis over TLS (Redis's `tls-port`, with `tls-cluster yes`
    /// so that the cluster announces its TLS ports).
    pub redis_tls: bool,
    /// PEM file of the CA(s) that signed the Redis nodes' certificates;
    /// empty = the system's trust store.
    pub redis_tls_ca_path: String,
    /// This node's certificate chain and key (PEM), for Redis's
    /// `tls-auth-clients yes`; both or neither.
    pub redis_tls_cert_path: String,
    pub redis_tls_key_path: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            kind: EngineKind::Embedded,
            redis_nodes: vec!["127.0.0.1:17001".into()],
            redis_username: String::new(),
            redis_password: String::new(),
            redis_op_timeout_ms: 2000,
            redis_check_ms: 1000,
            redis_namespace: "rtm".into(),
            redis_wait_replicas: 0,
            redis_wait_ms: 100,
            redis_tls: false,
            redis_tls_ca_path: String::new(),
            redis_tls_cert_path: String::new(),
            redis_tls_key_path: String::new(),
        }
    }
}

/// Which engine holds room state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// In memory, with the write-ahead log of `[storage]`.
    Embedded,
    /// A Redis Cluster.
    Redis,
}

/// `[history]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Whether room messages are kept as history.
    pub enabled: bool,
    /// How long a message is kept, in seconds.
    pub max_age_secs: u64,
    /// The most messages kept per room (the newest).
    pub max_per_room: u64,
    /// Whether a released room's history is kept until it ages out.
    pub keep_released: bool,
    /// Largest `getroommsg` page.
    pub max_page: u32,
    /// How often old messages are removed from disk.
    pub sweep_interval_secs: u64,
    /// Block cache, in MiB.
    pub cache_mib: u64,
}

/// `[recording]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Where recordings are written; empty: `<data_dir>/recordings` (a
    /// temporary directory without a data dir).
    pub dir: String,
    /// A new slice starts after this many seconds.
    pub slice_secs: u64,
    /// A new slice starts once one holds this many bytes.
    pub slice_bytes: u64,
    /// How often new messages are written to the files, in milliseconds.
    pub poll_ms: u64,
    /// How often the files are synced and the progress saved, in milliseconds.
    #[serde(default = "default_sync_ms")]
    pub sync_ms: u64,
    /// How long an ended recording can still be queried, in seconds.
    pub keep_completed_secs: u64,
    /// Recording requests a project may make per second.
    pub requests_per_second: u32,
    /// The recording HTTP API's address (`/v1/apps/{pid}/cloud_recording/…`); empty = off.
    #[serde(default)]
    pub http_listen: String,
    /// How long `stoprecording` of an `s3` recording waits for its last
    /// files to reach the bucket before it answers `backuped`, in milliseconds.
    #[serde(default = "default_stop_upload_wait_ms")]
    pub stop_upload_wait_ms: u64,
}

fn default_stop_upload_wait_ms() -> u64 {
    2000
}

fn default_sync_ms() -> u64 {
    1000
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: String::new(),
            slice_secs: 3600,
            slice_bytes: 64 * 1024 * 1024,
            poll_ms: 50,
            sync_ms: default_sync_ms(),
            keep_completed_secs: 86_400,
            requests_per_second: 10,
            http_listen: String::new(),
            stop_upload_wait_ms: default_stop_upload_wait_ms(),
        }
    }
}

/// A project's own history retention (`[[projects]] history = {..}`);
/// what it leaves out comes from `[history]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionOverride {
    /// How long a message is kept, in seconds.
    pub max_age_secs: Option<u64>,
    /// The most messages kept per room.
    pub max_per_room: Option<u64>,
    /// Whether a released room's history is kept until it ages out.
    pub keep_released: Option<bool>,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted skew of `ts`, in seconds.
    pub time_window_secs: u64,
    /// Capacity of the replay cache, in quests.
    pub replay_cache_entries: usize,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest `oinfo` / `pinfo`, in bytes.
    pub max_info_bytes: usize,
    /// Most items in a list parameter.
    pub max_list_len: usize,
    /// Largest message body, in bytes.
    pub max_message_bytes: usize,
    /// Largest message `attrs`, in bytes.
    pub max_attrs_bytes: usize,
    /// Most rooms a user may be in by entering as a client.
    pub max_rooms_per_user: usize,
    /// Room messages a user may send per second as a client; 0 = unlimited.
    pub client_messages_per_second: u32,
}

/// `[events]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Events queued per listener; a listener whose queue is full is
    /// disconnected as too slow.
    pub listener_queue: usize,
    /// For this long after start-up, events of projects with no listener
    /// are held for the first listeners (0 = off).
    pub startup_hold_secs: u64,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Quests per second per project; 0 = off.
    pub quests_per_second: u32,
    /// Burst capacity; 0 = one second's worth.
    pub burst: u32,
}

/// One `[[projects]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project id.
    pub pid: i64,
    /// The shared secret quests are signed with.
    pub secret: String,
    /// The project's own history retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<RetentionOverride>,
    /// Credentials for the recording HTTP API (HTTP Basic); absent: the
    /// project cannot use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_api: Option<ApiCredentials>,
    /// S3-compatible storage for recordings started with `storage: "s3"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_s3: Option<S3Config>,
}

/// An S3-compatible bucket (`[[projects]] recording_s3 = {…}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `https://s3.eu-west-1.amazonaws.com`, or a MinIO/Ceph/R2 address.
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Empty: from the environment (`AWS_ACCESS_KEY_ID`, …).
    #[serde(default)]
    pub access_key_id: String,
    #[serde(default)]
    pub secret_access_key: String,
}

fn default_region() -> String {
    "us-east-1".into()
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl ProjectConfig {
    /// A project with its id and secret, everything else default.
    pub fn new(pid: i64, secret: impl Into<String>) -> Self {
        Self { pid, secret: secret.into(), history: None, recording_api: None, recording_s3: None }
    }
}

/// A customer key and secret for HTTP Basic authentication.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCredentials {
    /// The user name.
    pub key: String,
    /// The password.
    pub secret: String,
}

impl std::fmt::Debug for ApiCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCredentials").field("key", &self.key).finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The shutdown drain timeout.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::from_toml(DEFAULT_CONFIG).expect("the embedded default config is valid")
    }
}

impl Config {
    /// Parses and validates a complete configuration.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = parse_table(text, "config")?;
        Self::from_table(table)
    }

    /// Builds the effective configuration: the embedded default, overlaid by
    /// the file (if any), then by `RTM_*` variables from `env`, then by
    /// `overrides` (`section.key=value`).
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table = parse_table(DEFAULT_CONFIG, "embedded default")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
            let file_table = parse_table(&text, &path.display().to_string())?;
            merge(&mut table, file_table);
        }
        let mut env_vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("RTM_")).collect();
        env_vars.sort();
        let keys = settable_keys(&table);
        for (name, value) in env_vars {
            if let Some(path) = keys.iter().find(|path| env_name(path) == name) {
                set(&mut table, path, &value, &name)?;
            }
        }
        for item in overrides {
            let (path, value) =
                item.split_once('=').ok_or_else(|| ConfigError(format!("--set {item}: expected section.key=value")))?;
            let path = path.trim();
            if !path.contains('.') {
                return Err(ConfigError(format!("--set {item}: expected section.key=value")));
            }
            if !keys.iter().any(|k| k == path) {
                return Err(ConfigError(format!("--set {item}: unknown key '{path}'")));
            }
            set(&mut table, path, value, &format!("--set {path}"))?;
        }
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        let config: Self = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // toml appends "in `key`" lines; the path already names the key.
            let inner = one_line(inner.lines().filter(|l| !l.trim_start().starts_with("in `")));
            ConfigError(format!("config key '{path}': {inner}"))
        })?;
        let mut config = config;
        config.apply_deprecated_keys()?;
        config.validate()?;
        Ok(config)
    }

    /// Moves values from deprecated keys to their new place, noting a
    /// warning for each.
    fn apply_deprecated_keys(&mut self) -> Result<(), ConfigError> {
        let gate = &mut self.gates.server;
        let mut used = Vec::new();
        if let Some(addr) = self.server.listen.take() {
            gate.set_plain_addr(addr);
            used.push(("server.listen", "gates.server.listeners"));
        }
        let tls = std::mem::take(&mut self.tls.listen);
        if let Some(addr) = optional_addr("tls.listen", &tls)? {
            gate.listeners.push(Endpoint { addr, tls: true });
            used.push(("tls.listen", "gates.server.listeners (with tls = true)"));
        }
        if let Some(n) = self.server.max_connections.take() {
            gate.max_connections = n;
            used.push(("server.max_connections", "gates.server.max_connections"));
        }
        if let Some(n) = self.server.idle_timeout_secs.take() {
            gate.idle_timeout_secs = n;
            used.push(("server.idle_timeout_secs", "gates.server.idle_timeout_secs"));
        }
        if let Some(n) = self.server.max_frame_len.take() {
            gate.max_frame_len = n;
            used.push(("server.max_frame_len", "gates.server.max_frame_len"));
        }
        if let Some(n) = self.server.max_pending_answers.take() {
            gate.max_pending_answers = n;
            used.push(("server.max_pending_answers", "gates.server.max_pending_answers"));
        }
        self.deprecations
            .extend(used.into_iter().map(|(old, new)| format!("config key '{old}' is deprecated; use '{new}'")));
        Ok(())
    }

    /// Whether any endpoint of any gate speaks TLS.
    pub fn uses_tls(&self) -> bool {
        [&self.gates.server, &self.gates.client].iter().any(|gate| gate.listeners.iter().any(|e| e.tls))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("config key '{key}': {why}")));
        if self.engine.kind == EngineKind::Redis {
            if self.engine.redis_nodes.is_empty() {
                return fail("engine.redis_nodes", "the redis engine needs at least one seed node");
            }
            let ns = &self.engine.redis_namespace;
            if ns.is_empty() || ns.contains(['{', '}', ' ']) {
                return fail("engine.redis_namespace", "must be non-empty, without braces or spaces");
            }
            let e = &self.engine;
            if e.redis_tls_cert_path.is_empty() != e.redis_tls_key_path.is_empty() {
                return fail(
                    "engine.redis_tls_cert_path",
                    "give both redis_tls_cert_path and redis_tls_key_path, or neither",
                );
            }
            let tls_files = [&e.redis_tls_ca_path, &e.redis_tls_cert_path, &e.redis_tls_key_path];
            if !e.redis_tls && tls_files.iter().any(|path| !path.is_empty()) {
                return fail("engine.redis_tls", "TLS files are set for Redis but redis_tls is false");
            }
        }
        let mut endpoints: Vec<(SocketAddr, &str)> = Vec::new();
        for (name, gate) in [("server", &self.gates.server), ("client", &self.gates.client)] {
            let key = |k: &str| format!("gates.{name}.{k}");
            if name == "server" && !gate.websocket_listeners.is_empty() {
                return fail(&key("websocket_listeners"), "WebSocket endpoints belong to gates.client");
            }
            for endpoint in gate.listeners.iter().chain(&gate.websocket_listeners).filter(|e| e.addr.port() != 0) {
                if let Some((_, other)) = endpoints.iter().find(|(addr, _)| *addr == endpoint.addr) {
                    // Release 0.1.0's server API listened on 13321, now the client gate's default.
                    let why = format!(
                        "{} is also an endpoint of gates.{other}; each address serves one gate \
                         (the server API's default moved from 13321 to 13315, the client gate took 13321)",
                        endpoint.addr
                    );
                    return fail(&key("listeners"), &why);
                }
                endpoints.push((endpoint.addr, name));
            }
            if gate.max_connections == 0 {
                return fail(&key("max_connections"), "must be at least 1");
            }
            if gate.idle_timeout_secs == 0 {
                return fail(&key("idle_timeout_secs"), "must be at least 1");
            }
            if gate.max_frame_len < 1024 {
                return fail(&key("max_frame_len"), "must be at least 1024");
            }
            if gate.max_pending_answers == 0 {
                return fail(&key("max_pending_answers"), "must be at least 1");
            }
            if gate.listeners.is_empty() {
                return fail(&key("listeners"), "at least one endpoint is required");
            }
            if let Err(e) = gate.ecdh.curve() {
                return fail(&key("ecdh.curve"), &e.to_string());
            }
            if gate.ecdh.required && !gate.ecdh.enabled() {
                return fail(&key("ecdh.required"), "needs gates.<gate>.ecdh.key_path");
            }
            if gate.ecdh.enabled() && gate.listeners.iter().all(|e| e.tls) {
                return fail(&key("ecdh.key_path"), "*key encryption runs on plain endpoints; this gate has none");
            }
        }
        let sessions = &self.sessions;
        if sessions.ping_interval_secs == 0 || sessions.ping_interval_secs >= self.gates.client.idle_timeout_secs {
            return fail("sessions.ping_interval_secs", "must be at least 1 and below gates.client.idle_timeout_secs");
        }
        let recording = &self.recording;
        if recording.poll_ms == 0 || recording.slice_secs == 0 || recording.slice_bytes < 1024 {
            return fail("recording", "poll_ms and slice_secs must be at least 1, slice_bytes at least 1024");
        }
        if recording.requests_per_second == 0 {
            return fail("recording.requests_per_second", "must be at least 1");
        }
        if sessions.auth_timeout_secs == 0 {
            return fail("sessions.auth_timeout_secs", "must be at least 1");
        }
        if sessions.token_lifetime_secs == 0 {
            return fail("sessions.token_lifetime_secs", "must be at least 1");
        }
        if sessions.outbox_len == 0 {
            return fail("sessions.outbox_len", "must be at least 1");
        }
        if sessions.outbox_bytes < 65536 {
            return fail("sessions.outbox_bytes", "must be at least 65536");
        }
        let history = &self.history;
        if history.max_page == 0 {
            return fail("history.max_page", "must be at least 1");
        }
        if history.sweep_interval_secs == 0 {
            return fail("history.sweep_interval_secs", "must be at least 1");
        }
        let retentions = std::iter::once((String::from("history"), history.max_age_secs, history.max_per_room)).chain(
            self.projects.iter().filter_map(|p| {
                let o = p.history?;
                let key = format!("projects[pid = {}].history", p.pid);
                Some((
                    key,
                    o.max_age_secs.unwrap_or(history.max_age_secs),
                    o.max_per_room.unwrap_or(history.max_per_room),
                ))
            }),
        );
        for (key, max_age_secs, max_per_room) in retentions {
            if max_age_secs == 0 {
                return fail(&format!("{key}.max_age_secs"), "must be at least 1");
            }
            if max_per_room == 0 {
                return fail(&format!("{key}.max_per_room"), "must be at least 1");
            }
        }
        self.metrics.addr()?;
        if self.uses_tls() {
            if self.tls.cert_path.is_empty() {
                return fail("tls.cert_path", "a certificate is required when an endpoint has tls = true");
            }
            if self.tls.key_path.is_empty() {
                return fail("tls.key_path", "a private key is required when an endpoint has tls = true");
            }
            if self.tls.handshake_timeout_secs == 0 {
                return fail("tls.handshake_timeout_secs", "must be at least 1");
            }
        }
        if self.storage.snapshot_after_bytes < 4096 {
            return fail("storage.snapshot_after_bytes", "must be at least 4096");
        }
        if self.auth.time_window_secs == 0 || self.auth.time_window_secs > 86_400 {
            return fail("auth.time_window_secs", "must be between 1 and 86400");
        }
        if self.auth.replay_cache_entries < 1024 {
            return fail("auth.replay_cache_entries", "must be at least 1024");
        }
        if self.limits.max_list_len == 0 {
            return fail("limits.max_list_len", "must be at least 1");
        }
        if self.events.listener_queue == 0 {
            return fail("events.listener_queue", "must be at least 1");
        }
        if self.projects.is_empty() {
            return fail("projects", "at least one project is required");
        }
        let mut seen = HashSet::new();
        for (i, p) in self.projects.iter().enumerate() {
            if p.pid <= 0 {
                return fail(&format!("projects[{i}].pid"), "must be positive");
            }
            if p.secret.is_empty() {
                return fail(&format!("projects[{i}].secret"), "must not be empty");
            }
            if !seen.insert(p.pid) {
                return fail(&format!("projects[{i}].pid"), &format!("pid {} is listed twice", p.pid));
            }
        }
        Ok(())
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }

    /// Whether the demo project of the embedded default is still configured
    /// with its published secret.
    pub fn has_demo_project(&self) -> bool {
        let default = Self::default();
        self.projects.iter().any(|p| default.projects.contains(p))
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map(|s| text[..s.start].lines().count().max(1));
        let msg = one_line(e.message().lines());
        match line {
            Some(line) => ConfigError(format!("{origin}: line {line}: {msg}")),
            None => ConfigError(format!("{origin}: {msg}")),
        }
    })
}

/// Joins the non-empty lines of a message with "; ".
fn one_line<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines.map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Overlays `top` on `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Keys still accepted but no longer in the default (see
/// `Config::apply_deprecated_keys`), with the type of their value.
const DEPRECATED_KEYS: &[(&str, toml::Value)] = &[
    ("server.listen", toml::Value::String(String::new())),
    ("server.max_connections", toml::Value::Integer(0)),
    ("server.idle_timeout_secs", toml::Value::Integer(0)),
    ("server.max_frame_len", toml::Value::Integer(0)),
    ("server.max_pending_answers", toml::Value::Integer(0)),
    ("tls.listen", toml::Value::String(String::new())),
];

/// Every key `--set` and `RTM_*` may set: the dotted paths of the values
/// in `table` (outside arrays of tables), and the deprecated keys.
fn settable_keys(table: &toml::Table) -> Vec<String> {
    fn walk(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(inner) => walk(inner, &path, out),
                _ if !prefix.is_empty() => out.push(path),
                _ => {}
            }
        }
    }
    let mut keys = Vec::new();
    walk(table, "", &mut keys);
    for (path, _) in DEPRECATED_KEYS {
        if !keys.iter().any(|k| k == path) {
            keys.push((*path).to_owned());
        }
    }
    keys
}

/// `gates.server.max_connections` → `RTM_GATES_SERVER_MAX_CONNECTIONS`.
fn env_name(path: &str) -> String {
    format!("RTM_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Sets the key at dotted `path` from text, keeping the type of its current
/// value (an array is given as a TOML value, e.g. `[{addr = "0.0.0.0:1"}]`).
fn set(table: &mut toml::Table, path: &str, raw: &str, origin: &str) -> Result<(), ConfigError> {
    let (sections, key) = path.rsplit_once('.').unwrap_or(("", path));
    let mut keys = table;
    for section in sections.split('.').filter(|s| !s.is_empty()) {
        let entry = keys.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(inner) = entry else {
            return Err(ConfigError(format!("{origin}: '{path}' cannot be set this way")));
        };
        keys = inner;
    }
    let current = keys.get(key).or_else(|| DEPRECATED_KEYS.iter().find(|(p, _)| *p == path).map(|(_, v)| v));
    let value = match current {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| ConfigError(format!("config key '{path}' ({origin}): '{raw}' is not an integer")))?,
        ),
        Some(toml::Value::Boolean(_)) => toml::Value::Boolean(
            raw.trim()
                .parse()
                .map_err(|_| ConfigError(format!("config key '{path}' ({origin}): '{raw}' is not true or false")))?,
        ),
        Some(toml::Value::Array(_)) => {
            let parsed: toml::Table = format!("value = {raw}").parse().map_err(|e: toml::de::Error| {
                ConfigError(format!(
                    "config key '{path}' ({origin}): not a TOML array: {}",
                    one_line(e.message().lines())
                ))
            })?;
            parsed.get("value").cloned().unwrap_or(toml::Value::Array(Vec::new()))
        }
        _ => return Err(ConfigError(format!("{origin}: '{path}' cannot be set this way"))),
    };
    keys.insert(key.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::default();
        assert_eq!(config.gates.server.plain_addr().unwrap().to_string(), "127.0.0.1:13315");
        assert_eq!(config.gates.client.plain_addr().unwrap().to_string(), "127.0.0.1:13321");
        assert_eq!(config.gates.server.idle_timeout_secs, 60);
        assert_eq!(config.gates.server.max_frame_len, 8 * 1024 * 1024);
        assert!(config.deprecations.is_empty());
        assert_eq!(config.limits.max_info_bytes, 64 * 1024);
        assert_eq!(config.limits.max_list_len, 100);
        assert_eq!(config.projects[0].pid, DEMO_PID);
        assert!(config.has_demo_project());
    }

    #[test]
    fn env_and_set_override_in_order() {
        let config = Config::load(
            None,
            env(&[("RTM_GATES_SERVER_IDLE_TIMEOUT_SECS", "9"), ("RTM_STORAGE_FSYNC", "off"), ("PATH", "/bin")]),
            &["gates.server.idle_timeout_secs=7".into(), r#"gates.server.listeners=[{addr = "0.0.0.0:1"}]"#.into()],
        )
        .unwrap();
        assert_eq!(config.gates.server.listeners, vec![Endpoint { addr: "0.0.0.0:1".parse().unwrap(), tls: false }]);
        assert_eq!(config.gates.server.idle_timeout_secs, 7);
        assert_eq!(config.storage.fsync, crate::storage::FsyncPolicy::Off);
    }

    #[test]
    fn deprecated_keys_still_work_with_a_warning() {
        let config = Config::load(
            None,
            env(&[("RTM_SERVER_LISTEN", "0.0.0.0:1"), ("RTM_SERVER_IDLE_TIMEOUT_SECS", "9")]),
            &[
                "server.max_connections=5".into(),
                "tls.listen=127.0.0.1:2".into(),
                "tls.cert_path=c".into(),
                "tls.key_path=k".into(),
            ],
        )
        .unwrap();
        let gate = &config.gates.server;
        assert_eq!(
            gate.listeners,
            vec![
                Endpoint { addr: "0.0.0.0:1".parse().unwrap(), tls: false },
                Endpoint { addr: "127.0.0.1:2".parse().unwrap(), tls: true },
            ]
        );
        assert_eq!((gate.idle_timeout_secs, gate.max_connections), (9, 5));
        assert_eq!(config.deprecations.len(), 4, "{:?}", config.deprecations);
        assert!(config.deprecations[0].contains("'server.listen' is deprecated"), "{:?}", config.deprecations);
        let mut file = DEFAULT_CONFIG.to_owned();
        file = file.replace("[storage]", "[server.x]\n[storage]");
        assert!(Config::from_toml(&file).is_err(), "unknown keys are still refused");
        let old = DEFAULT_CONFIG.replace("drain_timeout_secs = 5", "drain_timeout_secs = 5\nlisten = \"127.0.0.1:7\"");
        let config = Config::from_toml(&old).unwrap();
        assert_eq!(config.gates.server.plain_addr().unwrap().port(), 7);
        assert_eq!(
            Config::from_toml(&config.to_toml()).unwrap().gates,
            config.gates,
            "print-config writes the new keys"
        );
    }

    #[test]
    fn one_address_serves_one_gate() {
        // A release 0.1.0 config that spells out its server API address.
        let err = Config::load(None, env(&[("RTM_SERVER_LISTEN", "127.0.0.1:13321")]), &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("gates.client.listeners"), "{message}");
        assert!(message.contains("127.0.0.1:13321 is also an endpoint of gates.server"), "{message}");
        assert!(message.contains("moved from 13321 to 13315"), "{message}");
        // Port 0 (any free port) may appear on both.
        let both_any = [
            r#"gates.server.listeners=[{ addr = "127.0.0.1:0" }]"#.into(),
            r#"gates.client.listeners=[{ addr = "127.0.0.1:0" }]"#.into(),
        ];
        Config::load(None, env(&[]), &both_any).unwrap();
    }

    #[test]
    fn errors_are_one_line_and_name_the_key() {
        let err = Config::load(None, env(&[("RTM_GATES_SERVER_MAX_CONNECTIONS", "lots")]), &[]).unwrap_err();
        assert!(err.to_string().contains("gates.server.max_connections"), "{err}");
        let err = Config::load(None, [], &["server.listen=nowhere".into()]).unwrap_err();
        assert!(err.to_string().contains("'server.listen'"), "{err}");
        let err = Config::load(None, [], &[r#"gates.server.listeners=[{addr = "nowhere"}]"#.into()]).unwrap_err();
        assert!(err.to_string().contains("gates.server.listeners"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = Config::from_toml("[server\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        let mut text = DEFAULT_CONFIG.to_owned();
        text = text.replace("max_pending_answers = 1024", "max_pending_answers = \"x\"");
        let err = Config::from_toml(&text).unwrap_err();
        assert!(err.to_string().starts_with("config key 'gates.server.max_pending_answers': invalid type"), "{err}");
        let err = Config::load(None, [], &["server.nope=1".into()]).unwrap_err();
        assert!(err.to_string().contains("server.nope"), "{err}");
    }

    #[test]
    fn listeners_can_be_turned_off_or_on() {
        let config = Config::default();
        assert_eq!(config.metrics.addr().unwrap(), Some("127.0.0.1:9464".parse().unwrap()));
        assert!(!config.uses_tls());
        let err = Config::load(None, [], &["metrics.listen=nowhere".into()]).unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
        let tls = r#"gates.server.listeners=[{addr = "127.0.0.1:13322", tls = true}]"#;
        let err = Config::load(None, [], &[tls.into()]).unwrap_err();
        assert!(err.to_string().contains("tls.cert_path"), "{err}");
        let off = Config::load(None, [], &["metrics.listen=".into()]).unwrap();
        assert_eq!(off.metrics.addr().unwrap(), None);
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        let mut text = DEFAULT_CONFIG.to_owned();
        text.push_str("\n[extra]\nx = 1\n");
        let err = Config::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn a_project_may_have_its_own_history_retention() {
        let mut text = DEFAULT_CONFIG.to_owned();
        text.push_str("\n[[projects]]\npid = 7\nsecret = \"x\"\nhistory = { max_per_room = 2000 }\n");
        let config = Config::from_toml(&text).unwrap();
        let own = config.projects[1].history.unwrap();
        assert_eq!((own.max_per_room, own.max_age_secs, own.keep_released), (Some(2000), None, None));
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config, "print-config round-trips it");
        let zero = text.replace("max_per_room = 2000", "max_per_room = 0");
        let err = Config::from_toml(&zero).unwrap_err();
        assert!(err.to_string().contains("projects[pid = 7].history.max_per_room"), "{err}");
        let typo = text.replace("max_per_room = 2000", "max_rows = 2000");
        assert!(Config::from_toml(&typo).unwrap_err().to_string().contains("max_rows"));
    }

    #[test]
    fn redis_tls_files_come_with_tls_and_in_pairs() {
        let redis = |extra: &[&str]| {
            let mut sets: Vec<String> = vec!["engine.kind=redis".into()];
            sets.extend(extra.iter().map(|s| s.to_string()));
            Config::load(None, [], &sets)
        };
        redis(&["engine.redis_tls=true", "engine.redis_tls_ca_path=\"ca.pem\""]).unwrap();
        let half = redis(&["engine.redis_tls=true", "engine.redis_tls_cert_path=\"node.pem\""]).unwrap_err();
        assert!(half.to_string().contains("redis_tls_key_path"), "{half}");
        let off = redis(&["engine.redis_tls_ca_path=\"ca.pem\""]).unwrap_err();
        assert!(off.to_string().contains("engine.redis_tls"), "{off}");
    }

    #[test]
    fn duplicate_pids_are_refused() {
        let mut text = DEFAULT_CONFIG.to_owned();
        text.push_str("\n[[projects]]\npid = 11000001\nsecret = \"x\"\n");
        let err = Config::from_toml(&text).unwrap_err();
        assert!(err.to_string().contains("projects[1].pid"), "{err}");
    }

    #[test]
    fn print_config_round_trips() {
        let config = Config::default();
        assert_eq!(Config::from_toml(&config.to_toml()).unwrap(), config);
    }
}
