//! The pump: one task per connection that reads frames, has its gate
//! execute each quest in order, and writes answers and pushes.
//!
//! It owns the byte stream (any `AsyncRead + AsyncWrite`: TCP, TLS, and
//! later a WebSocket adapter). It decodes every complete frame in its read
//! buffer, hands each quest to the [`Gate`] inline (engine operations never
//! wait), appends the answers to a write buffer, and writes that buffer once
//! the read buffer is used up, so pipelined quests cost one read and one
//! write per batch. Quests on one connection therefore apply in the order
//! received, while connections run in parallel.
//!
//! Backpressure: once `max_pending_answers` answers are owed, the connection
//! writes them out before reading further; a peer that does not read its
//! answers stops being read from, and is dropped if a write stalls for the
//! idle timeout.
//!
//! Pushes: the pump drains the session's outbox into quests (`pushevent`,
//! oneway) written with the answers. Once something subscribed the session
//! it also sends a twoway `ping` every third of the idle timeout, so that a
//! quiet listener stays open while its peer answers. A session whose outbox
//! overflowed is closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtm_protocol::client::KickoutRoom;
use rtm_protocol::methods::Empty;
use rtm_protocol::{write_answer, write_quest, Encoding, ErrorCode, Frame, FrameError, Quest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

use super::{CloseCode, Gate, Session, Transport};
use crate::app::App;
use crate::error::RtmError;
use crate::model::{Body, RoomMessage, CHAT_MTYPE};
use crate::outbox::{outbox, Next, Outbox, Push};
use crate::storage::Durability;

/// Write out buffered answers once this many bytes are waiting.
const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read in chunks of at least this much spare buffer, once traffic flows.
const READ_CHUNK: usize = 8 * 1024;
/// An idle connection keeps buffers this small, so that tens of thousands
/// of idle connections cost little memory.
const IDLE_BUFFER: usize = 512;
/// Buffers grown past this by a burst are released once empty.
const SHRINK_ABOVE: usize = 64 * 1024;
/// After `kickout`, how long the peer gets to close first.
const KICK_LINGER: Duration = Duration::from_secs(1);
/// Pushes encoded per wake-up before writing them out.
const PUSH_BATCH: usize = 256;

/// The limits a gate sets for its connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_frame_len: usize,
    pub(crate) max_pending_answers: usize,
    /// Pushes a session's outbox holds before the session is closed.
    pub(crate) outbox_len: usize,
    /// Bytes of pushes a session's outbox holds before the session is closed.
    pub(crate) outbox_bytes: usize,
    /// How often a session that needs keep-alives is pinged.
    pub(crate) ping_every: Duration,
    /// A session not authenticated this long after connecting is closed.
    pub(crate) auth_timeout: Option<Duration>,
}

/// Tells a connection to stop: `drain` asks it to finish and close, `abort`
/// cuts it at the end of the drain timeout.
#[derive(Clone)]
pub(crate) struct Stop {
    pub(crate) drain: CancellationToken,
    pub(crate) abort: CancellationToken,
}

/// A durability source (the log, the history writer) as one connection
/// waits on it.
struct Durable {
    source: Arc<dyn Durability>,
    persisted: watch::Receiver<u64>,
    /// Writes this connection has seen made durable already.
    covered: u64,
}

impl Durable {
    fn new(source: Arc<dyn Durability>) -> Self {
        let persisted = source.subscribe();
        Self { source, persisted, covered: 0 }
    }
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
    OutboxOverflowed,
    ListenerStorageFailed,
    AuthTimeout,
    Kicked,
    Bye,
    Io(io::Error),
}

