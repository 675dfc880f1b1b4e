//! The connection task (an actor) and its handle, [`Connection`].
//!
//! The task owns the socket, the sequence counter, the table of pending
//! calls, their timeouts, the push handlers and the keep-alive. It neither
//! signs nor knows any method but `*ping`: callers encode their quest on
//! their own thread (seq 0, signed or not as their API needs; see
//! [`crate::quest`]) and hand it here with a oneshot for the answer. The
//! task stamps the seq, appends the frame to its write buffer, and matches
//! answers to pending calls by seq. Reading and writing proceed together in
//! one `select!`, so a large pipeline can never deadlock against a server
//! that applies backpressure.
//!
//! Connections come from the [`Connector`], whose on-connect hook has
//! already sent what must precede the calls (the server client's listen
//! state; an end-user client's login). When a connection drops, the task
//! reconnects with the connector's backoff; calls made meanwhile wait for
//! the next attempt.
//!
//! A call may carry an [`AnswerHook`], which the task runs when the answer
//! arrives, before the caller gets it. Because the same task runs the
//! on-connect hook, state that answer hooks keep (the listen state) and
//! what the next connection restores from it can never miss each other;
//! and the server executes one connection's quests in order, so calls
//! queued during an outage see the restored state.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rtm_protocol::methods::{Empty, Method, Ping};
use rtm_protocol::{write_answer, Answer, ErrorAnswer, ErrorCode, Frame, Quest};
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::time::{delay_queue, DelayQueue};
use tracing::{debug, warn};

use crate::connector::{AnswerHandler, Connected, Connector, Stream};
use crate::error::{Error, ErrorKind};
use crate::event::{self, ConnectionEvent, EventHandler};
use crate::push::{PushHandler, PushQuest};
use crate::quest;

/// Calls queued for the connection task before callers wait to enqueue more.
const COMMAND_QUEUE: usize = 4096;
/// Stop taking new calls while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 1024 * 1024;

/// How the connection task behaves, beside the connector.
pub(crate) struct Settings {
    /// Send `*ping` at this interval; an unanswered ping drops the connection.
    pub(crate) keepalive: Option<Duration>,
    /// Reconnect after the connection drops.
    pub(crate) auto_reconnect: bool,
    pub(crate) on_event: Option<EventHandler>,
    /// Method name → handler for quests the server pushes.
    pub(crate) push_handlers: HashMap<String, PushHandler>,
}

/// Runs on the connection task when a call's answer arrives (error answers
/// included), before the caller gets it; not if the call times out or the
/// connection drops first. It must not block.
pub(crate) type AnswerHook = Box<dyn FnOnce(&Answer) + Send>;

/// A handle to the connection task. Clones share the task; it closes when
/// [`close`](Self::close) is called or the last clone is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    commands: mpsc::Sender<Command>,
}

impl Connection {
    /// Connects once (a failure is returned, not retried) and spawns the
    /// connection task on the current runtime.
    pub(crate) async fn start(connector: Connector, settings: Settings) -> Result<Self, Error> {
        let connected = connector.connect().await?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        tokio::spawn(ConnectionTask::new(connector, settings, receiver).run(connected));
        Ok(Self { commands })
    }

    /// Sends `frame`, a twoway quest with seq 0 (see [`crate::quest`]), and
    /// waits for its answer at most `timeout`. `hook` runs on the task when
    /// the answer arrives.
    pub(crate) async fn call(
        &self,
        frame: Bytes,
        timeout: Duration,
        hook: Option<AnswerHook>,
    ) -> Result<Answer, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Call { frame, timeout, reply, hook })
            .await
            .map_err(|_| Error::connection("the client is closed"))?;
        answer.await.map_err(|_| Error::connection("the client is closed"))?
    }

    /// Closes the connection; calls in flight fail, and so do later calls.
    pub(crate) async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

/// What the handles ask of the task.
enum Command {
    /// Send `frame` (a twoway quest whose seq is still 0) and report its answer.
    Call { frame: Bytes, timeout: Duration, reply: oneshot::Sender<Result<Answer, Error>>, hook: Option<AnswerHook> },
    /// Close the connection; calls in flight fail.
    Close,
}

enum Waiter {
    Caller {
        reply: oneshot::Sender<Result<Answer, Error>>,
        hook: Option<AnswerHook>,
    },
    /// A quest the on-connect hook sent without waiting for its answer.
    Handshake(AnswerHandler),
    Keepalive,
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
    hook: Option<AnswerHook>,
}

/// Why a connection's service loop ended.
enum Ended {
    /// The client is closing.
    Closed,
    /// The connection failed.
    Dropped(String),
}

struct ConnectionTask {
    connector: Connector,
    settings: Settings,
    commands: mpsc::Receiver<Command>,
    pending: HashMap<u32, Pending>,
    timers: DelayQueue<u32>,
    queued: VecDeque<Queued>,
    next_seq: u32,
}

