//! `rtm-loadtest`: drives an RTM room server and reports rate and latency.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rtm_loadtest::driver::{self, LoadConfig, Stop};
use rtm_loadtest::listeners::Listeners;
use rtm_loadtest::probe::Probe;
use rtm_loadtest::secure::Secure;
use rtm_loadtest::stats::Report;
use rtm_loadtest::workload::{parse_mix, Generator, Op, Workload};
use rtm_loadtest::{cpu, scenarios, soak};

#[derive(Parser)]
#[command(name = "rtm-loadtest", version, about = "Load tester for the RTM room server")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args)]
struct Common {
    /// Server address.
    #[arg(long, global = true, default_value = "127.0.0.1:13315")]
    addr: SocketAddr,
    /// Project id to sign with.
    #[arg(long, global = true, default_value_t = 11000001)]
    pid: i64,
    /// Project secret.
    #[arg(long, global = true, default_value = "demo-secret-for-local-use-only")]
    secret: String,
    /// Connections.
    #[arg(long, short = 'c', global = true, default_value_t = 50)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, short = 'P', global = true, default_value_t = 1)]
    pipeline: usize,
    /// How long to run (e.g. 10s, 500ms, 2m). Default 10s unless --requests
    /// is given (30m for `soak`).
    #[arg(long, short = 'd', global = true, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many requests in total.
    #[arg(long, short = 'n', global = true)]
    requests: Option<u64>,
    /// Open loop: send at this total rate (requests/s); latency is measured
    /// from each request's scheduled time, less the harness's own lateness
    /// (reported on its own). Default for `soak`: 2000.
    #[arg(long, global = true)]
    rate: Option<f64>,
    /// Random rooms are drawn from 1..=ROOMS [default: 10000; 100 for `soak`].
    #[arg(long, global = true)]
    rooms: Option<i64>,
    /// Random uids are drawn from 1..=UIDS [default: 1000000; 1000 for `soak`].
    #[arg(long, global = true)]
    uids: Option<i64>,
    /// Members of the room `getroommembers` reads.
    #[arg(long, global = true, default_value_t = 20)]
    room_size: usize,
    /// Random seed.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// An error code that does not fail the run (repeatable).
    #[arg(long = "allow-error", global = true)]
    allow_error: Vec<i64>,
    /// The server's process id, to report its memory (Linux /proc).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Room-event listeners (each `setlisten {room, ev}`) to keep connected
    /// during `mix` and `op` runs; reports the events they received.
    #[arg(long, global = true, default_value_t = 0)]
    listeners: usize,
    /// Run an independent probe beside the load (`mix`, `op`, `soak`): one
    /// connection, one quest at a time, on a plain thread with blocking I/O;
    /// its percentiles are printed next to the harness's.
    #[arg(long, global = true)]
    probe: bool,
    /// Time between the probe's quests.
    #[arg(long, global = true, default_value = "10ms", value_parser = parse_duration)]
    probe_interval: Duration,
    /// `mix` and `op` over FPNN `*key` encryption: the server's public key
    /// (`rtm-server keygen`'s server-public.pem).
    #[arg(long, global = true, value_name = "PEM", conflicts_with = "tls_ca")]
    encrypt: Option<PathBuf>,
    /// With --encrypt: package (the Python/Java/C++ SDKs) or stream (Go).
    #[arg(long, global = true, default_value = "package", value_parser = ["package", "stream"])]
    encrypt_mode: String,
    /// With --encrypt: AES key size, 128 or 256.
    #[arg(long, global = true, default_value = "128", value_parser = ["128", "256"])]
    encrypt_bits: String,
    /// `mix` and `op` over TLS, trusting the CA certificates in this PEM
    /// (`--addr` is then a TLS endpoint).
    #[arg(long, global = true, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// With --tls-ca: the name the server's certificate carries.
    #[arg(long, global = true, default_value = "localhost")]
    tls_name: String,
    /// `mix` and `op`: before the run, start a `mix` recording of each room
    /// 1..=N (the server needs `recording.requests_per_second` of at least 2N).
    #[arg(long, global = true, default_value_t = 0)]
    record_rooms: i64,
    /// Worker threads of the harness's runtime [default: one per CPU, or
    /// TOKIO_WORKER_THREADS].
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Every how many tasks the harness's runtime runs the connection that
    /// has waited longest (1: first come, first served); 0 = tokio's default.
    /// Measured: it does not narrow the harness's own tail in `op` runs, and
    /// makes `fanout`'s clients fall behind once their core is busy, so the
    /// default stays tokio's (docs/performance.md, "Fairness").
    #[arg(long, global = true, default_value_t = 0)]
    fair_interval: u32,
}