impl Close {
    /// The close code for a session the pump has not shut down itself;
    /// `None` when the peer is gone or the pump closed it already.
    fn code(&self) -> Option<CloseCode> {
        match self {
            Self::Idle => Some(CloseCode::IDLE),
            Self::AuthTimeout => Some(CloseCode::NO_LOGIN),
            Self::Aborted => Some(CloseCode::GOING_AWAY),
            Self::WriteStalled | Self::OutboxOverflowed => Some(CloseCode::TOO_SLOW),
            Self::StorageStalled | Self::ListenerStorageFailed => Some(CloseCode::INTERNAL),
            Self::BadFrame(_) | Self::KeyExchange => Some(CloseCode::PROTOCOL_ERROR),
            Self::PeerClosed | Self::PeerClosedMidFrame(_) | Self::Io(_) => None,
            Self::Drained | Self::Kicked | Self::Bye => None,
        }
    }
}

impl From<io::Error> for Close {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Serves one connection of `gate` until it closes.
#[allow(clippy::too_many_arguments)] // each is one thing the connection needs
pub(crate) async fn serve<S, G>(
    stream: S,
    read_ahead: BytesMut,
    peer: SocketAddr,
    id: u64,
    gate: Arc<G>,
    limits: Limits,
    shared: Arc<App>,
    stop: Stop,
    _permit: OwnedSemaphorePermit,
) where
    S: Transport,
    G: Gate,
{
    let span = tracing::info_span!("conn", id, %peer, pid = tracing::field::Empty, uid = tracing::field::Empty);
    let durable = shared.engine.durability().into_iter().map(Durable::new).collect();
    let transport = stream.kind();
    let (sender, outbox) = outbox(limits.outbox_len, limits.outbox_bytes);
    let session = Session::new(id, peer, sender, shared.engine.events().clone(), span.clone());
    let mut conn = Connection {
        stream,
        gate,
        limits,
        shared,
        stop,
        // Bytes read before the pump started (a gate with `*key` looks at the first packet).
        rbuf: if read_ahead.is_empty() { BytesMut::with_capacity(IDLE_BUFFER) } else { read_ahead },
        wbuf: BytesMut::new(),
        owed: 0,
        durable,
        pending_answers: Vec::new(),
        session,
        outbox,
        order: None,
        push_seq: 0,
    };
    async move {
        debug!("connected");
        let shared = conn.shared.clone();
        let metrics = &shared.metrics;
        metrics.connections_open(transport, 1);
        let close = conn.run().await;
        if let Some(why) = close.code().or_else(|| conn.stream.ended_by_transport()) {
            // What the pump did not close itself (a WebSocket says why).
            conn.stream.closing(why);
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.stream.shutdown()).await;
        }
        conn.gate.closed(&mut conn.session);
        metrics.connections_open(transport, -1);
        match &close {
            Close::BadFrame(e) => metrics.frame_rejected(Some(e)),
            Close::KeyExchange => {
                metrics.frame_rejected(None);
                metrics.key_exchange("not_first");
            }
            Close::OutboxOverflowed => metrics.slow_session(),
            _ => {}
        }
        match close {
            Close::PeerClosed | Close::Drained => debug!("closed"),
            Close::Idle => debug!("closed: idle timeout"),
            Close::Aborted => info!("closed: drain timeout reached"),
            Close::WriteStalled => info!("closed: peer did not read its answers within the idle timeout"),
            Close::StorageStalled => tracing::warn!("closed: the log did not become durable within the idle timeout"),
            Close::PeerClosedMidFrame(n) => info!(buffered = n, "closed: peer closed in the middle of a frame"),
            Close::BadFrame(e) => info!(error = %e, "closed: malformed frame"),
            Close::KeyExchange => info!(
                "closed: *key is accepted only as the first packet, on a plain endpoint of a gate with ecdh configured"
            ),
            Close::ListenerStorageFailed => {
                tracing::warn!("closed: listener: the log cannot be written, so its events cannot be delivered")
            }
            Close::AuthTimeout => info!("closed: no login within the auth timeout"),
            Close::Kicked => info!("closed: kicked out"),
            Close::Bye => debug!("closed: bye"),
            Close::OutboxOverflowed => tracing::warn!(
                "closed: too slow to read its pushes (its outbox is full); pushes from now on are not delivered to it"
            ),
            Close::Io(e) => debug!(error = %e, "closed: i/o error"),
        }
    }
    .instrument(span)
    .await;
}

