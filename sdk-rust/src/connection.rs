//! The connection task: owns the socket, the sequence counter, the table of
//! pending calls, their timeouts and the push handlers.
//!
//! Callers encode and sign their quest on their own thread (with seq 0) and
//! send it here with a oneshot for the answer. The task stamps the seq,
//! appends the frame to its write buffer, and matches answers to pending
//! calls by seq. Reading and writing proceed together in one `select!`, so
//! a large pipeline can never deadlock against a server that applies
//! backpressure.
//!
//! The task also keeps the listen state: it applies each listen call when
//! the server accepts it, and after a reconnect writes one `setlisten` with
//! that state ahead of every other call. Because the same task applies
//! answers and starts connections, no accepted change can slip between the
//! two; and the server executes one connection's quests in order, so calls
//! queued during the outage see the restored state.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtm_protocol::methods::Method;
use rtm_protocol::methods::{Empty, Ping, SetListen};
use rtm_protocol::{write_answer, Answer, ErrorAnswer, ErrorCode, Frame, Quest};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};
use tracing::{debug, warn};

use crate::connector::{Connector, Stream};
use crate::error::{Error, ErrorKind};
use crate::event::ConnectionEvent;
use crate::listen::{ListenChange, ListenState};
use crate::options::ClientOptions;
use crate::push::PushQuest;
use crate::quest::{self, decode_answer, Signer};

/// Stop taking new calls while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 1024 * 1024;

/// What the handles ask of the task.
pub(crate) enum Command {
    /// Send `frame` (a twoway quest whose seq is still 0) and report its
    /// answer. `listen` is the listen change the quest makes, if any.
    Call {
        frame: Bytes,
        timeout: Duration,
        reply: oneshot::Sender<Result<Answer, Error>>,
        listen: Option<Box<ListenChange>>,
    },
    /// Close the connection; calls in flight fail.
    Close,
}

enum Waiter {
    Caller {
        reply: oneshot::Sender<Result<Answer, Error>>,
        listen: Option<Box<ListenChange>>,
    },
    Keepalive,
    /// The `setlisten` that restores the listen state after a reconnect.
    Relisten,
}

struct Pending {
    waiter: Waiter,
    timer: delay_queue::Key,
}

/// A call waiting for a connection.
struct Queued {
    frame: Bytes,
    deadline: Instant,
    reply: oneshot::Sender<Result<Answer, Error>>,
    listen: Option<Box<ListenChange>>,
}

/// Why a connection's service loop ended.
enum Ended {
    /// The client is closing.
    Closed,
    /// The connection failed.
    Dropped(String),
}

pub(crate) struct ConnectionTask {
    options: ClientOptions,
    connector: Connector,
    commands: mpsc::Receiver<Command>,
    pending: HashMap<u32, Pending>,
    timers: DelayQueue<u32>,
    queued: VecDeque<Queued>,
    next_seq: u32,
    /// What the server has accepted; shared with the handles, which only read it.
    listening: Arc<Mutex<ListenState>>,
}