#[derive(Subcommand)]
enum Scenario {
    /// A weighted mix of room operations.
    Mix {
        /// Weights, e.g. `addroommember=30,getroomcount=40,isbanofroom=30`.
        #[arg(
            long,
            default_value = "addroommember=20,delroommember=10,getroomcount=30,isbanofroom=20,getroominfo=10,setroominfo=5,addroomban=5"
        )]
        weights: String,
        /// Run this long before recording anything (see `op --warmup`).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        warmup: Duration,
    },
    /// One operation.
    Op {
        /// The operation.
        op: Op,
        /// Run this long before recording anything (on top of --duration):
        /// the first moments, when every connection sends its first quests
        /// at once, are not the steady state.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        warmup: Duration,
    },
    /// Fill ROOMS rooms with MEMBERS members each, then report server memory.
    Fill {
        /// Members per room.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// First room id.
        #[arg(long, default_value_t = 1)]
        first_room: i64,
    },
    /// A realistic mix at a fixed rate for a long time: a line every 10 s
    /// (rate, p99, server RSS, data-dir size); fails when RSS or the data
    /// directory grows past its bound after warm-up.
    Soak {
        /// Weights, as for `mix`.
        #[arg(long, default_value = soak::DEFAULT_MIX)]
        weights: String,
        /// A line every this long.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        every: Duration,
        /// No bound is checked before this; the baselines are taken at its end.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        warmup: Duration,
        /// Fail when server RSS grows more than this past its value at the end of warm-up.
        #[arg(long, default_value_t = 64)]
        max_rss_growth_mib: u64,
        /// Fail when the data directory grows more than this past its size at the end of warm-up.
        #[arg(long, default_value_t = 96)]
        max_disk_growth_mib: u64,
        /// Read server RSS from this Prometheus endpoint (`process_resident_memory_bytes`)
        /// when --server-pid is not given, e.g. http://127.0.0.1:9464/metrics.
        #[arg(long)]
        metrics_url: Option<String>,
        /// The server's data directory (storage.data_dir), to watch its size.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Logged-in clients in rooms: SENDERS of them send room messages at
    /// --rate (default 1000/s) for --duration; every client counts what it
    /// receives (deliveries/s, send-to-receive latency, lost and duplicated).
    Fanout {
        /// The client gate.
        #[arg(long, default_value = "127.0.0.1:13321")]
        client_addr: SocketAddr,
        /// Where the senders log in instead (another node on the same Redis
        /// Cluster): send-to-receive latency is then cross-node.
        #[arg(long)]
        sender_addr: Option<SocketAddr>,
        /// Logged-in clients (uids 1..=CLIENTS).
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Rooms the clients are spread over (room = (uid - 1) % ROOM_COUNT + 1).
        #[arg(long, default_value_t = 10)]
        room_count: usize,
        /// Clients that send: the first SENDERS uids.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// `--client-addr` is the client gate's WebSocket endpoint (e.g.
        /// 127.0.0.1:13323): clients speak FPNN over WebSocket.
        #[arg(long)]
        websocket: bool,
        /// Run the same fan-out on Redis pub/sub at this address instead
        /// (one channel per room; senders publish, the other clients
        /// subscribe), for a side-by-side figure; needs no rtm-server.
        #[arg(long)]
        redis: Option<SocketAddr>,
    },
    /// Open and hold COUNT connections; report connect rate and server memory.
    Connections {
        /// Connections to open.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// How long to hold them.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        hold: Duration,
        /// `--addr` is a client gate's WebSocket endpoint: open FPNN-over-
        /// WebSocket sessions (upgraded at /service/websocket) instead.
        #[arg(long)]
        websocket: bool,
    },
}

