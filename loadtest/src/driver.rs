//! Drives load: one task per connection, each keeping up to `pipeline`
//! quests in flight.
//!
//! Closed loop (the default): every answer frees a slot that is refilled at
//! once; replacements for a batch of answers go out in one write.
//!
//! Open loop (`rate`): each connection sends on a fixed schedule, one quest
//! every `connections / rate`; connection `i` starts `i / connections` of an
//! interval after the others, so the whole run sends evenly rather than in a
//! burst of every connection at once.
//!
//! # What an open-loop latency counts
//!
//! A quest can leave later than its scheduled time for two reasons, and only
//! one of them is the server's:
//!
//! - every slot was busy, waiting for the server to answer earlier quests.
//!   That wait is charged to the quest (so a stalled server cannot hide its
//!   stall by slowing the load down: no coordinated omission);
//! - the harness was late: a task may wait for a worker thread, or a worker
//!   for a core. That lag is *not* charged; it is recorded on its own
//!   ([`Recorder::send_lag`]). (tokio's timers fire on whole milliseconds,
//!   rounding up; a worker waits for 1 ms before a quest is due and sends
//!   it up to 1 ms early, measured from when it left, rather than 0–1 ms
//!   late every time.)
//!
//! To split them the worker keeps a lag-free timeline per connection. Quest
//! `k` could have left at `V(k) = max(I(k), F(k - pipeline))`, where `I` is
//! its scheduled time and `F(j) = V(j) + (A(j) - S(j))` is when quest `j`
//! would have freed its slot had it left at `V(j)`, taking the round trip
//! `A - S` (answer read minus actual send) it really took. The latency
//! recorded is `F(k) - I(k)`: the round trip plus the wait the server's
//! earlier answers caused; the send lag is `S(k) - V(k)`. In a closed loop
//! `I = V = S`, so this is the plain round trip.
//!
//! What the split cannot remove is lateness in *reading* an answer (the
//! task is woken but waits for a thread or a core): it is part of `A - S`.
//! The report gives the harness's CPU use and run-queue wait so that can be
//! judged, and `--probe` measures the same server from a plain thread.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::{payload, ErrorAnswer, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::secure::{self, Opened, Secure};
use crate::stats::{LocalError, Recorder};
use crate::workload::{Generator, Workload};

/// Produces the quests one connection sends.
pub trait QuestSource: Send + 'static {
    /// Appends the next quest with `seq` to `out`; `false` when there are no more.
    fn next_quest(&mut self, out: &mut BytesMut, seq: u32) -> bool;
}

impl QuestSource for Generator {
    fn next_quest(&mut self, out: &mut BytesMut, seq: u32) -> bool {
        self.encode_next(out, seq);
        true
    }
}

/// When to stop sending.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many requests in total.
    Requests(u64),
}

/// Observations shared while a run goes on, for reports at intervals
/// (`soak`): each connection adds what it saw about every
/// [`LIVE_FLUSH`]; the reader takes the lot with [`Recorder::take`].
pub type Live = Arc<Mutex<Recorder>>;

/// How often a connection adds its observations to [`LoadConfig::live`].
pub const LIVE_FLUSH: Duration = Duration::from_millis(200);

/// How to drive the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// When to stop.
    pub stop: Stop,
    /// Open-loop target rate for all connections together, requests/s.
    pub rate: Option<f64>,
    /// Where to add observations while the run goes on (see [`Live`]).
    pub live: Option<Live>,
    /// Set to stop sending early (the run then drains as at its end).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Plain, `*key`-encrypted or TLS connections.
    pub secure: Secure,
    /// Sent for this long before anything is recorded (with
    /// [`Stop::After`], on top of its duration): the first moments, when
    /// every connection sends its first quests, are not the steady state.
    pub warmup: Duration,
    /// Set to when recording starts (the schedule's start plus `warmup`),
    /// for a probe beside the run to measure the same span.
    pub measured_from: Arc<OnceLock<Instant>>,
}

