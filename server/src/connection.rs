//! One client connection: read frames, execute quests in order, write answers.
//!
//! A connection is a single task that owns its stream. It decodes every
//! complete frame in its read buffer, executes each quest inline (state
//! operations never wait), appends the answers to a write buffer, and writes
//! that buffer once the read buffer is used up, so pipelined quests cost one
//! read and one write per batch. Quests on one connection therefore apply in
//! the order received, while connections run in parallel.
//!
//! Backpressure: once `max_pending_answers` answers are owed, the connection
//! writes them out before reading further; a peer that does not read its
//! answers stops being read from, and is dropped if a write stalls for the
//! idle timeout.
//!
//! Listening: after `addlisten`/`setlisten` the connection also drains its
//! event queue into `pushevent` quests (oneway), and sends a twoway `ping`
//! every third of the idle timeout so that a quiet listener stays open
//! while its peer answers. A listener whose queue overflowed is closed.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::methods::{AuthRef, Empty};
use rtm_protocol::{payload, write_answer, write_quest, Encoding, ErrorCode, Frame, FrameError, Quest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use crate::auth::{Authenticator, QuestToCheck};
use crate::clock;
use crate::cmd::{CmdContext, Command, Reply};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::RtmError;
use crate::events::{Event, Listening};
use crate::metrics::Metrics;

/// Write out buffered answers once this many bytes are waiting.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read in chunks of at least this much spare buffer, once traffic flows.
const READ_CHUNK: usize = 8 * 1024;
/// An idle connection keeps buffers this small, so that tens of thousands
/// of idle connections cost little memory.
const IDLE_BUFFER: usize = 512;
/// Buffers grown past this by a burst are released once empty.
const SHRINK_ABOVE: usize = 64 * 1024;
/// Events encoded per wake-up of a listener before writing them out.
const PUSH_BATCH: usize = 256;

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) engine: Engine,
    pub(crate) auth: Authenticator,
    /// `None` when the metrics listener is off: nothing is counted then.
    pub(crate) metrics: Option<Metrics>,
    /// Whether new connections are accepted (`/readyz`).
    pub(crate) ready: AtomicBool,
}

/// Tells a connection to stop: `drain` asks it to finish and close, `abort`
/// cuts it at the end of the drain timeout.
#[derive(Clone)]
pub(crate) struct Stop {
    pub(crate) drain: CancellationToken,
    pub(crate) abort: CancellationToken,
}

/// Why a connection ended.
#[derive(Debug)]
enum Close {
    PeerClosed,
    PeerClosedMidFrame(usize),
    Idle,
    WriteStalled,
    StorageStalled,
    Aborted,
    BadFrame(FrameError),
    KeyExchange,
    Drained,
    SlowListener,
    ListenerStorageFailed,
    Io(io::Error),
}

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    stop: Stop,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = tracing::info_span!("conn", id, %peer, pid = tracing::field::Empty);
    let durable = shared.engine.log().map(|log| log.subscribe());
    let mut conn = Connection {
        stream,
        // Replay detection only needs to tell live connections apart.
        id: id as u32,
        shared,
        stop,
        rbuf: BytesMut::with_capacity(IDLE_BUFFER),
        wbuf: BytesMut::new(),
        owed: 0,
        durable,
        pending_answers: Vec::new(),
        pid: None,
        span: span.clone(),
        listening: RefCell::new(None),
        push_seq: 0,
    };
    async move {
        debug!("connected");
        let shared = conn.shared.clone();
        let metrics = shared.metrics.as_ref();
        if let Some(m) = metrics {
            m.connections_open.inc();
        }
        let close = conn.run().await;
        if let Some(m) = metrics {
            m.connections_open.dec();
            match &close {
                Close::BadFrame(e) => m.frame_rejected(Some(e)),
                Close::KeyExchange => m.frame_rejected(None),
                _ => {}
            }
        }
        match close {
            Close::PeerClosed | Close::Drained => debug!("closed"),
            Close::Idle => debug!("closed: idle timeout"),
            Close::Aborted => info!("closed: drain timeout reached"),
            Close::WriteStalled => info!("closed: peer did not read its answers within the idle timeout"),
            Close::StorageStalled => tracing::warn!("closed: the log did not become durable within the idle timeout"),
            Close::PeerClosedMidFrame(n) => info!(buffered = n, "closed: peer closed in the middle of a frame"),
            Close::BadFrame(e) => info!(error = %e, "closed: malformed frame"),
            Close::KeyExchange => info!("closed: *key (encryption) is not supported; use TLS"),
            Close::ListenerStorageFailed => {
                tracing::warn!("closed: listener: the log cannot be written, so its events cannot be delivered")
            }
            Close::SlowListener => tracing::warn!(
                "closed: listener too slow (its event queue is full); events from now on are not delivered to it"
            ),
            Close::Io(e) => debug!(error = %e, "closed: i/o error"),
        }
    }
    .instrument(span)
    .await;
}

