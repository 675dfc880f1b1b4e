//! Drives load: one task per connection, each keeping up to `pipeline`
//! quests in flight.
//!
//! Closed loop (the default): every answer frees a slot that is refilled at
//! once; replacements for a batch of answers go out in one write.
//!
//! Open loop (`rate`): each connection sends on a fixed schedule. A quest
//! that cannot go out on time (all slots busy) still counts its latency from
//! when it *should* have been sent, so a stalled server cannot hide its
//! stall by slowing the load down (no coordinated omission).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::{payload, ErrorAnswer, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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
}

/// How long a run waits for the last answers after it stops sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the load; returns the merged observations and the elapsed time.
pub async fn run(config: &LoadConfig, workload: Arc<Workload>, progress: Arc<AtomicU64>) -> (Recorder, Duration) {
    run_sources(config, |index| Generator::new(workload.clone(), index), progress).await
}

/// Runs the load with a quest source per connection.
pub async fn run_sources<S: QuestSource>(
    config: &LoadConfig,
    mut source: impl FnMut(usize) -> S,
    progress: Arc<AtomicU64>,
) -> (Recorder, Duration) {
    let start = Instant::now();
    let deadline = match config.stop {
        Stop::After(d) => Some(start + d),
        Stop::Requests(_) => None,
    };
    let mut tasks = Vec::with_capacity(config.connections);
    for index in 0..config.connections {
        let quota = match config.stop {
            Stop::Requests(total) => {
                let n = config.connections as u64;
                Some(total / n + u64::from((index as u64) < total % n))
            }
            Stop::After(_) => None,
        };
        let worker = Worker {
            addr: config.addr,
            source: source(index),
            pipeline: config.pipeline.max(1),
            deadline,
            quota,
            interval: config.rate.map(|r| Duration::from_secs_f64(config.connections as f64 / r.max(1e-9))),
            progress: progress.clone(),
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
    (total, start.elapsed())
}

struct Worker<S> {
    addr: SocketAddr,
    source: S,
    pipeline: usize,
    deadline: Option<Instant>,
    quota: Option<u64>,
    /// Open loop: time between sends on this connection.
    interval: Option<Duration>,
    progress: Arc<AtomicU64>,
}

impl<S: QuestSource> Worker<S> {
    async fn run(mut self) -> Recorder {
        let mut recorder = Recorder::default();
        let stream = match TcpStream::connect(self.addr).await {
            Ok(s) => s,
            Err(_) => {
                recorder.error(LocalError::Connection as i64);
                return recorder;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Err(code) = self.drive(stream, &mut recorder).await {
            recorder.error(code as i64);
        }
        recorder
    }

    fn quota_left(&self, sent: u64) -> bool {
        self.quota.is_none_or(|q| sent < q)
    }

    fn before_deadline(&self, at: Instant) -> bool {
        self.deadline.is_none_or(|d| at < d)
    }

    async fn drive(&mut self, mut stream: TcpStream, recorder: &mut Recorder) -> Result<(), LocalError> {
        let (mut reader, mut writer) = stream.split();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(16 * 1024);
        // (seq, intended send time) of each quest in flight, in send order.
        let mut in_flight: VecDeque<(u32, Instant)> = VecDeque::with_capacity(self.pipeline);
        let mut seq = 0u32;
        let mut sent = 0u64;
        let mut exhausted = false;
        // Open loop: the intended time of the next send.
        let mut next_due = Instant::now();
        loop {
            let now = Instant::now();
            // Fill free slots: at once (closed loop) or as scheduled (open loop).
            while !exhausted && in_flight.len() < self.pipeline && self.quota_left(sent) {
                let intended = match self.interval {
                    None => now,
                    Some(_) if next_due > now => break,
                    Some(interval) => {
                        let due = next_due;
                        next_due += interval;
                        due
                    }
                };
                if !self.before_deadline(intended) {
                    break;
                }
                seq = seq.wrapping_add(1);
                if !self.source.next_quest(&mut wbuf, seq) {
                    exhausted = true;
                    break;
                }
                in_flight.push_back((seq, intended));
                sent += 1;
            }
            if !wbuf.is_empty() {
                writer.write_all(&wbuf).await.map_err(|_| LocalError::Connection)?;
                wbuf.clear();
            }
            let sending = !exhausted
                && self.quota_left(sent)
                && match self.interval {
                    None => self.before_deadline(Instant::now()),
                    Some(_) => self.before_deadline(next_due),
                };
            if in_flight.is_empty() {
                if !sending {
                    return Ok(());
                }
                // Open loop with nothing in flight: wait for the next send time.
                tokio::time::sleep_until(next_due).await;
                continue;
            }
            let read = if self.interval.is_some() && sending && in_flight.len() < self.pipeline {
                // Wake for either an answer or the next scheduled send.
                tokio::select! {
                    read = reader.read_buf(&mut rbuf) => Some(read),
                    _ = tokio::time::sleep_until(next_due) => None,
                }
            } else {
                let wait = if sending { Duration::from_secs(3600) } else { DRAIN_TIMEOUT };
                match tokio::time::timeout(wait, reader.read_buf(&mut rbuf)).await {
                    Ok(read) => Some(read),
                    Err(_) => return Err(LocalError::Connection),
                }
            };
            match read {
                None => continue,
                Some(Ok(0)) | Some(Err(_)) => return Err(LocalError::Connection),
                Some(Ok(_)) => {}
            }
            let now = Instant::now();
            loop {
                let frame = match Frame::decode(&mut rbuf, 64 << 20) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => return Err(LocalError::Protocol),
                };
                let Frame::Answer(answer) = frame else { continue };
                let Some((expected, intended)) = in_flight.pop_front() else {
                    return Err(LocalError::Protocol);
                };
                if answer.seq != expected {
                    return Err(LocalError::Protocol);
                }
                recorder.record(now.saturating_duration_since(intended));
                if answer.status != 0 {
                    let code = payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload)
                        .map_or(LocalError::Protocol as i64, |e| e.code);
                    recorder.error(code);
                }
                self.progress.fetch_add(1, Ordering::Relaxed);
            }
            if rbuf.capacity() - rbuf.len() < 16 * 1024 {
                rbuf.reserve(64 * 1024);
            }
        }
    }
}
