//! The harness charges the server's delays and only those: runs against a
//! fake FPNN server whose delays the test chooses.
//!
//! These check accounting, not speed. The fake server answers on plain
//! threads with blocking I/O and `std::thread::sleep`, and reports the delays
//! it really applied, so a loaded machine (where a 50 ms sleep may take
//! longer) moves the expected value instead of failing the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtm_loadtest::driver::{self, LoadConfig, QuestSource, Stop};
use rtm_loadtest::stats::Recorder;
use rtm_loadtest::workload::{Generator, Op, Workload};
use rtm_protocol::methods::Empty;
use rtm_protocol::{write_answer, Frame};

/// A fake server: answers every quest with an empty success; every
/// `delay_every`-th quest of each connection (the first halfway through,
/// at `delay_every / 2`) is answered `delay` late,
/// holding up the quests behind it on that connection as a busy server
/// would.
///
/// (Counted per connection: counted over all of them, every 100th quest of
/// 20 connections sending in turn would always land on the same one, which
/// then falls further behind its schedule all run long.)
struct FakeServer {
    addr: SocketAddr,
    /// The longest delay really applied, µs.
    longest_delay_us: Arc<AtomicU64>,
    /// Quests delayed.
    delayed: Arc<AtomicU64>,
}

impl FakeServer {
    fn start(connections: usize, delay_every: u64, delay: Duration) -> Self {
        Self::start_with(connections, delay, move |n| delay_every > 0 && n % delay_every == delay_every / 2)
    }

