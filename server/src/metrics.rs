//! Prometheus metrics.
//!
//! Everything on the hot path is a pre-resolved handle (one per method) whose
//! update is an atomic add: no lock, no label lookup, so connections never
//! wait for each other to count. Label sets are bounded: methods come from
//! the fixed command list (unknown names count as `unknown`), codes from the
//! answers the server can give, and there are no rid or uid labels.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use rtm_protocol::{ErrorCode, FrameError};

use crate::events::HubStats;

/// Latency buckets, in seconds: 10 µs to 1 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0];

/// Per-method handles.
struct MethodMetrics {
    name: String,
    ok: IntCounter,
    latency: Histogram,
}

/// Every metric the server exports, registered.
struct Registered {
    registry: Registry,
    quests: IntCounterVec,
    methods: Vec<MethodMetrics>,
    unknown_latency: Histogram,
    connections_open: IntGaugeVec,
    connections_accepted: IntCounterVec,
    connections_refused: IntCounterVec,
    bytes_received: IntCounter,
    bytes_sent: IntCounter,
    frames_rejected: IntCounterVec,
    key_exchanges: IntCounterVec,
    auth_failures: IntCounterVec,
    rooms: IntGauge,
    memberships: IntGauge,
    bans: IntGauge,
    storage_write_errors: IntCounter,
    listeners: IntGauge,
    events_published: IntCounter,
    events_delivered: IntCounter,
    listeners_dropped: IntCounter,
    client_sessions: IntGauge,
    logins: IntCounterVec,
    messages_sent: IntCounter,
    message_pushes: IntCounter,
    slow_sessions: IntCounter,
    delivery_latency: Histogram,
    recording_lag: Histogram,
    recorded: IntCounter,
    history_stored: IntCounter,
    history_deleted: IntCounter,
    history_expired: IntCounter,
    history_disk_bytes: IntGauge,
    redis_calls: IntCounter,
    redis_errors: IntCounter,
    redis_topology_changes: IntCounter,
    redis_log_fills: IntCounter,
    redis_reloads: IntCounter,
    redis_up: IntGauge,
    redis_swept_partitions: IntGauge,
}

/// Sessions and messages, counted where they happen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MessageStats {
    pub(crate) sessions: usize,
    pub(crate) sent: u64,
    pub(crate) pushed: u64,
    /// Messages stored in history, deleted by `delmsg`, and removed as past
    /// retention; the store's bytes on disk.
    pub(crate) history_stored: u64,
    pub(crate) history_deleted: u64,
    pub(crate) history_expired: u64,
    pub(crate) history_disk_bytes: u64,
    /// The redis engine's counters (all zero in embedded mode).
    pub(crate) redis: RedisStats,
}

/// The redis engine's round trips and how its followers caught up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RedisStats {
    /// Whether this node runs the redis engine.
    pub(crate) on: bool,
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    pub(crate) topology_changes: u64,
    pub(crate) log_fills: u64,
    pub(crate) reloads: u64,
    pub(crate) healthy: bool,
    /// Partitions whose deadlines this node sweeps.
    pub(crate) swept_partitions: u64,
}

/// Brings a counter kept elsewhere (as an atomic) up to `total`.
fn catch_up(counter: &IntCounter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(vec.clone())).expect("unique metric");
    vec
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(gauge.clone())).expect("unique metric");
    gauge
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(counter.clone())).expect("unique metric");
    counter
}