struct Connection<S> {
    stream: S,
    id: u32,
    shared: Arc<Shared>,
    stop: Stop,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Twoway quests answered into `wbuf` but not yet written.
    owed: usize,
    /// With durability on: the durable log position, and the answers in
    /// `wbuf` (to turn into errors if the log cannot be written).
    durable: Option<watch::Receiver<u64>>,
    pending_answers: Vec<(u32, u8, Encoding)>,
    pid: Option<i64>,
    span: tracing::Span,
    /// Set once the connection listens to room events.
    listening: RefCell<Option<Listening>>,
    /// Sequence numbers of the pings this server sends to listeners.
    push_seq: u32,
}

/// The next event for a listening connection; never, otherwise.
async fn next_event(listening: Option<&mut Listening>) -> Option<Arc<Event>> {
    match listening {
        Some(listening) => listening.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves once a listener was dropped for being too slow; never otherwise.
async fn dropped(token: Option<CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// `pushevent` as it goes on the wire (field order of `PushEvent`), borrowed.
#[derive(serde::Serialize)]
struct PushEventRef<'a> {
    pid: i64,
    event: &'a str,
    uid: i64,
    time: i64,
    endpoint: &'a str,
    data: &'a str,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn run(&mut self) -> Close {
        let idle = self.shared.config.server.idle_timeout();
        let mut last_read = Instant::now();
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        let ping_every = idle / 3;
        let ping_timer = tokio::time::sleep(ping_every);
        tokio::pin!(ping_timer);
        loop {
            if let Err(close) = self.process_buffered(false).await {
                return close;
            }
            if let Err(close) = self.flush().await {
                return close;
            }
            self.size_read_buffer();
            let listening = self.listening.get_mut().as_mut();
            let is_listening = listening.is_some();
            let dropped_token = listening.as_ref().map(|l| l.dropped());
            // Unbiased: a listener busy with events still reads its quests,
            // and a busy reader still gets its events.
            tokio::select! {
                _ = self.stop.drain.cancelled() => return self.drain().await,
                _ = dropped(dropped_token) => return Close::SlowListener,
                event = next_event(listening) => {
                    if let Some(event) = event {
                        self.push_events(event);
                    }
                }
                _ = &mut ping_timer, if is_listening => {
                    self.push_ping();
                    ping_timer.as_mut().reset(Instant::now() + ping_every);
                }
                read = self.stream.read_buf(&mut self.rbuf) => match read {
                    Ok(0) if self.rbuf.is_empty() => return Close::PeerClosed,
                    Ok(0) => return Close::PeerClosedMidFrame(self.rbuf.len()),
                    Ok(n) => {
                        last_read = Instant::now();
                        if let Some(m) = &self.shared.metrics {
                            m.bytes_received.inc_by(n as u64);
                        }
                    }
                    Err(e) => return Close::Io(e),
                },
                _ = &mut idle_timer => {
                    // Re-armed lazily, so a busy connection does not touch the timer per read.
                    let deadline = last_read + idle;
                    if Instant::now() >= deadline {
                        return Close::Idle;
                    }
                    idle_timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Executes every complete frame in the read buffer.
    async fn process_buffered(&mut self, stopping: bool) -> Result<(), Close> {
        let max = self.shared.config.server.max_frame_len;
        let max_owed = self.shared.config.server.max_pending_answers;
        loop {
            let frame = match Frame::decode(&mut self.rbuf, max) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => {
                    // Answer what came before the bad frame, then close.
                    self.flush().await?;
                    return Err(Close::BadFrame(e));
                }
            };
            let Frame::Quest(quest) = frame else {
                // Answers to this server's pings to listeners (or stray ones):
                // reading them already kept the connection alive.
                debug!("ignoring an answer");
                continue;
            };
            if &quest.method[..] == b"*key" {
                self.flush().await?;
                return Err(Close::KeyExchange);
            }
            self.handle(&quest, stopping);
            if self.owed >= max_owed || self.wbuf.len() >= WRITE_HIGH_WATER {
                self.flush().await?;
            }
        }
    }

    fn handle(&mut self, quest: &Quest, stopping: bool) {
        let started = self.shared.metrics.as_ref().map(|_| std::time::Instant::now());
        let command = Command::from_name(&quest.method);
        let result = match command {
            _ if stopping => Err(RtmError::new(ErrorCode::CoreServerStopping, "server is stopping")),
            None => Err(RtmError::new(
                ErrorCode::CoreUnknownMethod,
                format!("Unknow method:{}", String::from_utf8_lossy(&quest.method)),
            )),
            Some(command) => self.execute(command, quest),
        };
        if let (Some(m), Some(started)) = (&self.shared.metrics, started) {
            m.quest(command, result.as_ref().err().map(|e| e.code), started.elapsed().as_secs_f64());
        }
        if let (Some(seq), Some(_)) = (quest.seq, &self.durable) {
            self.pending_answers.push((seq, quest.version, quest.encoding));
        }
        match (quest.seq, result) {
            (Some(_), Ok(())) => self.owed += 1,
            (Some(seq), Err(e)) => {
                debug!(method = %String::from_utf8_lossy(&quest.method), code = e.code.code(), ex = %e.ex, "quest failed");
                answer_error(&mut self.wbuf, quest, seq, &e);
                self.owed += 1;
            }
            (None, Err(e)) => {
                debug!(method = %String::from_utf8_lossy(&quest.method), code = e.code.code(), ex = %e.ex, "oneway quest failed");
            }
            (None, Ok(())) => {}
        }
    }

    /// Runs one quest; on success a twoway quest's answer is already written.
    fn execute(&mut self, command: Command, quest: &Quest) -> Result<(), RtmError> {
        let params = payload::parse(quest.encoding, &quest.payload)?;
        let now_ms = clock::now_ms();
        let pid = if command.needs_auth() {
            let checked = AuthRef::from_value(&params).map_err(RtmError::from).and_then(|auth| {
                self.shared.auth.check(&QuestToCheck {
                    auth: &auth,
                    method: command.name(),
                    payload: &quest.payload,
                    connection: self.id,
                    now_secs: now_ms.div_euclid(1000),
                })?;
                Ok(auth)
            });
            let auth = checked.inspect_err(|e| {
                if let Some(m) = &self.shared.metrics {
                    m.auth_failure(e.code);
                }
            })?;
            if self.pid.is_none() {
                self.pid = Some(auth.pid);
                self.span.record("pid", auth.pid);
            }
            auth.pid
        } else {
            0
        };
        let ctx = CmdContext {
            engine: &self.shared.engine,
            limits: &self.shared.config.limits,
            pid,
            now_ms,
            listening: Some(&self.listening),
            encoding: quest.encoding,
        };
        match quest.seq {
            Some(seq) => command.execute(
                &ctx,
                &params,
                AnswerTo { out: &mut self.wbuf, version: quest.version, encoding: quest.encoding, seq },
            ),
            None => command.execute(&ctx, &params, Discard),
        }
    }

    /// Writes out every buffered answer, once the changes they acknowledge
    /// are durable.
    async fn flush(&mut self) -> Result<(), Close> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let idle = self.shared.config.server.idle_timeout();
        if !self.wait_durable(idle).await? {
            if self.listening.get_mut().is_some() {
                // Its pushes are in the buffer too; closing says events were lost.
                return Err(Close::ListenerStorageFailed);
            }
            self.fail_pending_answers();
        }
        self.pending_answers.clear();
        let dropped_token = self.listening.get_mut().as_ref().map(|l| l.dropped());
        tokio::select! {
            biased;
            _ = dropped(dropped_token) => return Err(Close::SlowListener),
            // The flush matters for TLS: it pushes out records rustls still holds.
            written = tokio::time::timeout(idle, async {
                self.stream.write_all(&self.wbuf).await?;
                self.stream.flush().await
            }) => match written {
                Ok(result) => result?,
                Err(_) => return Err(Close::WriteStalled),
            },
            _ = self.stop.abort.cancelled() => return Err(Close::Aborted),
        }
        if let Some(m) = &self.shared.metrics {
            m.bytes_sent.inc_by(self.wbuf.len() as u64);
        }
        self.wbuf.clear();
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = BytesMut::new();
        }
        self.owed = 0;
        Ok(())
    }

    /// Encodes `first` and whatever else is queued (up to a batch) as
    /// `pushevent` quests.
    fn push_events(&mut self, first: Arc<Event>) {
        let Some(listening) = self.listening.get_mut().as_mut() else { return };
        let encoding = listening.encoding;
        let mut event = first;
        for encoded in 1.. {
            let push = PushEventRef {
                pid: event.pid,
                event: event.name.as_str(),
                uid: event.uid.unwrap_or(0),
                time: event.time_ms,
                endpoint: "",
                data: &event.data,
            };
            if let Err(e) = write_quest(&mut self.wbuf, encoding, None, "pushevent", &push) {
                debug!(error = %e, "event could not be encoded");
            }
            // The rest stays queued until this batch is written.
            if encoded >= PUSH_BATCH {
                return;
            }
            match listening.try_next() {
                Some(next) => event = next,
                None => return,
            }
        }
    }

    /// A twoway `ping` to a listener, as the RTM server sends; its answer
    /// (or any other traffic) keeps the connection from idling out.
    fn push_ping(&mut self) {
        let encoding = self.listening.get_mut().as_ref().map_or(Encoding::MsgPack, |l| l.encoding);
        self.push_seq = self.push_seq.wrapping_add(1);
        let _ = write_quest(&mut self.wbuf, encoding, Some(self.push_seq), "ping", &Empty {});
    }

    /// Waits until the log covers every change made so far. `Ok(false)` if
    /// the log cannot be written right now.
    async fn wait_durable(&mut self, idle: Duration) -> Result<bool, Close> {
        let (Some(log), Some(durable)) = (self.shared.engine.log(), self.durable.as_mut()) else {
            return Ok(true);
        };
        let target = log.appended();
        let deadline = Instant::now() + idle;
        loop {
            if *durable.borrow_and_update() >= target {
                return Ok(true);
            }
            if log.is_failing() {
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Err(Close::StorageStalled);
            }
            tokio::select! {
                _ = durable.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = self.stop.abort.cancelled() => return Err(Close::Aborted),
            }
        }
    }

    /// The log cannot be written: every answer waiting in the buffer becomes
    /// 20001, so no change is acknowledged that might be lost. (The changes
    /// stay in memory, and the log writer keeps retrying them.)
    fn fail_pending_answers(&mut self) {
        self.wbuf.clear();
        let err = RtmError::new(
            ErrorCode::CoreUnknownError,
            "storage write failed: the change could not be made durable (it is kept in memory and retried)",
        );
        for &(seq, version, encoding) in &self.pending_answers {
            let _ = write_answer(&mut self.wbuf, version, encoding, seq, 1, &err.to_answer());
        }
    }

    /// Makes room to read: small while the connection is quiet, a full chunk
    /// while data flows, and back to small after a burst.
    fn size_read_buffer(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > SHRINK_ABOVE {
            self.rbuf = BytesMut::with_capacity(IDLE_BUFFER);
        }
        let spare = self.rbuf.capacity() - self.rbuf.len();
        if spare == 0 || (spare < IDLE_BUFFER && !self.rbuf.is_empty()) {
            self.rbuf.reserve(READ_CHUNK);
        }
    }

    /// Shutdown: quests that have already arrived are answered 20014, then
    /// the connection is closed.
    async fn drain(&mut self) -> Close {
        loop {
            if self.rbuf.capacity() == self.rbuf.len() {
                self.rbuf.reserve(READ_CHUNK);
            }
            // Take only what is already readable; never wait for more.
            match tokio::time::timeout(Duration::ZERO, self.stream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
        if let Err(close) = self.process_buffered(true).await {
            return close;
        }
        if let Err(close) = self.flush().await {
            return close;
        }
        let _ = self.stream.shutdown().await;
        Close::Drained
    }
}

/// Writes a twoway quest's successful answer, mirroring its version and encoding.
struct AnswerTo<'a> {
    out: &'a mut BytesMut,
    version: u8,
    encoding: Encoding,
    seq: u32,
}

impl Reply for AnswerTo<'_> {
    type Done = ();
    fn ok<T: serde::Serialize>(self, answer: &T) {
        if let Err(e) = write_answer(self.out, self.version, self.encoding, self.seq, 0, answer) {
            let err = RtmError::new(ErrorCode::CoreEncoding, format!("answer encoding failed: {e}"));
            let _ = write_answer(self.out, self.version, self.encoding, self.seq, 1, &err.to_answer());
        }
    }
}

/// Oneway quests are executed but never answered.
struct Discard;

impl Reply for Discard {
    type Done = ();
    fn ok<T: serde::Serialize>(self, _answer: &T) {}
}

fn answer_error(out: &mut BytesMut, quest: &Quest, seq: u32, err: &RtmError) {
    // `{code, ex}` always encodes; status 1 as the C++ server writes it.
    let _ = write_answer(out, quest.version, quest.encoding, seq, 1, &err.to_answer());
}
