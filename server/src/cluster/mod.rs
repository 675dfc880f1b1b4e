//! The Redis Cluster the `redis` engine keeps its state in.
//!
//! We route commands ourselves, on `redis`'s async connections (one
//! multiplexed connection per master): every call of ours names one
//! partition, so routing is "partition → slot → master". Owning it means a
//! failover is handled the way we test it: a refused or failed call marks
//! the topology stale, the next call re-reads `CLUSTER SLOTS` from any
//! reachable node, and a call that cannot finish within the operation
//! timeout fails with a clear error rather than hanging. The room
//! operations are the `rtm` function library (`functions.lua`), loaded on
//! every master (functions replicate, so a promoted replica has it).
//!
//! - [`partitions`]: rooms → partitions → hash tags and slots (I/O-free);
//! - [`events`]: the functions' change records → mutations (I/O-free);
//! - [`feed`]: each node's sharded subscriptions and partition followers.

pub(crate) mod events;
pub(crate) mod feed;
pub(crate) mod partitions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::Notify;
use tracing::{info, warn};

pub(crate) use partitions::{partition_of, Layout};

/// The function library, loaded on every master.
const LIBRARY: &str = include_str!("functions.lua");

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisError {
    /// No master answered for the partition within the operation timeout
    /// (a failover in progress, or the cluster is down).
    #[error("redis unavailable for partition {partition}: {last} (retried for {waited_ms} ms)")]
    Unavailable { partition: usize, last: String, waited_ms: u64 },
    /// Redis refused the call (a bug, or a library/version mismatch).
    #[error("redis refused the call: {0}")]
    Refused(String),
    /// The change was made, but fewer replicas than asked confirmed it in
    /// time: a failover now could lose it.
    #[error(
        "partition {partition}: the change was made but {acked} of {wanted} replicas confirmed it within {wait_ms} ms"
    )]
    NotReplicated { partition: usize, acked: u32, wanted: u32, wait_ms: u64 },
    /// No seed node answered `CLUSTER SLOTS`.
    #[error("no redis node answered: {0}")]
    NoTopology(String),
}

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub(crate) struct ClusterOptions {
    /// Seed nodes, `host:port`.
    pub(crate) nodes: Vec<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    /// How long one operation may retry through a failover.
    pub(crate) op_timeout: Duration,
    /// The first part of every key and channel.
    pub(crate) namespace: String,
    /// `(replicas, ms)`: a change is acknowledged once that many replicas
    /// have it (`WAIT`); 0 replicas = at once.
    pub(crate) wait_replicas: (u32, u64),
    /// TLS to every node; `None` = plain TCP.
    pub(crate) tls: Option<RedisTls>,
}

/// TLS to Redis, as PEM bytes read at start.
#[derive(Clone)]
pub(crate) struct RedisTls {
    /// The CAs that signed the nodes' certificates; `None` = the system's.
    pub(crate) root_cert: Option<Vec<u8>>,
    /// This node's certificate chain and key, for `tls-auth-clients`.
    pub(crate) client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("RedisTls")
            .field("own_ca", &self.root_cert.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

/// One master and its command connection.
struct Master {
    addr: String,
    conn: MultiplexedConnection,
    /// Connections for changes that `WAIT` for replicas: a `WAIT` holds
    /// its connection until the replicas answer, which must not stall the
    /// reads and probes on `conn` (nor all other changes, when a shard has
    /// lost its replica and every `WAIT` runs to its timeout).
    waiting: Vec<MultiplexedConnection>,
    next_waiting: std::sync::atomic::AtomicUsize,
    /// A connection of this master dropped: redis-rs does not reconnect a
    /// `MultiplexedConnection`, so the next topology read opens new ones
    /// (even when the master keeps its address: a quick restart, a reset).
    broken: AtomicBool,
}

/// Connections per master for changes that wait for replicas.
const WAITING_CONNECTIONS: usize = 8;

/// Who serves which slot.
struct Topology {
    masters: Vec<Arc<Master>>,
    /// Index into `masters` by slot; `u16::MAX` for an unserved slot.
    slot_master: Vec<u16>,
}

/// Counters for metrics.
#[derive(Default)]
pub(crate) struct RedisStats {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) topology_changes: AtomicU64,
    /// Changes read from a partition log (pub/sub missed them).
    pub(crate) log_fills: AtomicU64,
    /// Whole-partition reloads.
    pub(crate) reloads: AtomicU64,
    /// Whether the last round trip succeeded.
    pub(crate) healthy: AtomicBool,
}

impl RedisStats {
    pub(crate) fn snapshot(&self) -> crate::metrics::RedisStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        crate::metrics::RedisStats {
            on: true,
            calls: load(&self.calls),
            errors: load(&self.errors),
            topology_changes: load(&self.topology_changes),
            log_fills: load(&self.log_fills),
            reloads: load(&self.reloads),
            healthy: self.healthy.load(Ordering::Relaxed),
            swept_partitions: 0,
        }
    }
}