impl Registered {
    /// Metrics for a server whose methods are `methods` (quests are counted
    /// by their index in it, with per-method handles resolved here once).
    fn new(methods: &[String]) -> Self {
        let registry = Registry::new();
        let quests = counter_vec(
            &registry,
            "rtm_quests_total",
            "Quests handled, by method and result code (0 = success).",
            &["method", "code"],
        );
        let latency = prometheus::HistogramVec::new(
            HistogramOpts::new("rtm_quest_duration_seconds", "Time to execute a quest and encode its answer.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method"],
        )
        .expect("valid metric");
        registry.register(Box::new(latency.clone())).expect("unique metric");
        let methods = methods
            .iter()
            .map(|name| MethodMetrics {
                name: name.clone(),
                ok: quests.with_label_values(&[name.as_str(), "0"]),
                latency: latency.with_label_values(&[name.as_str()]),
            })
            .collect();
        let unknown_latency = latency.with_label_values(&["unknown"]);
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("unique metric");
        Self {
            quests,
            methods,
            unknown_latency,
            connections_open: {
                let opts = Opts::new("rtm_connections_open", "Connections open now, by transport.");
                let vec = IntGaugeVec::new(opts, &["transport"]).expect("valid metric");
                registry.register(Box::new(vec.clone())).expect("unique metric");
                vec
            },
            connections_accepted: counter_vec(
                &registry,
                "rtm_connections_accepted_total",
                "Client connections accepted, by listener.",
                &["listener"],
            ),
            connections_refused: counter_vec(
                &registry,
                "rtm_connections_refused_total",
                "Client connections closed at once, by reason.",
                &["reason"],
            ),
            bytes_received: counter(&registry, "rtm_received_bytes_total", "Bytes read from clients."),
            bytes_sent: counter(&registry, "rtm_sent_bytes_total", "Bytes written to clients."),
            frames_rejected: counter_vec(
                &registry,
                "rtm_frames_rejected_total",
                "Malformed frames (each closes its connection), by reason.",
                &["reason"],
            ),
            key_exchanges: counter_vec(
                &registry,
                "rtm_key_exchanges_total",
                "FPNN *key exchanges on gates with ecdh configured, by result: package or stream \
                 (encrypted), or why the connection was closed.",
                &["result"],
            ),
            auth_failures: counter_vec(
                &registry,
                "rtm_auth_failures_total",
                "Quests refused by authentication, by reason.",
                &["reason"],
            ),
            rooms: gauge(&registry, "rtm_rooms", "Rooms held."),
            memberships: gauge(&registry, "rtm_memberships", "Room memberships held."),
            bans: gauge(&registry, "rtm_bans", "Bans held (room, all-rooms and project block list)."),
            storage_write_errors: counter(
                &registry,
                "rtm_storage_write_errors_total",
                "Failed log or snapshot writes (each is retried).",
            ),
            listeners: gauge(&registry, "rtm_listeners", "Connections listening to room events."),
            events_published: counter(
                &registry,
                "rtm_events_published_total",
                "Room events described while someone listened (or during the start-up hold).",
            ),
            events_delivered: counter(
                &registry,
                "rtm_events_delivered_total",
                "Room events queued for a listener (one per listener an event matched).",
            ),
            listeners_dropped: counter(
                &registry,
                "rtm_listeners_dropped_total",
                "Listeners disconnected because their event queue was full (too slow).",
            ),
            client_sessions: gauge(&registry, "rtm_client_sessions", "Logged-in client sessions."),
            redis_calls: counter(&registry, "rtm_redis_calls_total", "Redis round trips of the redis engine (tries)."),
            redis_errors: counter(
                &registry,
                "rtm_redis_errors_total",
                "Redis round trips that failed (each retried through a failover until the operation timeout).",
            ),
            redis_topology_changes: counter(
                &registry,
                "rtm_redis_topology_changes_total",
                "Changes of which master serves which slots, as this node saw them (failovers, resharding).",
            ),
            redis_log_fills: counter(
                &registry,
                "rtm_redis_log_fills_total",
                "Partition changes this node read from the partition log because pub/sub missed them.",
            ),
            redis_reloads: counter(
                &registry,
                "rtm_redis_reloads_total",
                "Whole-partition reloads (start-up, a new epoch, or a gap the log no longer held).",
            ),
            redis_up: gauge(&registry, "rtm_redis_up", "1 when the last Redis round trip succeeded (redis engine)."),
            redis_swept_partitions: gauge(
                &registry,
                "rtm_redis_swept_partitions",
                "Partitions whose room deadlines this node sweeps (the live nodes share the 128).",
            ),
            logins: counter_vec(
                &registry,
                "rtm_logins_total",
                "Client logins, by result (ok, refused = bad/expired/revoked token, denied = blocked).",
                &["result"],
            ),
            messages_sent: counter(
                &registry,
                "rtm_messages_sent_total",
                "Room messages accepted (retries not counted).",
            ),
            message_pushes: counter(
                &registry,
                "rtm_message_pushes_total",
                "Room messages queued for a session (one per receiving session or listening backend).",
            ),
            slow_sessions: counter(
                &registry,
                "rtm_slow_sessions_closed_total",
                "Sessions closed because their outbox of pushes was full (too slow to read).",
            ),
            delivery_latency: {
                let histogram = Histogram::with_opts(
                    HistogramOpts::new(
                        "rtm_message_delivery_seconds",
                        "From a room message's acceptance (its mtime) to its push being written to a receiving session.",
                    )
                    .buckets(vec![0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0]),
                )
                .expect("valid metric");
                registry.register(Box::new(histogram.clone())).expect("unique metric");
                histogram
            },
            recording_lag: {
                let histogram = Histogram::with_opts(
                    HistogramOpts::new(
                        "rtm_recording_lag_seconds",
                        "From a room message's acceptance (its mtime) to its line being written to a recording's file (synced within recording.sync_ms).",
                    )
                    .buckets(vec![
                        0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5,
                        10.0,
                    ]),
                )
                .expect("valid metric");
                registry.register(Box::new(histogram.clone())).expect("unique metric");
                histogram
            },
            recorded: counter(&registry, "rtm_recorded_messages_total", "Message lines written to recordings."),
            history_stored: counter(&registry, "rtm_history_stored_total", "Room messages stored in history."),
            history_deleted: counter(&registry, "rtm_history_deleted_total", "History messages deleted by delmsg."),
            history_expired: counter(
                &registry,
                "rtm_history_expired_total",
                "History messages removed from disk by the retention sweep (age, per-room count, released rooms).",
            ),
            history_disk_bytes: gauge(&registry, "rtm_history_disk_bytes", "Bytes the history store takes on disk."),
            registry,
        }
    }