impl Default for LoadConfig {
    /// 50 connections, closed loop, one in flight, 10 s, to the default
    /// server address.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 13315)),
            connections: 50,
            pipeline: 1,
            stop: Stop::After(Duration::from_secs(10)),
            rate: None,
            live: None,
            cancel: None,
            secure: Secure::Plain,
            warmup: Duration::ZERO,
            measured_from: Arc::default(),
        }
    }
}

/// How long a run waits for the last answers after it stops sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Open loop: a quest due within this much goes out now. tokio's timers
/// fire on whole milliseconds, rounding a deadline up, so a worker sleeping
/// until a quest's due time wakes 0–1 ms after it, every time; sleeping
/// until 1 ms before it wakes within a millisecond before. A quest sent early
/// is measured from when it was sent; the schedule (and so the rate) is
/// unchanged.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the load; returns the merged observations and the elapsed time.
pub async fn run(config: &LoadConfig, workload: Arc<Workload>, progress: Arc<AtomicU64>) -> (Recorder, Duration) {
    run_sources(config, |index| Generator::new(workload.clone(), index), progress).await
}

/// Runs the load with a quest source per connection.
///
/// Every connection opens first; the schedule (and the clock of
/// [`Stop::After`]) starts once all of them have.
pub async fn run_sources<S: QuestSource>(
    config: &LoadConfig,
    mut source: impl FnMut(usize) -> S,
    progress: Arc<AtomicU64>,
) -> (Recorder, Duration) {
    let connections = config.connections.max(1);
    let interval = config.rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1e-9)));
    let barrier = Arc::new(Barrier::new(connections));
    let epoch = Arc::new(OnceLock::new());
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        let quota = match config.stop {
            Stop::Requests(total) => {
                let n = connections as u64;
                Some(total / n + u64::from((index as u64) < total % n))
            }
            Stop::After(_) => None,
        };
        let worker = Worker {
            addr: config.addr,
            secure: config.secure.clone(),
            source: source(index),
            pipeline: config.pipeline.max(1),
            stop: config.stop,
            quota,
            interval,
            // Spread the connections' schedules over one interval.
            phase: interval.map_or(Duration::ZERO, |i| i.mul_f64(index as f64 / connections as f64)),
            progress: progress.clone(),
            live: config.live.clone(),
            cancel: config.cancel.clone(),
            barrier: barrier.clone(),
            epoch: epoch.clone(),
            warmup: config.warmup,
            measured_from: config.measured_from.clone(),
        };
        tasks.push(tokio::spawn(worker.run()));
    }
    let mut total = Recorder::default();
    for task in tasks {
        match task.await {
            Ok(recorder) => total.merge(&recorder),
            Err(_) => total.error(LocalError::Connection as i64),
        }
    }
    let start = epoch.get().copied().unwrap_or_else(Instant::now) + config.warmup;
    (total, Instant::now().saturating_duration_since(start))
}

struct Worker<S> {
    addr: SocketAddr,
    secure: Secure,
    source: S,
    pipeline: usize,
    stop: Stop,
    quota: Option<u64>,
    /// Open loop: time between sends on this connection.
    interval: Option<Duration>,
    /// Open loop: this connection's offset into the shared schedule.
    phase: Duration,
    progress: Arc<AtomicU64>,
    live: Option<Live>,
    cancel: Option<Arc<AtomicBool>>,
    barrier: Arc<Barrier>,
    /// When the run started: set by the first connection past the barrier.
    epoch: Arc<OnceLock<Instant>>,
    /// Nothing scheduled earlier than this long after `epoch` is recorded.
    warmup: Duration,
    measured_from: Arc<OnceLock<Instant>>,
}

/// A quest on the wire.
struct InFlight {
    seq: u32,
    /// When the schedule wanted it sent (closed loop: when it was sent).
    intended: Instant,
    /// When it could have been sent had the harness never been late.
    could: Instant,
    /// When it was sent.
    sent: Instant,
}