    /// Answers quest `n` (from 1, per connection) `delay` late when `delayed(n)`.
    fn start_with(connections: usize, delay: Duration, late: impl Fn(u64) -> bool + Copy + Send + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let longest_delay_us = Arc::new(AtomicU64::new(0));
        let delayed = Arc::new(AtomicU64::new(0));
        let (longest, count) = (longest_delay_us.clone(), delayed.clone());
        std::thread::spawn(move || {
            // Exactly the harness's connections; each thread ends when its
            // peer closes or after 60 s of silence.
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept() else { return };
                let (longest, count) = (longest.clone(), count.clone());
                std::thread::spawn(move || {
                    stream.set_nodelay(true).unwrap();
                    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let mut rbuf = BytesMut::new();
                    let mut chunk = vec![0u8; 64 * 1024];
                    let mut n = 0u64;
                    loop {
                        while let Ok(Some(Frame::Quest(q))) = Frame::decode(&mut rbuf, 1 << 20) {
                            let Some(seq) = q.seq else { continue };
                            n += 1;
                            if late(n) {
                                let started = Instant::now();
                                std::thread::sleep(delay);
                                longest.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            let mut out = BytesMut::new();
                            write_answer(&mut out, q.version, q.encoding, seq, 0, &Empty {}).unwrap();
                            if stream.write_all(&out).is_err() {
                                return;
                            }
                        }
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Self { addr, longest_delay_us, delayed }
    }
}

fn pings() -> Arc<Workload> {
    Arc::new(Workload {
        pid: 1,
        secret: "unused".into(),
        rooms: 10,
        uids: 10,
        room_size: 0,
        mix: vec![(Op::Ping, 1)],
        seed: 1,
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Every 100th answer 50 ms late, open loop at 10 ms per connection, one in
/// flight, 200 quests per connection: 1% of quests take 50 ms; the next
/// four on the same connection were due while it was held up and are
/// charged ~40, 30, 20 and 10 ms (no coordinated omission), 1% each;
/// everything else is a loopback round trip. So p99.5 is the server's
/// delay, p98.5 the wait of the first quest behind it, p50 a round trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_delay_shows_up_at_its_percentile() {
    let connections = 20;
    let server = FakeServer::start(connections, 100, Duration::from_millis(50));
    let config = LoadConfig {
        addr: server.addr,
        connections,
        pipeline: 1,
        stop: Stop::After(Duration::from_millis(2_000)),
        rate: Some(2_000.0),
        ..LoadConfig::default()
    };
    let (recorder, _) = driver::run(&config, pings(), Arc::new(AtomicU64::new(0))).await;
    assert!(recorder.errors.is_empty(), "{:?}", recorder.errors);
    let answered = recorder.answered();
    let delayed = server.delayed.load(Ordering::Relaxed);
    assert!(answered >= 1_000, "only {answered} answers");
    assert!(delayed >= answered / 100 - 1, "{delayed} delayed of {answered}");
    let longest = server.longest_delay_us.load(Ordering::Relaxed);
    let (p50, p985, p995) = (recorder.quantile_us(0.5), recorder.quantile_us(0.985), recorder.quantile_us(0.995));
    let report = format!(
        "p50 {:.3} p98.5 {:.3} p99.5 {:.3} ms; longest applied delay {:.3} ms; {answered} answers",
        ms(p50),
        ms(p985),
        ms(p995),
        ms(longest)
    );
    // The delayed quests: at least the 50 ms the server took (less the
    // histogram's 0.1% precision), at most what it really took plus a
    // loaded machine's round trip.
    assert!(p995 >= 49_900, "the delay is missing from p99.5: {report}");
    assert!(p995 <= longest + 15_000, "p99.5 is beyond the server's delay: {report}");
    // The quests held up behind them are charged their wait (~40 ms for the
    // first of them).
    assert!(p985 >= 35_000, "quests waiting behind a slow answer are not charged: {report}");
    // Everything else stays a round trip.
    assert!(p50 < 10_000, "p50 is not small: {report}");
}

/// A quest source that stalls the harness itself: every `every`-th quest
/// takes `stall` to produce, as if the harness had been descheduled.
struct StallingSource {
    inner: Generator,
    n: u64,
    every: u64,
    stall: Duration,
}

impl QuestSource for StallingSource {
    fn next_quest(&mut self, out: &mut BytesMut, seq: u32) -> bool {
        self.n += 1;
        if self.n.is_multiple_of(self.every) {
            std::thread::sleep(self.stall);
        }
        self.inner.next_quest(out, seq)
    }
}

/// The harness's own lateness is reported as send lag, not charged to a
/// server that answered every quest at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_lateness_is_not_charged_to_the_server() {
    let server = FakeServer::start(1, 0, Duration::ZERO);
    let config = LoadConfig {
        addr: server.addr,
        connections: 1,
        pipeline: 1,
        stop: Stop::After(Duration::from_millis(1_500)),
        rate: Some(100.0),
        ..LoadConfig::default()
    };
    let stall = Duration::from_millis(30);
    let (recorder, _): (Recorder, _) = driver::run_sources(
        &config,
        |i| StallingSource { inner: Generator::new(pings(), i), n: 0, every: 20, stall },
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    assert!(recorder.errors.is_empty(), "{:?}", recorder.errors);
    let lag = recorder.send_lag().expect("an open-loop run records send lag");
    let report = recorder.report("stall", Duration::from_secs(1), 1, 1);
    let text = report.to_text();
    // The stalls are there, as the harness's lag ...
    assert!(lag.max >= 29_000, "{text}");
    // ... and in the old, from-the-schedule figure ...
    let from_schedule = report.from_schedule_us.as_ref().expect("open loop");
    assert!(from_schedule.max >= 29_000, "{text}");
    // ... but not in the latency charged to the server, which answered at once.
    assert!(report.latency_us.max < 15_000, "{text}");
}

/// A closed-loop run records the plain round trip and no send lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_has_no_send_lag() {
    let server = FakeServer::start(2, 50, Duration::from_millis(20));
    let config = LoadConfig {
        addr: server.addr,
        connections: 2,
        pipeline: 4,
        stop: Stop::Requests(400),
        ..LoadConfig::default()
    };
    let (recorder, _) = driver::run(&config, pings(), Arc::new(AtomicU64::new(0))).await;
    assert_eq!(recorder.answered(), 400);
    assert!(recorder.send_lag().is_none());
    // Every 50th answer is 20 ms late and holds up the three behind it on
    // its connection: about 8% of quests see ~20 ms.
    assert!(recorder.quantile_us(0.97) >= 15_000, "p97 {}", recorder.quantile_us(0.97));
    assert!(recorder.quantile_us(0.5) < 10_000, "p50 {}", recorder.quantile_us(0.5));
}

/// `warmup`: quests scheduled in the first moments are sent but not
/// recorded. The fake server answers each connection's first 10 quests
/// 30 ms late (the backlog they make lasts about 300 ms); with a 1 s
/// warm-up none of them is in the figures, though all were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warmup_is_sent_but_not_recorded() {
    let connections = 4;
    let server = FakeServer::start_with(connections, Duration::from_millis(30), |n| n <= 10);
    let config = LoadConfig {
        addr: server.addr,
        connections,
        pipeline: 1,
        stop: Stop::After(Duration::from_millis(1_000)),
        rate: Some(400.0),
        warmup: Duration::from_millis(1_000),
        ..LoadConfig::default()
    };
    let (recorder, elapsed) = driver::run(&config, pings(), Arc::new(AtomicU64::new(0))).await;
    assert!(recorder.errors.is_empty(), "{:?}", recorder.errors);
    assert_eq!(server.delayed.load(Ordering::Relaxed), 40, "the warm-up's quests were sent");
    let report = recorder.report("warmup", elapsed, connections, 1);
    let text = report.to_text();
    // About 1 s of 400/s is recorded, not the 2 s sent.
    assert!((300..=450).contains(&recorder.answered()), "{text}");
    assert!(report.latency_us.max < 25_000, "a warm-up delay was recorded: {text}");
    assert!(elapsed < Duration::from_millis(1_500), "elapsed counts from the end of the warm-up: {elapsed:?}");
}