impl ConnectionTask {
    pub(crate) fn new(
        options: ClientOptions,
        commands: mpsc::Receiver<Command>,
        listening: Arc<Mutex<ListenState>>,
    ) -> Self {
        Self {
            connector: options.connector(),
            options,
            commands,
            pending: HashMap::new(),
            timers: DelayQueue::new(),
            queued: VecDeque::new(),
            next_seq: 0,
            listening,
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        if let Some(handler) = &self.options.on_event {
            handler(&event);
        }
    }

    /// Serves `stream`, then reconnects as configured, until the client closes.
    pub(crate) async fn run(mut self, stream: Box<dyn Stream>) {
        self.emit(ConnectionEvent::Connected { endpoint: self.options.endpoint.clone(), reconnect: false });
        let mut stream = Some(stream);
        loop {
            let ended = match stream.take() {
                Some(s) => self.serve(s).await,
                None => match self.reconnect().await {
                    Some(s) => {
                        self.emit(ConnectionEvent::Connected {
                            endpoint: self.options.endpoint.clone(),
                            reconnect: true,
                        });
                        stream = Some(s);
                        continue;
                    }
                    None => Ended::Closed,
                },
            };
            match ended {
                Ended::Closed => break,
                Ended::Dropped(reason) => {
                    debug!(%reason, "connection dropped");
                    self.fail_pending(|| Error::connection(format!("connection lost: {reason}")));
                    self.emit(ConnectionEvent::Disconnected { reason });
                    if !self.options.auto_reconnect {
                        self.refuse_until_closed().await;
                        break;
                    }
                }
            }
        }
        self.fail_pending(|| Error::connection("the client was closed"));
        for q in self.queued.drain(..) {
            let _ = q.reply.send(Err(Error::connection("the client was closed")));
        }
        self.emit(ConnectionEvent::Closed);
    }

    fn fail_pending(&mut self, error: impl Fn() -> Error) {
        for (_, pending) in self.pending.drain() {
            if let Waiter::Caller { reply, .. } = pending.waiter {
                let _ = reply.send(Err(error()));
            }
        }
        self.timers.clear();
    }

    /// Without auto-reconnect: every later call fails at once.
    async fn refuse_until_closed(&mut self) {
        while let Some(Command::Call { reply, .. }) = self.commands.recv().await {
            let _ = reply.send(Err(Error::connection("not connected (auto-reconnect is off)")));
        }
    }

    /// Reconnects with exponential backoff. Calls made meanwhile wait for
    /// the next attempt; if it fails they fail with a connection error.
    /// Returns `None` if the client closes first.
    async fn reconnect(&mut self) -> Option<Box<dyn Stream>> {
        let mut backoff = self.connector.backoff();
        loop {
            let wake = self.queued.iter().map(|q| q.deadline).fold(backoff.next_attempt(), Instant::min);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Call { frame, timeout, reply, listen }) => {
                        self.queued.push_back(Queued { frame, deadline: Instant::now() + timeout, reply, listen });
                    }
                    Some(Command::Close) | None => return None,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    self.expire_queued(now);
                    if now < backoff.next_attempt() {
                        continue;
                    }
                    match self.connector.connect().await {
                        Ok(stream) => return Some(stream),
                        Err(e) => {
                            let (attempt, delay) = backoff.failed();
                            warn!(error = %e, attempt, retry_in = ?delay, "reconnect failed");
                            for q in self.queued.drain(..) {
                                let _ = q.reply.send(Err(e.clone()));
                            }
                            self.emit(ConnectionEvent::Reconnecting { attempt, delay });
                        }
                    }
                }
            }
        }
    }

    fn expire_queued(&mut self, now: Instant) {
        let (expired, kept): (Vec<Queued>, Vec<Queued>) = self.queued.drain(..).partition(|q| q.deadline <= now);
        self.queued = kept.into();
        for q in expired {
            let _ = q.reply.send(Err(Error::new(ErrorKind::Timeout, "no connection within the quest timeout")));
        }
    }

    fn take_seq(&mut self) -> u32 {
        loop {
            self.next_seq = self.next_seq.wrapping_add(1);
            if self.next_seq != 0 && !self.pending.contains_key(&self.next_seq) {
                return self.next_seq;
            }
        }
    }

    /// Appends a call's frame to `wbuf` under a fresh seq and registers it.
    fn start(&mut self, wbuf: &mut BytesMut, frame: &[u8], timeout: Duration, waiter: Waiter) {
        let seq = self.take_seq();
        let at = wbuf.len();
        wbuf.extend_from_slice(frame);
        quest::stamp(&mut wbuf[at..], seq);
        let timer = self.timers.insert(seq, timeout);
        self.pending.insert(seq, Pending { waiter, timer });
    }

    async fn serve(&mut self, stream: Box<dyn Stream>) -> Ended {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut rbuf = BytesMut::with_capacity(16 * 1024);
        let mut wbuf = BytesMut::with_capacity(16 * 1024);
        // First, so that calls queued meanwhile apply on top of it.
        self.restore_listening(&mut wbuf);
        for q in std::mem::take(&mut self.queued) {
            let remaining = q.deadline.saturating_duration_since(Instant::now());
            let waiter = Waiter::Caller { reply: q.reply, listen: q.listen };
            self.start(&mut wbuf, &q.frame, remaining.max(Duration::from_millis(1)), waiter);
        }
        let keepalive = self.options.keepalive;
        let mut ping_timer = tokio::time::interval(keepalive.unwrap_or(Duration::from_secs(3600)));
        ping_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping_timer.reset();
        let ping_frame = ping_frame();
        loop {
            tokio::select! {
                command = self.commands.recv(), if wbuf.len() < WRITE_HIGH_WATER => match command {
                    Some(Command::Call { frame, timeout, reply, listen }) => {
                        self.start(&mut wbuf, &frame, timeout, Waiter::Caller { reply, listen });
                        // Take whatever else is already waiting, so a burst goes out in one write.
                        while wbuf.len() < WRITE_HIGH_WATER {
                            match self.commands.try_recv() {
                                Ok(Command::Call { frame, timeout, reply, listen }) => {
                                    self.start(&mut wbuf, &frame, timeout, Waiter::Caller { reply, listen });
                                }
                                Ok(Command::Close) => return close(&mut writer, &wbuf).await,
                                Err(_) => break,
                            }
                        }
                    }
                    Some(Command::Close) | None => return close(&mut writer, &wbuf).await,
                },
                read = reader.read_buf(&mut rbuf) => match read {
                    Ok(0) => return Ended::Dropped("the server closed the connection".into()),
                    Ok(_) => {
                        if let Err(reason) = self.take_frames(&mut rbuf, &mut wbuf) {
                            return Ended::Dropped(reason);
                        }
                        if rbuf.capacity() - rbuf.len() < 4096 {
                            rbuf.reserve(16 * 1024);
                        }
                    }
                    Err(e) => return Ended::Dropped(e.to_string()),
                },
                written = writer.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                    if let Err(e) = written.and_then(|n| if n == 0 { Err(io::ErrorKind::WriteZero.into()) } else { Ok(n) }) {
                        return Ended::Dropped(e.to_string());
                    }
                    // Over TLS, records can wait in rustls until flushed.
                    if wbuf.is_empty() {
                        if let Err(e) = writer.flush().await {
                            return Ended::Dropped(e.to_string());
                        }
                    }
                },
                expired = poll_fn(|cx| self.timers.poll_expired(cx)), if !self.timers.is_empty() => {
                    if let Some(expired) = expired {
                        let seq = expired.into_inner();
                        if let Some(pending) = self.pending.remove(&seq) {
                            match pending.waiter {
                                Waiter::Caller { reply, .. } => {
                                    let _ = reply.send(Err(Error::new(ErrorKind::Timeout, "no answer within the quest timeout")));
                                }
                                Waiter::Keepalive => return Ended::Dropped("keep-alive ping unanswered".into()),
                                Waiter::Relisten => self.listen_restore_failed("no answer within the quest timeout".into()),
                            }
                        }
                    }
                },
                _ = ping_timer.tick(), if keepalive.is_some() => {
                    let interval = keepalive.unwrap_or_default();
                    self.start(&mut wbuf, &ping_frame, interval, Waiter::Keepalive);
                },
            }
        }
    }

    /// Handles every complete frame in `rbuf`.
    fn take_frames(&mut self, rbuf: &mut BytesMut, wbuf: &mut BytesMut) -> Result<(), String> {
        loop {
            match Frame::decode(rbuf, self.options.max_frame_len) {
                Ok(Some(Frame::Answer(answer))) => self.complete(answer),
                Ok(Some(Frame::Quest(quest))) => self.push(quest, wbuf),
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("malformed frame from the server: {e}")),
            }
        }
    }

    fn complete(&mut self, answer: Answer) {
        let Some(pending) = self.pending.remove(&answer.seq) else {
            // Its call already timed out: drop the late answer.
            debug!(seq = answer.seq, "answer for no pending call (late?)");
            return;
        };
        self.timers.remove(&pending.timer);
        match pending.waiter {
            Waiter::Caller { reply, listen } => {
                if let (Some(change), 0) = (listen, answer.status) {
                    self.listening.lock().unwrap_or_else(PoisonError::into_inner).apply(&change);
                }
                let _ = reply.send(Ok(answer));
            }
            Waiter::Keepalive => {}
            Waiter::Relisten => {
                if let Err(e) = decode_answer::<Empty>(&answer) {
                    self.listen_restore_failed(e.to_string());
                }
            }
        }
    }

    /// Writes a `setlisten` with the whole listen state, unless it is empty
    /// (as on the first connection, whose server side listens to nothing).
    fn restore_listening(&mut self, wbuf: &mut BytesMut) {
        let request = {
            let state = self.listening.lock().unwrap_or_else(PoisonError::into_inner);
            if state.is_empty() {
                return;
            }
            state.to_request()
        };
        match Signer::new(self.options.pid, self.options.secret.as_str()).encode(SetListen::NAME, &request) {
            Ok(frame) => self.start(wbuf, &frame, self.options.quest_timeout, Waiter::Relisten),
            Err(e) => self.listen_restore_failed(e.to_string()),
        }
    }

    fn listen_restore_failed(&self, reason: String) {
        warn!(%reason, "could not restore the listen state after reconnecting");
        self.emit(ConnectionEvent::ListenRestoreFailed { reason });
    }

    fn push(&mut self, quest: Quest, wbuf: &mut BytesMut) {
        let method = String::from_utf8_lossy(&quest.method).into_owned();
        let handler = self.options.push_handlers.get(&method).cloned();
        let answer = match handler {
            Some(handler) => {
                handler(PushQuest {
                    method,
                    encoding: quest.encoding,
                    payload: quest.payload.clone(),
                    twoway: quest.seq.is_some(),
                });
                Ok(())
            }
            None => {
                debug!(%method, "push with no handler");
                Err(ErrorAnswer::new(ErrorCode::CoreUnknownMethod, format!("Unknow method:{method}")))
            }
        };
        if let Some(seq) = quest.seq {
            let written = match answer {
                Ok(()) => write_answer(wbuf, quest.version, quest.encoding, seq, 0, &Empty {}),
                Err(err) => write_answer(wbuf, quest.version, quest.encoding, seq, 1, &err),
            };
            debug_assert!(written.is_ok());
        }
    }
}

/// Writes what is buffered (best effort) and closes the connection.
async fn close(writer: &mut WriteHalf<Box<dyn Stream>>, wbuf: &[u8]) -> Ended {
    let _ = writer.write_all(wbuf).await;
    let _ = writer.shutdown().await;
    Ended::Closed
}

/// A `*ping` quest with seq 0, to be stamped.
fn ping_frame() -> Bytes {
    quest::encode(Ping::NAME, &Ping {}).expect("the ping encodes")
}