impl<S: QuestSource> Worker<S> {
    async fn run(mut self) -> Recorder {
        let mut recorder = Recorder::default();
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, secure::open(self.addr, &self.secure)).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                recorder.error(LocalError::Connection as i64);
                None
            }
        };
        // Every connection reaches the barrier, open or not, so none waits forever.
        self.barrier.wait().await;
        let epoch = *self.epoch.get_or_init(Instant::now);
        let record_from = *self.measured_from.get_or_init(|| epoch + self.warmup);
        let Some(stream) = stream else { return recorder };
        let deadline = match self.stop {
            Stop::After(d) => Some(record_from + d),
            Stop::Requests(_) => None,
        };
        let first_due = epoch + self.phase;
        // One copy of the loop per kind of stream: plain runs pay nothing.
        let driven = match stream {
            Opened::Plain(stream) => self.drive(stream, first_due, record_from, deadline, &mut recorder).await,
            Opened::Encrypted(stream) => self.drive(stream, first_due, record_from, deadline, &mut recorder).await,
            Opened::Tls(stream) => self.drive(stream, first_due, record_from, deadline, &mut recorder).await,
        };
        if let Err(code) = driven {
            recorder.error(code as i64);
        }
        recorder
    }

    fn quota_left(&self, sent: u64) -> bool {
        self.quota.is_none_or(|q| sent < q)
    }

    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// With live reporting, adds `window` to the shared view and to
    /// `total`, and empties it.
    fn flush_live(&self, window: &mut Recorder, total: &mut Recorder) {
        if let Some(live) = &self.live {
            live.lock().unwrap_or_else(|e| e.into_inner()).merge(window);
            total.merge(window);
            *window = Recorder::default();
        }
    }

    async fn drive<T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut stream: T,
        first_due: Instant,
        record_from: Instant,
        deadline: Option<Instant>,
        recorder: &mut Recorder,
    ) -> Result<(), LocalError> {
        let before_deadline = |at: Instant| deadline.is_none_or(|d| at < d);
        // With live reporting, `recorder` holds the observations since the
        // last flush; `total` collects them across flushes.
        let mut total = Recorder::default();
        let mut last_flush = Instant::now();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(16 * 1024);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(self.pipeline);
        // Lag-free times at which answered quests would have freed their
        // slots, oldest first; the quest `pipeline` places later takes one.
        let mut free_at: VecDeque<Instant> = VecDeque::with_capacity(self.pipeline);
        let mut seq = 0u32;
        let mut sent = 0u64;
        let mut exhausted = false;
        // Open loop: the scheduled time of the next send.
        let mut next_due = first_due;
        let result = loop {
            let now = Instant::now();
            let stopping = self.cancelled();
            // Fill free slots: at once (closed loop) or as scheduled (open loop).
            let batch_from = in_flight.len();
            while !exhausted && !stopping && in_flight.len() < self.pipeline && self.quota_left(sent) {
                let intended = match self.interval {
                    None => now,
                    Some(_) if next_due > now + TIMER_SLACK => break,
                    Some(interval) => {
                        let due = next_due;
                        next_due += interval;
                        // Up to TIMER_SLACK early counts as on time, from now.
                        due.min(now)
                    }
                };
                if !before_deadline(intended) {
                    break;
                }
                seq = seq.wrapping_add(1);
                if !self.source.next_quest(&mut wbuf, seq) {
                    exhausted = true;
                    break;
                }
                let could = if sent >= self.pipeline as u64 {
                    // This quest's slot was freed by the answer `pipeline`
                    // quests back, which has arrived (fewer are in flight).
                    free_at.pop_front().map_or(intended, |free| free.max(intended))
                } else {
                    intended
                };
                in_flight.push_back(InFlight { seq, intended, could, sent: now });
                sent += 1;
            }
            if !wbuf.is_empty() {
                let sent_at = Instant::now();
                for quest in in_flight.iter_mut().skip(batch_from) {
                    quest.sent = sent_at;
                    if self.interval.is_some() && quest.intended >= record_from {
                        recorder.record_send_lag(sent_at.saturating_duration_since(quest.could));
                    }
                }
                // The flush matters for TLS and `*key`, which may hold bytes back.
                if stream.write_all(&wbuf).await.is_err() || stream.flush().await.is_err() {
                    break Err(LocalError::Connection);
                }
                wbuf.clear();
            }
            let sending = !exhausted
                && !stopping
                && self.quota_left(sent)
                && match self.interval {
                    None => before_deadline(Instant::now()),
                    Some(_) => before_deadline(next_due),
                };
            if self.live.is_some() && last_flush.elapsed() >= LIVE_FLUSH {
                self.flush_live(recorder, &mut total);
                last_flush = Instant::now();
            }
            if in_flight.is_empty() {
                if !sending {
                    break Ok(());
                }
                // Open loop with nothing in flight: wait for the next send time.
                tokio::time::sleep_until(next_due.checked_sub(TIMER_SLACK).unwrap_or(next_due)).await;
                continue;
            }
            let read = if self.interval.is_some() && sending && in_flight.len() < self.pipeline {
                // Wake for either an answer or the next scheduled send.
                tokio::select! {
                    read = stream.read_buf(&mut rbuf) => Some(read),
                    _ = tokio::time::sleep_until(next_due.checked_sub(TIMER_SLACK).unwrap_or(next_due)) => None,
                }
            } else if sending && self.cancel.is_some() {
                // Wake now and then to notice a cancel.
                tokio::time::timeout(LIVE_FLUSH, stream.read_buf(&mut rbuf)).await.ok()
            } else {
                let wait = if sending { Duration::from_secs(3600) } else { DRAIN_TIMEOUT };
                match tokio::time::timeout(wait, stream.read_buf(&mut rbuf)).await {
                    Ok(read) => Some(read),
                    Err(_) => break Err(LocalError::Connection),
                }
            };
            match read {
                None => continue,
                Some(Ok(0)) | Some(Err(_)) => break Err(LocalError::Connection),
                Some(Ok(_)) => {}
            }
            let now = Instant::now();
            if let Err(e) = self.take_answers(&mut rbuf, &mut in_flight, &mut free_at, (now, record_from), recorder) {
                break Err(e);
            }
            if rbuf.capacity() - rbuf.len() < 16 * 1024 {
                rbuf.reserve(64 * 1024);
            }
        };
        if self.live.is_some() {
            self.flush_live(recorder, &mut total);
            *recorder = total;
        }
        result
    }

    /// Records every complete answer in `rbuf`, read at `now`: those of
    /// quests scheduled from `record_from` on.
    fn take_answers(
        &self,
        rbuf: &mut BytesMut,
        in_flight: &mut VecDeque<InFlight>,
        free_at: &mut VecDeque<Instant>,
        (now, record_from): (Instant, Instant),
        recorder: &mut Recorder,
    ) -> Result<(), LocalError> {
        loop {
            let frame = match Frame::decode(rbuf, 64 << 20) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(_) => return Err(LocalError::Protocol),
            };
            let Frame::Answer(answer) = frame else { continue };
            let Some(quest) = in_flight.pop_front() else {
                return Err(LocalError::Protocol);
            };
            if answer.seq != quest.seq {
                return Err(LocalError::Protocol);
            }
            let round_trip = now.saturating_duration_since(quest.sent);
            let freed = quest.could + round_trip;
            free_at.push_back(freed);
            if quest.intended < record_from {
                // Warm-up: not recorded, errors neither (they would be
                // counted against requests that are not).
                self.progress.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            recorder.record(freed.saturating_duration_since(quest.intended));
            if self.interval.is_some() {
                recorder.record_from_schedule(now.saturating_duration_since(quest.intended));
            }
            if answer.status != 0 {
                let code = payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload)
                    .map_or(LocalError::Protocol as i64, |e| e.code);
                recorder.error(code);
            }
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
    }
}