/// A handle on the cluster: routing, connections, function calls.
pub(crate) struct Cluster {
    options: ClusterOptions,
    layout: Layout,
    topology: RwLock<Arc<Topology>>,
    /// Bumped on every topology change; subscribers follow it.
    generation: tokio::sync::watch::Sender<u64>,
    /// Wakes the refresher early (a MOVED, a dead connection).
    stale: Notify,
    pub(crate) stats: RedisStats,
}

impl Cluster {
    /// Connects to the cluster and reads its topology (which loads the
    /// function library on every master).
    pub(crate) async fn connect(options: ClusterOptions) -> Result<Arc<Self>, RedisError> {
        let topology = read_topology(&options, &[]).await?;
        let stats = RedisStats::default();
        stats.healthy.store(true, Ordering::Relaxed);
        let cluster = Arc::new(Self {
            layout: Layout::new(&options.namespace),
            options,
            topology: RwLock::new(Arc::new(topology)),
            generation: tokio::sync::watch::channel(0).0,
            stale: Notify::new(),
            stats,
        });
        Ok(cluster)
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(crate) fn options(&self) -> &ClusterOptions {
        &self.options
    }

    /// Topology changes: the value is a generation number.
    pub(crate) fn generations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Asks the refresher to re-read the topology now.
    pub(crate) fn mark_stale(&self) {
        self.stale.notify_one();
    }

    /// The masters' addresses and the partitions each serves.
    pub(crate) fn partition_masters(&self) -> Vec<(String, Vec<usize>)> {
        let topology = self.current();
        let mut by_master: HashMap<usize, Vec<usize>> = HashMap::new();
        for partition in 0..partitions::PARTITIONS {
            let index = topology.slot_master[self.layout.slot(partition) as usize];
            if index != u16::MAX {
                by_master.entry(index as usize).or_default().push(partition);
            }
        }
        by_master.into_iter().map(|(i, parts)| (topology.masters[i].addr.clone(), parts)).collect()
    }

    fn current(&self) -> Arc<Topology> {
        self.topology.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the topology every `every`, and at once when marked stale,
    /// until `stop`.
    pub(crate) async fn refresh_task(self: Arc<Self>, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
                _ = self.stale.notified() => {}
            }
            if let Err(e) = self.refresh().await {
                self.stats.healthy.store(false, Ordering::Relaxed);
                warn!(error = %e, "redis topology refresh failed");
                // Do not spin on a cluster that is down.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Reads the topology; installs it and bumps the generation if it changed.
    pub(crate) async fn refresh(&self) -> Result<(), RedisError> {
        let old = self.current();
        let topology = read_topology(&self.options, &old.masters).await?;
        let moved = topology
            .slot_master
            .iter()
            .map(|&i| topology.masters.get(i as usize).map(|m| &m.addr))
            .ne(old.slot_master.iter().map(|&i| old.masters.get(i as usize).map(|m| &m.addr)));
        let reconnected = topology.masters.iter().any(|m| !old.masters.iter().any(|o| Arc::ptr_eq(m, o)));
        let changed = moved || reconnected;
        if changed {
            let masters: Vec<&str> = topology.masters.iter().map(|m| m.addr.as_str()).collect();
            info!(?masters, "redis topology changed");
            *self.topology.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(topology);
            self.stats.topology_changes.fetch_add(1, Ordering::Relaxed);
            self.generation.send_modify(|g| *g += 1);
        }
        Ok(())
    }

    /// `FCALL function 1 <partition prefix> args…`, a change: routed to the
    /// partition's master, retried through a failover until the operation
    /// timeout, and acknowledged by replicas when `wait_replicas` is set.
    pub(crate) async fn fcall(&self, partition: usize, function: &str, args: &[String]) -> Result<Value, RedisError> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(function).arg(1).arg(self.layout.prefix(partition)).arg(args);
        self.write(partition, &cmd).await
    }

    /// `FCALL_RO function 1 <partition prefix>`: a read, never waits for replicas.
    pub(crate) async fn fcall_read(&self, partition: usize, function: &str) -> Result<Value, RedisError> {
        let mut cmd = redis::cmd("FCALL_RO");
        cmd.arg(function).arg(1).arg(self.layout.prefix(partition));
        self.call(partition, &cmd).await
    }

    /// Runs a change `cmd` on the partition's master; with `wait_replicas`,
    /// `WAIT`s (in the same round trip) until that many replicas have it.
    pub(crate) async fn write(&self, partition: usize, cmd: &redis::Cmd) -> Result<Value, RedisError> {
        let (replicas, wait_ms) = self.options.wait_replicas;
        if replicas == 0 {
            return self.call(partition, cmd).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone()).cmd("WAIT").arg(replicas).arg(wait_ms);
        let value = self.run(partition, &Request::Pipe(&pipe)).await?;
        let (value, acked): (Value, u32) =
            redis::from_redis_value(value).map_err(|e| RedisError::Refused(format!("WAIT answer: {e}")))?;
        if acked < replicas {
            return Err(RedisError::NotReplicated { partition, acked, wanted: replicas, wait_ms });
        }
        Ok(value)
    }

    /// Runs `cmd` (whose keys are all in `partition`'s slot) on the
    /// partition's master.
    pub(crate) async fn call(&self, partition: usize, cmd: &redis::Cmd) -> Result<Value, RedisError> {
        self.run(partition, &Request::Cmd(cmd)).await
    }

    async fn run(&self, partition: usize, request: &Request<'_>) -> Result<Value, RedisError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.options.op_timeout;
        let slot = self.layout.slot(partition) as usize;
        let mut backoff = Duration::from_millis(20);
        loop {
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            let topology = self.current();
            let last = match topology.slot_master.get(slot).and_then(|&i| topology.masters.get(i as usize)) {
                None => format!("slot {slot} has no master"),
                Some(master) => {
                    let mut conn = match request {
                        Request::Pipe(_) if !master.waiting.is_empty() => {
                            let next = master.next_waiting.fetch_add(1, Ordering::Relaxed);
                            master.waiting[next % master.waiting.len()].clone()
                        }
                        _ => master.conn.clone(),
                    };
                    let query = async {
                        match request {
                            Request::Cmd(cmd) => cmd.query_async::<Value>(&mut conn).await,
                            Request::Pipe(pipe) => pipe.query_async::<Value>(&mut conn).await,
                        }
                    };
                    match tokio::time::timeout_at(deadline, query).await {
                        Ok(Ok(value)) => {
                            self.stats.healthy.store(true, Ordering::Relaxed);
                            return Ok(value);
                        }
                        Ok(Err(e)) if is_routing_error(&e) => {
                            if e.is_connection_dropped() || e.is_io_error() {
                                master.broken.store(true, Ordering::Relaxed);
                            }
                            e.to_string()
                        }
                        Ok(Err(e)) => {
                            self.stats.errors.fetch_add(1, Ordering::Relaxed);
                            // A function's refusal: "CODE detail", as the engine reads it.
                            let text = match e.code() {
                                Some(code) => format!("{code} {}", e.detail().unwrap_or_default()),
                                None => e.to_string(),
                            };
                            return Err(RedisError::Refused(text));
                        }
                        Err(_) => "no answer".into(),
                    }
                }
            };
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            self.stats.healthy.store(false, Ordering::Relaxed);
            self.mark_stale();
            let now = tokio::time::Instant::now();
            if now + backoff >= deadline {
                let waited_ms = (now - started).as_millis() as u64;
                return Err(RedisError::Unavailable { partition, last, waited_ms });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    /// A new connection to `addr` (for a subscriber, with RESP3 pushes).
    pub(crate) async fn open(
        &self,
        addr: &str,
        config: AsyncConnectionConfig,
        resp3: bool,
    ) -> Result<MultiplexedConnection, redis::RedisError> {
        connect(&self.options, addr, config, resp3).await
    }
}

/// One command, or a pipeline (a change and its `WAIT`).
enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

/// Errors after which another master (or the same one, later) may answer.
fn is_routing_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" | "MASTERDOWN" | "LOADING")
        )
}

async fn connect(
    options: &ClusterOptions,
    addr: &str,
    config: AsyncConnectionConfig,
    resp3: bool,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    let port: u16 =
        port.parse().map_err(|_| redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad port")))?;
    let mut redis_info = redis::RedisConnectionInfo::default();
    if let Some(user) = &options.username {
        redis_info = redis_info.set_username(user.clone());
    }
    if let Some(password) = &options.password {
        redis_info = redis_info.set_password(password.clone());
    }
    if resp3 {
        redis_info = redis_info.set_protocol(redis::ProtocolVersion::RESP3);
    }
    use redis::IntoConnectionInfo;
    let client = match &options.tls {
        None => {
            let addr = redis::ConnectionAddr::Tcp(host.to_owned(), port);
            redis::Client::open(addr.into_connection_info()?.set_redis_settings(redis_info))?
        }
        Some(tls) => {
            let addr = redis::ConnectionAddr::TcpTls { host: host.to_owned(), port, insecure: false, tls_params: None };
            let certificates = redis::TlsCertificates {
                client_tls: tls
                    .client
                    .as_ref()
                    .map(|(cert, key)| redis::ClientTlsConfig { client_cert: cert.clone(), client_key: key.clone() }),
                root_cert: tls.root_cert.clone(),
            };
            redis::Client::build_with_tls(addr.into_connection_info()?.set_redis_settings(redis_info), certificates)?
        }
    };
    let timeout = options.op_timeout.max(Duration::from_millis(100));
    let config = config.set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    client.get_multiplexed_async_connection_with_config(&config).await
}

/// Reads `CLUSTER SLOTS` from the known masters, then the seeds; reuses
/// the connections of masters that stay.
async fn read_topology(options: &ClusterOptions, known: &[Arc<Master>]) -> Result<Topology, RedisError> {
    let mut last = String::from("no nodes configured");
    let candidates = known.iter().map(|m| m.addr.clone()).chain(options.nodes.iter().cloned());
    for addr in candidates {
        let existing =
            known.iter().find(|m| m.addr == addr && !m.broken.load(Ordering::Relaxed)).map(|m| m.conn.clone());
        let mut conn = match existing {
            Some(conn) => conn,
            None => match connect(options, &addr, AsyncConnectionConfig::new(), false).await {
                Ok(conn) => conn,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            },
        };
        let slots: Vec<(u16, u16, Vec<Value>)> = match redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await {
            Ok(slots) => match parse_slots(slots) {
                Ok(slots) => slots,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            },
            Err(e) => {
                last = format!("{addr}: {e}");
                continue;
            }
        };
        let asked_host = addr.rsplit_once(':').map_or(addr.as_str(), |(host, _)| host);
        return build_topology(options, known, slots, asked_host).await;
    }
    Err(RedisError::NoTopology(last))
}

type SlotRange = (u16, u16, Vec<Value>);

fn parse_slots(value: Value) -> Result<Vec<SlotRange>, String> {
    let Value::Array(ranges) = value else { return Err("CLUSTER SLOTS: not an array".into()) };
    ranges
        .into_iter()
        .map(|range| {
            let Value::Array(mut parts) = range else { return Err("CLUSTER SLOTS: bad range".to_string()) };
            if parts.len() < 3 {
                return Err("CLUSTER SLOTS: short range".into());
            }
            let master = parts.remove(2);
            let end: u16 = redis::from_redis_value(parts.remove(1)).map_err(|e| e.to_string())?;
            let start: u16 = redis::from_redis_value(parts.remove(0)).map_err(|e| e.to_string())?;
            let Value::Array(node) = master else { return Err("CLUSTER SLOTS: bad node".into()) };
            Ok((start, end, node))
        })
        .collect()
}

async fn build_topology(
    options: &ClusterOptions,
    known: &[Arc<Master>],
    slots: Vec<SlotRange>,
    asked_host: &str,
) -> Result<Topology, RedisError> {
    let mut masters: Vec<Arc<Master>> = Vec::new();
    let mut slot_master = vec![u16::MAX; partitions::SLOTS as usize];
    for (start, end, node) in slots {
        let host: String = node.first().cloned().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or_default();
        // An empty (or NULL) endpoint is the node that answered (a one-node
        // cluster that has never met a peer); "?" is an unknown node, whose
        // slots stay unserved until the topology is read again (the CLUSTER
        // SLOTS docs).
        if host == "?" {
            continue;
        }
        let host = if host.is_empty() { asked_host.to_owned() } else { host };
        let port: u16 = node.get(1).cloned().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or(0);
        let addr = format!("{host}:{port}");
        let index = match masters.iter().position(|m| m.addr == addr) {
            Some(i) => i,
            None => {
                let master = match known.iter().find(|m| m.addr == addr && !m.broken.load(Ordering::Relaxed)) {
                    Some(master) => master.clone(),
                    None => {
                        let mut conn = connect(options, &addr, AsyncConnectionConfig::new(), false)
                            .await
                            .map_err(|e| RedisError::NoTopology(format!("master {addr}: {e}")))?;
                        // A master new to this node may be new to the cluster too
                        // (resharding, a restart without data): it needs the library.
                        // At start every master is new, so this is also the initial load.
                        redis::cmd("FUNCTION")
                            .arg("LOAD")
                            .arg("REPLACE")
                            .arg(LIBRARY)
                            .query_async::<Value>(&mut conn)
                            .await
                            .map_err(|e| RedisError::Refused(format!("FUNCTION LOAD on {addr}: {e}")))?;
                        let mut waiting = Vec::new();
                        if options.wait_replicas.0 > 0 {
                            for _ in 0..WAITING_CONNECTIONS {
                                let conn = connect(options, &addr, AsyncConnectionConfig::new(), false)
                                    .await
                                    .map_err(|e| RedisError::NoTopology(format!("master {addr}: {e}")))?;
                                waiting.push(conn);
                            }
                        }
                        Arc::new(Master {
                            addr,
                            conn,
                            waiting,
                            next_waiting: Default::default(),
                            broken: AtomicBool::new(false),
                        })
                    }
                };
                masters.push(master);
                masters.len() - 1
            }
        };
        for slot in start..=end.min(partitions::SLOTS - 1) {
            slot_master[slot as usize] = index as u16;
        }
    }
    Ok(Topology { masters, slot_master })
}