struct Connection<S, G> {
    stream: S,
    gate: Arc<G>,
    limits: Limits,
    shared: Arc<App>,
    stop: Stop,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Twoway quests answered into `wbuf` but not yet written.
    owed: usize,
    /// With durability on: the durable log position, and the answers in
    /// `wbuf` (to turn into errors if the log cannot be written).
    durable: Vec<Durable>,
    pending_answers: Vec<(u32, u8, Encoding)>,
    session: Session,
    outbox: Outbox,
    /// An order taken from the outbox while writing pushes, not yet carried out.
    order: Option<Next>,
    /// Sequence numbers of the pings this server sends.
    push_seq: u32,
}

/// `pushroommsg` as it goes on the wire (field order of the RTM SDKs'), borrowed.
#[derive(serde::Serialize)]
struct PushRoomMsgRef<'a> {
    from: i64,
    rid: i64,
    mid: i64,
    mtype: i64,
    msg: BodyRef<'a>,
    attrs: &'a str,
    mtime: i64,
}

/// A message body as pushed: `str`, `bin`, or for a client's chat the
/// translation map `{source, target, sourceText, targetText}`.
enum BodyRef<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Chat(&'a str),
}

impl serde::Serialize for BodyRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Text(text) => serializer.serialize_str(text),
            Self::Binary(bytes) => serializer.serialize_bytes(bytes),
            Self::Chat(text) => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("source", "")?;
                map.serialize_entry("target", "")?;
                map.serialize_entry("sourceText", text)?;
                map.serialize_entry("targetText", "")?;
                map.end()
            }
        }
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