impl ConnectionTask {
    fn new(connector: Connector, settings: Settings, commands: mpsc::Receiver<Command>) -> Self {
        Self {
            connector,
            settings,
            commands,
            pending: HashMap::new(),
            timers: DelayQueue::new(),
            queued: VecDeque::new(),
            next_seq: 0,
        }
    }

    fn emit(&self, event: ConnectionEvent) {
        event::emit(self.settings.on_event.as_ref(), event);
    }

    /// Serves `connected`, then reconnects as configured, until the client closes.
    async fn run(mut self, connected: Connected) {
        self.emit(ConnectionEvent::Connected { endpoint: self.connector.endpoint.clone(), reconnect: false });
        let mut next = Some(connected);
        loop {
            let ended = match next.take() {
                Some(connected) => self.serve(connected).await,
                None => match self.reconnect().await {
                    Some(connected) => {
                        self.emit(ConnectionEvent::Connected {
                            endpoint: self.connector.endpoint.clone(),
                            reconnect: true,
                        });
                        next = Some(connected);
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
                    if !self.settings.auto_reconnect {
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
            match pending.waiter {
                Waiter::Caller { reply, .. } => {
                    let _ = reply.send(Err(error()));
                }
                Waiter::Handshake(on_answer) => on_answer(Err(error())),
                Waiter::Keepalive => {}
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

    /// Reconnects, with the connector's backoff between failed attempts.
    /// Calls made meanwhile wait for the next attempt; if it fails they fail
    /// with its error. Returns `None` if the client closes first.
    async fn reconnect(&mut self) -> Option<Connected> {
        let mut backoff = self.connector.backoff();
        loop {
            let wake = self.queued.iter().map(|q| q.deadline).fold(backoff.next_attempt(), Instant::min);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Call { frame, timeout, reply, hook }) => {
                        self.queued.push_back(Queued { frame, deadline: Instant::now() + timeout, reply, hook });
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
                        Ok(connected) => return Some(connected),
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
        self.register(seq, timeout, waiter);
    }

    fn register(&mut self, seq: u32, timeout: Duration, waiter: Waiter) {
        let timer = self.timers.insert(seq, timeout);
        self.pending.insert(seq, Pending { waiter, timer });
    }

    async fn serve(&mut self, connected: Connected) -> Ended {
        let Connected { stream, mut wbuf, mut rbuf, last_seq, sent, pushes } = connected;
        let (mut reader, mut writer) = tokio::io::split(stream);
        // What the on-connect hook sent is already at the front of `wbuf`,
        // so that calls queued meanwhile follow it.
        self.next_seq = last_seq;
        let now = Instant::now();
        for sent in sent {
            let remaining = sent.deadline.saturating_duration_since(now).max(Duration::from_millis(1));
            self.register(sent.seq, remaining, Waiter::Handshake(sent.on_answer));
        }
        for push in pushes {
            self.push(push, &mut wbuf);
        }
        for q in std::mem::take(&mut self.queued) {
            let remaining = q.deadline.saturating_duration_since(now);
            let waiter = Waiter::Caller { reply: q.reply, hook: q.hook };
            self.start(&mut wbuf, &q.frame, remaining.max(Duration::from_millis(1)), waiter);
        }
        // Frames that arrived right behind the hook's last answer.
        if let Err(reason) = self.take_frames(&mut rbuf, &mut wbuf) {
            return Ended::Dropped(reason);
        }
        let keepalive = self.settings.keepalive;
        let mut ping_timer = tokio::time::interval(keepalive.unwrap_or(Duration::from_secs(3600)));
        ping_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping_timer.reset();
        let ping_frame = ping_frame();
        loop {
            tokio::select! {
                command = self.commands.recv(), if wbuf.len() < WRITE_HIGH_WATER => match command {
                    Some(Command::Call { frame, timeout, reply, hook }) => {
                        self.start(&mut wbuf, &frame, timeout, Waiter::Caller { reply, hook });
                        // Take whatever else is already waiting, so a burst goes out in one write.
                        while wbuf.len() < WRITE_HIGH_WATER {
                            match self.commands.try_recv() {
                                Ok(Command::Call { frame, timeout, reply, hook }) => {
                                    self.start(&mut wbuf, &frame, timeout, Waiter::Caller { reply, hook });
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
                            let timeout = || Error::new(ErrorKind::Timeout, "no answer within the quest timeout");
                            match pending.waiter {
                                Waiter::Caller { reply, .. } => {
                                    let _ = reply.send(Err(timeout()));
                                }
                                Waiter::Handshake(on_answer) => on_answer(Err(timeout())),
                                Waiter::Keepalive => return Ended::Dropped("keep-alive ping unanswered".into()),
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
            match Frame::decode(rbuf, self.connector.max_frame_len) {
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
            Waiter::Caller { reply, hook } => {
                if let Some(hook) = hook {
                    hook(&answer);
                }
                let _ = reply.send(Ok(answer));
            }
            Waiter::Handshake(on_answer) => on_answer(Ok(answer)),
            Waiter::Keepalive => {}
        }
    }

    fn push(&mut self, quest: Quest, wbuf: &mut BytesMut) {
        let method = String::from_utf8_lossy(&quest.method).into_owned();
        let handler = self.settings.push_handlers.get(&method).cloned();
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

/// The seam an end-user client builds on: an on-connect hook that logs in
/// with an unsigned quest before any call, on every connection, and fails
/// the attempt when the server refuses; calls sent unsigned after it.
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use rtm_protocol::methods::{OkAnswer, RoomMembers};
    use rtm_protocol::{payload, write_quest, Encoding};
    use serde::Serialize;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::connector::{Handshake, HookFuture, OnConnect};
    use crate::quest::decode_answer;

    const WAIT: Duration = Duration::from_secs(10);

    #[derive(Serialize)]
    struct Auth {
        pid: i64,
        uid: i64,
        token: &'static str,
        version: i32,
    }

    /// Logs in first, waiting for the answer; counts its attempts.
    struct Login {
        attempts: Arc<Mutex<u32>>,
    }

    impl OnConnect for Login {
        fn on_connect<'a>(&'a self, handshake: &'a mut Handshake) -> HookFuture<'a> {
            Box::pin(async move {
                *self.attempts.lock().unwrap() += 1;
                let auth = quest::encode("auth", &Auth { pid: 1, uid: 2, token: "t", version: 1 })?;
                let answer = handshake.call(&auth, WAIT).await?;
                match decode_answer::<OkAnswer>(&answer)? {
                    OkAnswer { ok: true } => Ok(()),
                    OkAnswer { ok: false } => Err(Error::connection("login refused")),
                }
            })
        }
    }

    /// One accepted connection, from the server's side.
    struct Peer {
        stream: TcpStream,
        rbuf: BytesMut,
    }

    impl Peer {
        async fn accept(listener: &TcpListener) -> Self {
            let (stream, _) = tokio::time::timeout(WAIT, listener.accept()).await.unwrap().unwrap();
            Self { stream, rbuf: BytesMut::new() }
        }

        async fn quest(&mut self) -> Quest {
            tokio::time::timeout(WAIT, async {
                loop {
                    if let Some(frame) = Frame::decode(&mut self.rbuf, 1 << 20).unwrap() {
                        match frame {
                            Frame::Quest(quest) => return quest,
                            Frame::Answer(answer) => panic!("unexpected answer {answer:?}"),
                        }
                    }
                    assert_ne!(self.stream.read_buf(&mut self.rbuf).await.unwrap(), 0, "the client hung up");
                }
            })
            .await
            .expect("the client sent a quest")
        }

        /// The next quest, which must be the unsigned login.
        async fn login(&mut self, ok: bool) {
            #[derive(serde::Deserialize)]
            struct Keys {
                uid: i64,
                token: String,
                sign: Option<String>,
            }
            let quest = self.quest().await;
            assert_eq!(quest.method_str(), Some("auth"));
            let keys: Keys = payload::decode(quest.encoding, &quest.payload).unwrap();
            assert_eq!((keys.uid, keys.token.as_str(), keys.sign), (2, "t", None));
            self.answer(quest.seq.unwrap(), &OkAnswer { ok }).await;
        }

        async fn answer<T: Serialize>(&mut self, seq: u32, payload: &T) {
            let mut out = BytesMut::new();
            write_answer(&mut out, 1, Encoding::MsgPack, seq, 0, payload).unwrap();
            self.stream.write_all(&out).await.unwrap();
        }

        async fn push(&mut self, method: &str) {
            let mut out = BytesMut::new();
            write_quest(&mut out, Encoding::MsgPack, None, method, &Empty {}).unwrap();
            self.stream.write_all(&out).await.unwrap();
        }
    }

    /// The connector (with the login hook) and settings for a client of
    /// `listener`, and what its push handler and event callback receive.
    struct Client {
        parts: Option<(Connector, Settings)>,
        pushes: mpsc::UnboundedReceiver<String>,
        events: mpsc::UnboundedReceiver<ConnectionEvent>,
    }

    impl Client {
        fn new(listener: &TcpListener, attempts: &Arc<Mutex<u32>>, backoff: Duration) -> Self {
            let (pushed, pushes) = mpsc::unbounded_channel();
            let on_push: PushHandler = Arc::new(move |quest: PushQuest| {
                let _ = pushed.send(quest.method().to_owned());
            });
            let (emitted, events) = mpsc::unbounded_channel();
            let on_event: EventHandler = Arc::new(move |event: &ConnectionEvent| {
                let _ = emitted.send(event.clone());
            });
            let connector = Connector {
                endpoint: listener.local_addr().unwrap().to_string(),
                connect_timeout: WAIT,
                tls: None,
                encryption: None,
                backoff_min: backoff,
                backoff_max: backoff,
                max_frame_len: 1 << 20,
                on_connect: Some(Box::new(Login { attempts: attempts.clone() })),
            };
            let settings = Settings {
                keepalive: None,
                auto_reconnect: true,
                on_event: Some(on_event),
                push_handlers: HashMap::from([("kickout".to_owned(), on_push)]),
            };
            Self { parts: Some((connector, settings)), pushes, events }
        }

        /// Starts the connection task in the background (it waits for the login).
        fn start(&mut self) -> tokio::task::JoinHandle<Result<Connection, Error>> {
            let (connector, settings) = self.parts.take().expect("started once");
            tokio::spawn(Connection::start(connector, settings))
        }

        async fn event(&mut self, wanted: impl Fn(&ConnectionEvent) -> bool) -> ConnectionEvent {
            loop {
                let event = tokio::time::timeout(WAIT, self.events.recv()).await.unwrap().unwrap();
                if wanted(&event) {
                    return event;
                }
            }
        }
    }

    fn members(rid: i64) -> Bytes {
        quest::encode("getroommembers", &rtm_protocol::methods::GetRoomMembers { rid }).unwrap()
    }

    fn call(connection: &Connection, rid: i64) -> tokio::task::JoinHandle<Result<Answer, Error>> {
        let connection = connection.clone();
        tokio::spawn(async move { connection.call(members(rid), WAIT, None).await })
    }

    #[tokio::test]
    async fn the_login_precedes_every_call_on_every_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let attempts = Arc::new(Mutex::new(0));
        let mut client = Client::new(&listener, &attempts, Duration::from_millis(10));
        let started = client.start();
        let mut peer = Peer::accept(&listener).await;
        // A push that arrives before the login's answer reaches its handler
        // once the connection task takes over.
        peer.push("kickout").await;
        peer.login(true).await;
        let connection = started.await.unwrap().unwrap();
        assert_eq!(tokio::time::timeout(WAIT, client.pushes.recv()).await.unwrap().as_deref(), Some("kickout"));

        let answered = call(&connection, 5);
        let quest = peer.quest().await;
        assert_eq!(quest.method_str(), Some("getroommembers"));
        peer.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![5] }).await;
        assert_eq!(decode_answer::<RoomMembers>(&answered.await.unwrap().unwrap()).unwrap().uids, vec![5]);

        // After a reconnect the login comes first again, then the call made
        // during the outage.
        drop(peer);
        client.event(|e| matches!(e, ConnectionEvent::Disconnected { .. })).await;
        let answered = call(&connection, 6);
        let mut peer = Peer::accept(&listener).await;
        peer.login(true).await;
        let quest = peer.quest().await;
        assert_eq!(quest.method_str(), Some("getroommembers"));
        peer.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![6] }).await;
        assert_eq!(decode_answer::<RoomMembers>(&answered.await.unwrap().unwrap()).unwrap().uids, vec![6]);
        assert_eq!(*attempts.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_refused_login_fails_the_connection_attempt() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let attempts = Arc::new(Mutex::new(0));

        // The first connect returns the refusal.
        let started = Client::new(&listener, &attempts, Duration::from_millis(200)).start();
        Peer::accept(&listener).await.login(false).await;
        let err = started.await.unwrap().unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::Connection, "login refused"));

        // A refused reconnection fails the calls waiting for it, and the
        // attempt after the backoff logs in again.
        let mut client = Client::new(&listener, &attempts, Duration::from_millis(200));
        let started = client.start();
        Peer::accept(&listener).await.login(true).await;
        let connection = started.await.unwrap().unwrap();
        client.event(|e| matches!(e, ConnectionEvent::Disconnected { .. })).await;
        Peer::accept(&listener).await.login(false).await;
        client.event(|e| matches!(e, ConnectionEvent::Reconnecting { attempt: 1, .. })).await;
        let refused = call(&connection, 7);
        Peer::accept(&listener).await.login(false).await;
        assert_eq!(refused.await.unwrap().unwrap_err().message(), "login refused");
        let mut peer = Peer::accept(&listener).await;
        peer.login(true).await;
        let answered = call(&connection, 8);
        let quest = peer.quest().await;
        peer.answer(quest.seq.unwrap(), &RoomMembers { uids: vec![8] }).await;
        assert!(answered.await.unwrap().is_ok());
        assert_eq!(*attempts.lock().unwrap(), 5);
    }
}