    /// Counts a quest and its latency; `method` (an index into the methods
    /// given to [`new`](Self::new)) is `None` for an unknown method.
    fn quest(&self, method: Option<usize>, code: Option<ErrorCode>, seconds: f64) {
        match (method.and_then(|i| self.methods.get(i)), code) {
            (Some(m), None) => {
                m.ok.inc();
                m.latency.observe(seconds);
            }
            (Some(m), Some(code)) => {
                m.latency.observe(seconds);
                self.quests.with_label_values(&[m.name.as_str(), &code.code().to_string()]).inc();
            }
            (None, code) => {
                self.unknown_latency.observe(seconds);
                let code = code.map_or(0, ErrorCode::code).to_string();
                self.quests.with_label_values(&["unknown", &code]).inc();
            }
        }
    }

    /// Counts an authentication failure by the code it answered.
    fn auth_failure(&self, code: ErrorCode) {
        let reason = match code {
            ErrorCode::InvalidPidOrSign => "invalid_pid_or_sign",
            ErrorCode::InvalidServerTime => "time_window",
            ErrorCode::SameSign => "replay",
            ErrorCode::FrequencyLimited => "rate_limited",
            _ => "malformed_auth",
        };
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a frame that closed its connection.
    fn frame_rejected(&self, error: Option<&FrameError>) {
        let reason = match error {
            Some(FrameError::BadMagic(_)) => "bad_magic",
            Some(FrameError::BadFlag(_)) => "bad_flag",
            Some(FrameError::BadMessageType(_)) => "bad_message_type",
            Some(FrameError::EmptyMethod) => "empty_method",
            Some(FrameError::TooLarge { .. }) => "too_large",
            None => "key_exchange",
        };
        self.frames_rejected.with_label_values(&[reason]).inc();
    }

    fn key_exchange(&self, result: &str) {
        self.key_exchanges.with_label_values(&[result]).inc();
    }

    fn connection_accepted(&self, listener: &str) {
        self.connections_accepted.with_label_values(&[listener]).inc();
    }

    fn connection_refused(&self, reason: &str) {
        self.connections_refused.with_label_values(&[reason]).inc();
    }

    /// The exposition text, with the state gauges brought up to date.
    fn render(&self, rooms: usize, memberships: i64, bans: usize, events: HubStats, messages: MessageStats) -> String {
        self.client_sessions.set(messages.sessions as i64);
        catch_up(&self.messages_sent, messages.sent);
        catch_up(&self.message_pushes, messages.pushed);
        catch_up(&self.history_stored, messages.history_stored);
        catch_up(&self.history_deleted, messages.history_deleted);
        catch_up(&self.history_expired, messages.history_expired);
        self.history_disk_bytes.set(messages.history_disk_bytes.min(i64::MAX as u64) as i64);
        let redis = messages.redis;
        catch_up(&self.redis_calls, redis.calls);
        catch_up(&self.redis_errors, redis.errors);
        catch_up(&self.redis_topology_changes, redis.topology_changes);
        catch_up(&self.redis_log_fills, redis.log_fills);
        catch_up(&self.redis_reloads, redis.reloads);
        self.redis_up.set(i64::from(redis.on && redis.healthy));
        self.redis_swept_partitions.set(redis.swept_partitions as i64);
        self.rooms.set(rooms as i64);
        self.memberships.set(memberships);
        self.bans.set(bans as i64);
        self.listeners.set(events.listeners as i64);
        catch_up(&self.events_published, events.published);
        catch_up(&self.events_delivered, events.delivered);
        catch_up(&self.listeners_dropped, events.dropped);
        let mut out = Vec::new();
        // Encoding the gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The server's metrics, or none when the metrics listener is off: every
/// method is then a no-op, so no caller has to check.
pub(crate) struct Metrics(Option<Registered>);

impl Metrics {
    /// Metrics for a server whose methods are `methods` (see [`quest`](Self::quest)).
    pub(crate) fn new(methods: &[String]) -> Self {
        Self(Some(Registered::new(methods)))
    }

    /// Nothing is counted.
    pub(crate) fn off() -> Self {
        Self(None)
    }

    /// Whether anything is counted (callers skip reading the clock if not).
    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Counts a quest and its latency; `method` (an index into the methods
    /// given to [`new`](Self::new)) is `None` for an unknown method.
    pub(crate) fn quest(&self, method: Option<usize>, code: Option<ErrorCode>, seconds: f64) {
        if let Some(m) = &self.0 {
            m.quest(method, code, seconds);
        }
    }

    /// Counts an authentication failure by the code it answered.
    pub(crate) fn auth_failure(&self, code: ErrorCode) {
        if let Some(m) = &self.0 {
            m.auth_failure(code);
        }
    }

    /// Counts a frame that closed its connection (`None`: a `*key` exchange).
    pub(crate) fn frame_rejected(&self, error: Option<&FrameError>) {
        if let Some(m) = &self.0 {
            m.frame_rejected(error);
        }
    }

    /// Counts a `*key` exchange's outcome.
    pub(crate) fn key_exchange(&self, result: &str) {
        if let Some(m) = &self.0 {
            m.key_exchange(result);
        }
    }

    /// Counts a connection accepted on a listener of kind `listener`.
    pub(crate) fn connection_accepted(&self, listener: &str) {
        if let Some(m) = &self.0 {
            m.connection_accepted(listener);
        }
    }

    /// Counts a connection closed at once, and why.
    pub(crate) fn connection_refused(&self, reason: &str) {
        if let Some(m) = &self.0 {
            m.connection_refused(reason);
        }
    }

    /// A connection's pump started (`+1`) or ended (`-1`).
    pub(crate) fn connections_open(&self, transport: &str, change: i64) {
        if let Some(m) = &self.0 {
            m.connections_open.with_label_values(&[transport]).add(change);
        }
    }

    pub(crate) fn bytes_received(&self, n: usize) {
        if let Some(m) = &self.0 {
            m.bytes_received.inc_by(n as u64);
        }
    }

    pub(crate) fn bytes_sent(&self, n: usize) {
        if let Some(m) = &self.0 {
            m.bytes_sent.inc_by(n as u64);
        }
    }

    /// The counter of storage write errors (an unregistered one when off).
    pub(crate) fn storage_write_errors(&self) -> IntCounter {
        match &self.0 {
            Some(m) => m.storage_write_errors.clone(),
            None => IntCounter::new("unregistered", "metrics are off").expect("a valid counter"),
        }
    }

    /// Counts a client login by its result: `ok`, `refused` or `denied`.
    pub(crate) fn login(&self, result: &str) {
        if let Some(m) = &self.0 {
            m.logins.with_label_values(&[result]).inc();
        }
    }

    /// Observes how long a room message took from acceptance to a session's
    /// write buffer, in seconds.
    pub(crate) fn message_delivered(&self, seconds: f64) {
        if let Some(m) = &self.0 {
            m.delivery_latency.observe(seconds);
        }
    }

    /// Observes the lags of `lags_ms.len()` messages just written to a
    /// recording, in milliseconds.
    pub(crate) fn recorded(&self, lags_ms: &[i64]) {
        if let Some(m) = &self.0 {
            m.recorded.inc_by(lags_ms.len() as u64);
            for lag in lags_ms {
                m.recording_lag.observe(*lag.max(&0) as f64 / 1000.0);
            }
        }
    }

    /// Counts a session closed for being too slow to read its pushes.
    pub(crate) fn slow_session(&self) {
        if let Some(m) = &self.0 {
            m.slow_sessions.inc();
        }
    }

    /// The exposition text, with the state gauges brought up to date; `None`
    /// when off.
    pub(crate) fn render(
        &self,
        rooms: usize,
        memberships: i64,
        bans: usize,
        events: HubStats,
        messages: MessageStats,
    ) -> Option<String> {
        self.0.as_ref().map(|m| m.render(rooms, memberships, bans, events, messages))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_up_in_the_exposition() {
        let m = Metrics::new(&["addroommember".to_owned()]);
        m.quest(Some(0), None, 0.0002);
        m.quest(Some(0), Some(ErrorCode::ProtoKeyNotFound), 0.0001);
        m.quest(None, Some(ErrorCode::CoreUnknownMethod), 0.00001);
        m.auth_failure(ErrorCode::SameSign);
        m.frame_rejected(Some(&FrameError::EmptyMethod));
        let events = HubStats { listeners: 2, published: 5, delivered: 9, dropped: 1 };
        m.render(3, 7, 1, HubStats::default(), MessageStats::default());
        let messages =
            MessageStats { sessions: 4, sent: 2, pushed: 6, history_disk_bytes: 4096, ..MessageStats::default() };
        let text = m.render(3, 7, 1, events, messages).unwrap();
        assert!(text.contains("rtm_client_sessions 4"), "{text}");
        assert!(text.contains("rtm_message_pushes_total 6"), "{text}");
        assert!(text.contains("rtm_history_disk_bytes 4096"), "{text}");
        assert!(text.contains(r#"rtm_quests_total{code="0",method="addroommember"} 1"#), "{text}");
        assert!(text.contains(r#"rtm_quests_total{code="10009",method="addroommember"} 1"#));
        assert!(text.contains(r#"rtm_quests_total{code="20004",method="unknown"} 1"#));
        assert!(text.contains(r#"rtm_quest_duration_seconds_count{method="addroommember"} 2"#));
        assert!(text.contains(r#"rtm_auth_failures_total{reason="replay"} 1"#));
        assert!(text.contains(r#"rtm_frames_rejected_total{reason="empty_method"} 1"#));
        assert!(text.contains("rtm_rooms 3"));
        assert!(text.contains("rtm_memberships 7"));
        assert!(text.contains("rtm_listeners 2"));
        assert!(text.contains("rtm_events_delivered_total 9"));
        assert!(text.contains("rtm_listeners_dropped_total 1"));
    }

    #[test]
    fn off_counts_nothing_and_renders_nothing() {
        let m = Metrics::off();
        m.quest(Some(0), None, 0.1);
        m.connections_open("tcp", 1);
        assert!(!m.is_on());
        assert!(m.render(0, 0, 0, HubStats::default(), MessageStats::default()).is_none());
        assert_eq!(m.storage_write_errors().get(), 0);
    }
}