impl<S: Transport, G: Gate> Connection<S, G> {
    async fn run(&mut self) -> Close {
        let idle = self.limits.idle_timeout;
        let mut last_read = Instant::now();
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        let ping_every = self.limits.ping_every;
        let ping_timer = tokio::time::sleep(ping_every);
        tokio::pin!(ping_timer);
        let auth_timeout = self.limits.auth_timeout;
        let auth_timer = tokio::time::sleep(auth_timeout.unwrap_or(Duration::MAX / 4));
        tokio::pin!(auth_timer);
        loop {
            if let Err(close) = self.process_buffered(false).await {
                return close;
            }
            if let Err(close) = self.flush().await {
                return close;
            }
            match self.order.take() {
                Some(Next::Overflowed) => return Close::OutboxOverflowed,
                Some(Next::Kick) => return self.kicked().await,
                Some(Next::Push(push)) => self.write_pushes(push),
                None => {}
            }
            if self.session.closing {
                self.stream.closing(CloseCode::NORMAL);
                let _ = self.stream.shutdown().await;
                return Close::Bye;
            }
            self.size_read_buffer();
            let keepalive = self.outbox.keepalive().is_some();
            let awaiting_auth = auth_timeout.is_some() && self.session.pid.is_none();
            // Unbiased: a session busy with pushes still reads its quests,
            // and a busy reader still gets its pushes.
            tokio::select! {
                _ = self.stop.drain.cancelled() => return self.drain().await,

                _ = &mut auth_timer, if awaiting_auth => return Close::AuthTimeout,
                next = self.outbox.next() => match next {
                    Some(Next::Push(push)) => self.write_pushes(push),
                    Some(Next::Overflowed) => return Close::OutboxOverflowed,
                    Some(Next::Kick) => return self.kicked().await,
                    None => {}
                },
                _ = &mut ping_timer, if keepalive => {
                    self.push_ping();
                    ping_timer.as_mut().reset(Instant::now() + ping_every);
                }
                read = self.stream.read_buf(&mut self.rbuf) => match read {
                    Ok(0) if self.rbuf.is_empty() => return Close::PeerClosed,
                    Ok(0) => return Close::PeerClosedMidFrame(self.rbuf.len()),
                    Ok(n) => {
                        last_read = Instant::now();
                        self.shared.metrics.bytes_received(n);
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
        let max = self.limits.max_frame_len;
        let max_owed = self.limits.max_pending_answers;
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
            self.handle(&quest, stopping).await;
            if self.owed >= max_owed || self.wbuf.len() >= WRITE_HIGH_WATER {
                self.flush().await?;
            }
        }
    }

    async fn handle(&mut self, quest: &Quest, stopping: bool) {
        let result = self.gate.execute(&mut self.session, quest, stopping, &mut self.wbuf).await;
        if let (Some(seq), false) = (quest.seq, self.durable.is_empty()) {
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

    /// Writes out every buffered answer, once the changes they acknowledge
    /// are durable.
    async fn flush(&mut self) -> Result<(), Close> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let idle = self.limits.idle_timeout;
        if !self.wait_durable(idle).await? {
            if self.outbox.keepalive().is_some() {
                // Its pushes are in the buffer too; closing says events were lost.
                return Err(Close::ListenerStorageFailed);
            }
            self.fail_pending_answers();
        }
        self.pending_answers.clear();
        // The write first: when it completes at once (the usual case) the
        // other branches are never polled and cost nothing.
        tokio::select! {
            biased;
            // The flush matters for TLS: it pushes out records rustls still holds.
            written = tokio::time::timeout(idle, async {
                self.stream.write_all(&self.wbuf).await?;
                self.stream.flush().await
            }) => match written {
                Ok(result) => result?,
                Err(_) => return Err(Close::WriteStalled),
            },
            _ = self.outbox.overflowed() => return Err(Close::OutboxOverflowed),
            _ = self.stop.abort.cancelled() => return Err(Close::Aborted),
        }
        self.shared.metrics.bytes_sent(self.wbuf.len());
        self.wbuf.clear();
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = BytesMut::new();
        }
        self.owed = 0;
        Ok(())
    }

    /// Encodes `first` and whatever else is queued (up to a batch) as
    /// quests into the write buffer.
    fn write_pushes(&mut self, first: Push) {
        let mut push = first;
        for encoded in 1.. {
            match &push {
                Push::Event { event, encoding } => {
                    let quest = PushEventRef {
                        pid: event.pid,
                        event: event.name.as_str(),
                        uid: event.uid.unwrap_or(0),
                        // Seconds: the Go server SDK reads an int32.
                        time: event.time_ms.div_euclid(1000),
                        endpoint: &event.endpoint,
                        data: &event.data,
                    };
                    if let Err(e) = write_quest(&mut self.wbuf, *encoding, None, "pushevent", &quest) {
                        debug!(error = %e, "event could not be encoded");
                    }
                }
                Push::RoomMessage { message, encoding, to_client } => {
                    // Encoded once per encoding and audience for all its
                    // receivers; each copies the frame and stamps its own seq.
                    let frame =
                        message.frame(*encoding, *to_client, || encode_room_message(message, *encoding, *to_client));
                    if frame.len() >= PUSH_SEQ_AT + 4 {
                        let start = self.wbuf.len();
                        self.wbuf.extend_from_slice(frame);
                        self.push_seq = self.push_seq.wrapping_add(1);
                        let seq = start + PUSH_SEQ_AT..start + PUSH_SEQ_AT + 4;
                        self.wbuf[seq].copy_from_slice(&self.push_seq.to_le_bytes());
                    }
                    if self.shared.metrics.is_on() {
                        let waited_ms = crate::clock::now_ms().saturating_sub(message.mtime).max(0);
                        self.shared.metrics.message_delivered(waited_ms as f64 / 1000.0);
                    }
                }
                Push::KickoutRoom { rid, encoding } => {
                    let _ = write_quest(&mut self.wbuf, *encoding, None, "kickoutroom", &KickoutRoom { rid: *rid });
                }
            }
            // The rest stays queued until this batch is written.
            if encoded >= PUSH_BATCH {
                return;
            }
            match self.outbox.try_next() {
                Some(Next::Push(next)) => push = next,
                // An order ends the batch; the loop carries it out next.
                Some(order) => {
                    self.order = Some(order);
                    return;
                }
                None => return,
            }
        }
    }

    /// Sends the oneway `kickout`, then waits a little for the peer to close
    /// (a WebSocket client loses a frame that arrives as its socket closes).
    async fn kicked(&mut self) -> Close {
        let encoding = self.outbox.keepalive().unwrap_or(Encoding::MsgPack);
        let _ = write_quest(&mut self.wbuf, encoding, None, "kickout", &Empty {});
        if let Err(close) = self.flush().await {
            return close;
        }
        let linger = async {
            let mut sink = [0u8; 512];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(KICK_LINGER, linger).await;
        self.stream.closing(CloseCode::KICKED);
        let _ = self.stream.shutdown().await;
        Close::Kicked
    }

    /// A twoway `ping`, as the RTM server sends to listeners; its answer
    /// (or any other traffic) keeps the connection from idling out.
    fn push_ping(&mut self) {
        let encoding = self.outbox.keepalive().unwrap_or(Encoding::MsgPack);
        self.push_seq = self.push_seq.wrapping_add(1);
        let _ = write_quest(&mut self.wbuf, encoding, Some(self.push_seq), "ping", &Empty {});
    }

    /// Waits until the log covers every change made so far. `Ok(false)` if
    /// the log cannot be written right now.
    async fn wait_durable(&mut self, idle: Duration) -> Result<bool, Close> {
        let mut deadline = None;
        for durable in &mut self.durable {
            let target = durable.source.appended();
            // Nothing written since this connection last waited: one atomic load.
            if target <= durable.covered {
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + idle);
            loop {
                if *durable.persisted.borrow_and_update() >= target {
                    durable.covered = target;
                    break;
                }
                if durable.source.is_failing() {
                    return Ok(false);
                }
                if Instant::now() >= deadline {
                    return Err(Close::StorageStalled);
                }
                tokio::select! {
                    _ = durable.persisted.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = self.stop.abort.cancelled() => return Err(Close::Aborted),
                }
            }
        }
        Ok(true)
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
        self.stream.closing(CloseCode::GOING_AWAY);
        let _ = self.stream.shutdown().await;
        Close::Drained
    }
}

/// Where a twoway quest's seq sits in its frame: after the 12-byte header.
const PUSH_SEQ_AT: usize = 12;

/// A `pushroommsg` frame (twoway, seq 0 until stamped): for a client, chat
/// is the translation map; for a backend, plain text. Empty if it cannot be
/// encoded (then it is not sent).
fn encode_room_message(message: &RoomMessage, encoding: Encoding, to_client: bool) -> Bytes {
    let msg = match &message.body {
        Body::Text(text) if to_client && message.mtype == CHAT_MTYPE => BodyRef::Chat(text),
        Body::Text(text) => BodyRef::Text(text),
        Body::Binary(bytes) => BodyRef::Binary(bytes),
    };
    let quest = PushRoomMsgRef {
        from: message.from,
        rid: message.rid,
        mid: message.mid,
        mtype: message.mtype,
        msg,
        attrs: &message.attrs,
        mtime: message.mtime,
    };
    let mut frame = BytesMut::new();
    match write_quest(&mut frame, encoding, Some(0), "pushroommsg", &quest) {
        Ok(_) => frame.freeze(),
        Err(e) => {
            debug!(error = %e, "message could not be encoded");
            Bytes::new()
        }
    }
}

fn answer_error(out: &mut BytesMut, quest: &Quest, seq: u32, err: &RtmError) {
    // `{code, ex}` always encodes; status 1 as the C++ server writes it.
    let _ = write_answer(out, quest.version, quest.encoding, seq, 1, &err.to_answer());
}