/// Prints a line to stdout, ignoring a closed pipe (e.g. `| head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len()));
    let value: f64 = number.parse().map_err(|_| format!("bad duration '{text}'"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad duration unit in '{text}' (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.common.threads {
        builder.worker_threads(n.max(1));
    }
    if cli.common.fair_interval > 0 {
        builder.global_queue_interval(cli.common.fair_interval);
    }
    let runtime = builder.enable_all().build().expect("a tokio runtime");
    runtime.block_on(run(cli))
}

/// The runtime's worker threads, as tokio chooses them.
fn worker_threads(c: &Common) -> usize {
    c.threads
        .or_else(|| std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

/// Starts the probe when asked for; `None` (with a message) when it cannot connect.
fn start_probe(c: &Common, workload: &Arc<Workload>, limit: Duration, config: &LoadConfig) -> Option<Probe> {
    if !c.probe {
        return None;
    }
    let source = Generator::new(workload.clone(), usize::MAX - 1);
    match Probe::start(c.addr, source, c.probe_interval, limit, config.measured_from.clone()) {
        Ok(probe) => Some(probe),
        Err(e) => {
            eprintln!("rtm-loadtest: the probe could not connect: {e}");
            None
        }
    }
}

/// Adds what the harness used, and the probe's view, to `report`, and judges.
fn finish_report(report: &mut Report, c: &Common, before: &cpu::Sample, probe: Option<Probe>) {
    report.harness = Some(before.usage_until(&cpu::Sample::now(), worker_threads(c)));
    report.probe = probe.map(Probe::summary);
    report.judge();
}

async fn run(cli: Cli) -> ExitCode {
    let c = &cli.common;
    // A WebSocket endpoint speaks HTTP first: `connections --websocket` checks its own.
    // (And `fanout --redis` needs no rtm-server at all.)
    let websocket =
        matches!(cli.scenario, Scenario::Connections { websocket: true, .. } | Scenario::Fanout { redis: Some(_), .. });
    let secure = match secure(c) {
        Ok(secure) => secure,
        Err(e) => {
            eprintln!("rtm-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    if let (false, Err(e)) = (websocket, scenarios::check_server(c.addr, &secure).await) {
        eprintln!("rtm-loadtest: {e}");
        return ExitCode::from(2);
    }
    let mix = match &cli.scenario {
        Scenario::Mix { weights, .. } | Scenario::Soak { weights, .. } => match parse_mix(weights) {
            Ok(mix) => mix,
            Err(e) => {
                eprintln!("rtm-loadtest: --weights: {e}");
                return ExitCode::from(2);
            }
        },
        Scenario::Op { op, .. } => vec![(*op, 1)],
        _ => vec![(Op::Ping, 1)],
    };
    if let Scenario::Fanout { client_addr, sender_addr, clients, room_count, senders, websocket, redis } = &cli.scenario
    {
        let plan = rtm_loadtest::fanout::FanoutPlan {
            server_addr: c.addr,
            client_addr: *client_addr,
            sender_addr: *sender_addr,
            pid: c.pid,
            secret: c.secret.clone(),
            clients: *clients,
            rooms: (*room_count).max(1),
            senders: (*senders).min(*clients),
            rate: c.rate.unwrap_or(1000.0),
            duration: c.duration.unwrap_or(Duration::from_secs(10)),
            server_pid: c.server_pid,
            websocket: *websocket,
            redis: *redis,
        };
        return match rtm_loadtest::fanout::run(plan).await {
            Ok(report) if c.json => {
                say!("{}", serde_json::to_string(&report).expect("the report serialises"));
                fanout_exit(&report)
            }
            Ok(report) => {
                say!("{}", report.to_text());
                fanout_exit(&report)
            }
            Err(e) => {
                eprintln!("rtm-loadtest: fanout: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let soaking = matches!(cli.scenario, Scenario::Soak { .. });
    let workload = Arc::new(Workload {
        pid: c.pid,
        secret: c.secret.clone(),
        rooms: c.rooms.unwrap_or(if soaking { 100 } else { 10_000 }),
        uids: c.uids.unwrap_or(if soaking { 1_000 } else { 1_000_000 }),
        room_size: c.room_size,
        mix,
        seed: c.seed,
    });
    let progress = Arc::new(AtomicU64::new(0));
    match &cli.scenario {
        Scenario::Fanout { .. } => unreachable!("fanout returns above"),
        Scenario::Fill { members, first_room } => {
            let ticker = spawn_progress(progress.clone(), "quests");
            let plan = scenarios::FillPlan {
                first: *first_room,
                rooms: workload.rooms,
                members: *members,
                connections: c.connections,
                pipeline: c.pipeline.max(16),
            };
            let report = scenarios::fill(c.addr, workload, plan, c.server_pid, progress).await;
            ticker.abort();
            if c.json {
                say!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
            } else {
                say!(
                    "fill: {} rooms x {} members in {:.2} s = {:.0} memberships/s",
                    report.rooms,
                    report.members,
                    report.elapsed_secs,
                    report.memberships_per_sec
                );
                if let (Some(b), Some(a), Some(per)) =
                    (report.rss_before, report.rss_after, report.bytes_per_membership)
                {
                    say!("  server RSS {:.1} MiB -> {:.1} MiB: {per:.1} bytes per membership", mib(b), mib(a));
                }
                if !report.errors.is_empty() {
                    say!("  errors by code {:?}", report.errors);
                }
            }
            exit_for(report.errors.values().sum())
        }
        Scenario::Connections { count, hold, websocket } => {
            let report = scenarios::hold_connections(c.addr, *count, *hold, c.server_pid, *websocket).await;
            if c.json {
                say!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
            } else {
                say!(
                    "connections: {} of {} open in {:.2} s = {:.0}/s",
                    report.opened,
                    report.requested,
                    report.connect_secs,
                    report.connect_rate
                );
                if let (Some(b), Some(a), Some(per)) =
                    (report.rss_before, report.rss_after, report.bytes_per_connection)
                {
                    say!("  server RSS {:.1} MiB -> {:.1} MiB: {:.0} bytes per connection", mib(b), mib(a), per);
                }
            }
            exit_for((report.requested - report.opened) as u64)
        }
        Scenario::Mix { .. } | Scenario::Op { .. } => {
            let (name, warmup) = match &cli.scenario {
                Scenario::Op { op, warmup } => (format!("op {}", op.method()), *warmup),
                Scenario::Mix { warmup, .. } => ("mix".to_string(), *warmup),
                _ => unreachable!("matched above"),
            };
            if workload.mix.iter().any(|(op, _)| *op == Op::GetRoomMembers) {
                let setup = scenarios::prepare_members_room(c.addr, workload.clone(), c.room_size).await;
                if !setup.errors.is_empty() {
                    eprintln!("rtm-loadtest: filling the getroommembers room failed: {:?}", setup.errors);
                    return ExitCode::FAILURE;
                }
            }
            if c.record_rooms > 0 {
                match scenarios::start_recordings(c.addr, workload.clone(), c.record_rooms).await {
                    Ok(sids) => eprintln!("rtm-loadtest: recording {} rooms", sids.len()),
                    Err(e) => {
                        eprintln!("rtm-loadtest: --record-rooms: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let stop = match (c.requests, c.duration) {
                (Some(_), _) if !warmup.is_zero() => {
                    eprintln!("rtm-loadtest: --warmup goes with --duration, not --requests");
                    return ExitCode::from(2);
                }
                (Some(n), _) => Stop::Requests(n),
                (None, d) => Stop::After(d.unwrap_or(Duration::from_secs(10))),
            };
            let config = LoadConfig {
                addr: c.addr,
                connections: c.connections.max(1),
                pipeline: c.pipeline.max(1),
                stop,
                rate: c.rate,
                secure: secure.clone(),
                warmup,
                ..LoadConfig::default()
            };
            let listeners = match c.listeners {
                0 => None,
                n => match Listeners::start(c.addr, workload.clone(), n).await {
                    Ok(listeners) => Some(listeners),
                    Err(e) => {
                        eprintln!("rtm-loadtest: starting listeners: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let ticker = spawn_progress(progress.clone(), "req");
            let limit = match stop {
                Stop::After(d) => warmup + d + Duration::from_secs(5),
                Stop::Requests(_) => Duration::from_secs(24 * 3600),
            };
            let probe = start_probe(c, &workload, limit, &config);
            let cpu_before = cpu::Sample::now();
            let (recorder, elapsed) = driver::run(&config, workload, progress).await;
            ticker.abort();
            let mut report = recorder.report(&name, elapsed, config.connections, config.pipeline);
            report.warmup_secs = warmup.as_secs_f64();
            finish_report(&mut report, c, &cpu_before, probe);
            // Let the last pushes arrive.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let heard = listeners.map(Listeners::finish);
            if c.json {
                let mut json = serde_json::to_value(&report).expect("reports serialise");
                if let (Some(heard), Some(map)) = (&heard, json.as_object_mut()) {
                    map.insert("listeners".into(), serde_json::to_value(heard).expect("reports serialise"));
                }
                say!("{}", serde_json::to_string_pretty(&json).expect("reports serialise"));
            } else {
                say!("{}", report.to_text().trim_end());
                if let Some(heard) = &heard {
                    say!(
                        "listeners: {} received {} events ({:.0} events/s each); {} disconnected as too slow",
                        heard.listeners,
                        heard.events,
                        heard.events as f64 / heard.listeners as f64 / elapsed.as_secs_f64(),
                        heard.disconnected
                    );
                }
            }
            exit_for(report.unexpected_errors(&c.allow_error) + heard.map_or(0, |h| h.disconnected))
        }
        Scenario::Soak { every, warmup, max_rss_growth_mib, max_disk_growth_mib, metrics_url, data_dir, .. } => {
            if workload.mix.iter().any(|(op, _)| *op == Op::GetRoomMembers) {
                let setup = scenarios::prepare_members_room(c.addr, workload.clone(), c.room_size).await;
                if !setup.errors.is_empty() {
                    eprintln!("rtm-loadtest: filling the getroommembers room failed: {:?}", setup.errors);
                    return ExitCode::FAILURE;
                }
            }
            let duration = c.duration.unwrap_or(Duration::from_secs(30 * 60));
            let config = LoadConfig {
                addr: c.addr,
                connections: c.connections.max(1),
                pipeline: c.pipeline.max(1),
                stop: Stop::After(duration),
                rate: Some(c.rate.unwrap_or(2_000.0)),
                ..LoadConfig::default()
            };
            let plan = soak::SoakPlan {
                every: (*every).max(Duration::from_millis(100)),
                warmup: *warmup,
                max_rss_growth: max_rss_growth_mib << 20,
                max_disk_growth: max_disk_growth_mib << 20,
                server_pid: c.server_pid,
                metrics_url: metrics_url.clone(),
                data_dir: data_dir.clone(),
            };
            if plan.server_pid.is_none() && plan.metrics_url.is_none() {
                eprintln!("rtm-loadtest: soak: no --server-pid or --metrics-url, so server memory is not watched");
            }
            if plan.data_dir.is_none() {
                eprintln!("rtm-loadtest: soak: no --data-dir, so disk use is not watched");
            }
            if !c.json {
                say!(
                    "soak: {:.0} req/s on {} connections for {:.0} s; warm-up {:.0} s, then RSS may grow {} MiB and the data dir {} MiB",
                    config.rate.unwrap_or_default(),
                    config.connections,
                    duration.as_secs_f64(),
                    warmup.as_secs_f64(),
                    max_rss_growth_mib,
                    max_disk_growth_mib
                );
            }
            let probe = start_probe(c, &workload, duration + Duration::from_secs(5), &config);
            let cpu_before = cpu::Sample::now();
            let json = c.json;
            let mut result = soak::soak(&config, workload, &plan, |line| {
                if !json {
                    say!("{}", line.to_text());
                }
            })
            .await;
            finish_report(&mut result.total, c, &cpu_before, probe);
            if json {
                say!("{}", serde_json::to_string_pretty(&result).expect("reports serialise"));
            } else {
                say!("{}", result.total.to_text().trim_end());
                match &result.failure {
                    Some(why) => say!("soak FAILED: {why}"),
                    None => say!("soak passed: no bound exceeded after warm-up"),
                }
            }
            let unexpected = result.total.unexpected_errors(&c.allow_error);
            if result.failure.is_some() {
                ExitCode::FAILURE
            } else {
                exit_for(unexpected)
            }
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn exit_for(unexpected: u64) -> ExitCode {
    if unexpected == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("rtm-loadtest: {unexpected} unexpected errors");
        ExitCode::FAILURE
    }
}

/// A live rate display on stderr (hidden when stderr is not a terminal).
fn spawn_progress(counter: Arc<AtomicU64>, unit: &'static str) -> tokio::task::JoinHandle<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"));
    tokio::spawn(async move {
        let mut last = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let now = counter.load(Ordering::Relaxed);
            bar.set_message(format!("{now} {unit}, {:.0} {unit}/s", (now - last) as f64 * 2.0));
            bar.tick();
            last = now;
        }
    })
}

/// A fanout run fails when a delivery was lost or duplicated.
fn fanout_exit(report: &rtm_loadtest::fanout::FanoutReport) -> ExitCode {
    if report.lost > 0 || report.duplicated > 0 {
        eprintln!("rtm-loadtest: fanout: {} lost and {} duplicated deliveries", report.lost, report.duplicated);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The load connections' security, from `--encrypt` or `--tls-ca`.
fn secure(c: &Common) -> Result<Secure, String> {
    use rtm_protocol::encryption::{Bits, Mode};
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    if let Some(pem) = &c.encrypt {
        let mode = if c.encrypt_mode == "stream" { Mode::Stream } else { Mode::Package };
        let bits = if c.encrypt_bits == "256" { Bits::Aes256 } else { Bits::Aes128 };
        return Secure::encrypted(&read(pem)?, mode, bits).map_err(|e| format!("--encrypt: {e}"));
    }
    if let Some(ca) = &c.tls_ca {
        return Secure::tls(&read(ca)?, &c.tls_name).map_err(|e| format!("--tls-ca: {e}"));
    }
    Ok(Secure::Plain)
}
