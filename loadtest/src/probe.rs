//! An independent latency check that runs beside any scenario (`--probe`).
//!
//! It shares nothing with the harness's driver but the quest encoding: one
//! connection, one quest at a time, a blocking `std::net::TcpStream` on a
//! thread of its own, and `std::time::Instant` read just before the write
//! and just after the answer is complete. No async runtime, no schedule to
//! fall behind, no other connections in the same task. A blocked thread is
//! woken by the kernel when the answer arrives, so what it measures is the
//! round trip plus at most one wake-up of one thread.
//!
//! It sends every `interval` (10 ms by default) and never catches up: a
//! slow answer delays the next quest instead of queueing more. So it is
//! itself a closed-loop client, and sees a server stall once, not once per
//! quest scheduled during it (see docs/performance.md, "Checking the
//! harness").

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtm_protocol::{payload, ErrorAnswer, Frame};

use crate::driver::QuestSource;
use crate::stats::{LocalError, ProbeSummary, Recorder};

/// How long the probe waits for one answer before it gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running probe.
pub struct Probe {
    stop: Arc<AtomicBool>,
    interval: Duration,
    thread: JoinHandle<Recorder>,
}

impl Probe {
    /// Connects and starts sending one quest from `source` every `interval`,
    /// until [`Probe::finish`] or `limit` has passed, whichever is first.
    /// Only quests sent once `measured_from` is set and past are recorded
    /// (the run beside it sets it: its connections open, its warm-up over).
    pub fn start(
        addr: SocketAddr,
        mut source: impl QuestSource,
        interval: Duration,
        limit: Duration,
        measured_from: Arc<OnceLock<tokio::time::Instant>>,
    ) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("rtm-probe".into()).spawn(move || {
            let mut recorder = Recorder::default();
            let end = Instant::now() + limit;
            if let Err(code) = probe_loop(stream, &mut source, (interval, end, &measured_from), &flag, &mut recorder) {
                recorder.error(code as i64);
            }
            recorder
        })?;
        Ok(Self { stop, interval, thread })
    }

    /// Stops the probe and returns what it measured.
    pub fn finish(self) -> Recorder {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| {
            let mut r = Recorder::default();
            r.error(LocalError::Protocol as i64);
            r
        })
    }

    /// Stops the probe and summarises what it measured.
    pub fn summary(self) -> ProbeSummary {
        let interval_ms = self.interval.as_secs_f64() * 1000.0;
        let recorder = self.finish();
        ProbeSummary {
            interval_ms,
            requests: recorder.answered(),
            latency_us: recorder.latency(),
            errors: recorder.errors.iter().map(|(code, n)| (code.to_string(), *n)).collect(),
        }
    }
}

fn probe_loop(
    mut stream: TcpStream,
    source: &mut impl QuestSource,
    (interval, end, measured_from): (Duration, Instant, &OnceLock<tokio::time::Instant>),
    stop: &AtomicBool,
    recorder: &mut Recorder,
) -> Result<(), LocalError> {
    let mut out = BytesMut::with_capacity(1024);
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut seq = 0u32;
    let mut next = Instant::now();
    // Bounded by `end` (and by ANSWER_TIMEOUT on each read).
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        // Never catch up: the next quest is one interval after this one.
        next = next.max(now) + interval;
        seq = seq.wrapping_add(1);
        out.clear();
        if !source.next_quest(&mut out, seq) {
            return Ok(());
        }
        let sent = Instant::now();
        stream.write_all(&out).map_err(|_| LocalError::Connection)?;
        let answer = loop {
            match Frame::decode(&mut rbuf, 64 << 20) {
                Ok(Some(Frame::Answer(answer))) => break answer,
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => return Err(LocalError::Protocol),
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return Err(LocalError::Connection),
                Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
            }
        };
        if measured_from.get().is_some_and(|from| sent >= from.into_std()) {
            recorder.record(sent.elapsed());
        }
        if answer.seq != seq {
            return Err(LocalError::Protocol);
        }
        if answer.status != 0 {
            let code = payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload)
                .map_or(LocalError::Protocol as i64, |e| e.code);
            recorder.error(code);
        }
    }
    Ok(())
}
