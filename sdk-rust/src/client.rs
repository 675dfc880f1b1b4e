//! The async client: a cheap `Clone` handle over one connection task.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rtm_protocol::methods::{Method, ServerAuth, Signed};
use rtm_protocol::{payload, write_quest, Answer, Encoding, ErrorAnswer};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::connection::{self, Command, ConnectionTask};
use crate::error::{Error, ErrorKind};
use crate::options::ClientOptions;
use crate::salt::next_salt;

/// Calls queued for the connection task before callers wait to enqueue more.
const COMMAND_QUEUE: usize = 4096;

/// A client of the RTM server API.
///
/// Cloning is cheap and every clone shares one connection: calls from many
/// tasks are pipelined over it, and no lock is held while a call waits for
/// its answer. The connection closes when [`close`](Self::close) is called
/// or the last clone is dropped.
///
/// Every server method has two forms: an `async fn` (e.g.
/// [`add_room_member`](Self::add_room_member)) and a callback form
/// (e.g. [`add_room_member_with_callback`](Self::add_room_member_with_callback))
/// that returns at once and runs the callback on the client's runtime when
/// the answer arrives, the call times out, or the connection drops.
/// [`crate::blocking::RtmServerClient`] adds blocking forms.
#[derive(Clone)]
pub struct RtmServerClient {
    shared: Arc<Shared>,
    timeout: Duration,
}

struct Shared {
    commands: mpsc::Sender<Command>,
    pid: i64,
    secret: String,
    runtime: Handle,
}

impl std::fmt::Debug for RtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmServerClient").field("pid", &self.shared.pid).field("timeout", &self.timeout).finish()
    }
}

impl RtmServerClient {
    /// Connects to the server. Must be called within a tokio runtime; the
    /// connection task and callbacks run on that runtime.
    pub async fn connect(options: ClientOptions) -> Result<Self, Error> {
        let runtime = Handle::try_current()
            .map_err(|_| Error::invalid("RtmServerClient::connect must run inside a tokio runtime"))?;
        let stream = connection::open(&options).await?;
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let timeout = options.quest_timeout;
        let shared = Arc::new(Shared { commands, pid: options.pid, secret: options.secret.clone(), runtime });
        tokio::spawn(ConnectionTask::new(options, receiver).run(stream));
        Ok(Self { shared, timeout })
    }

    /// A handle to the same connection whose calls time out after `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(client: rtm_sdk::RtmServerClient) -> Result<(), rtm_sdk::Error> {
    /// use std::time::Duration;
    /// client.with_timeout(Duration::from_secs(2)).add_room_member(7001, 1001).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { shared: self.shared.clone(), timeout }
    }

    /// The quest timeout of this handle.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The project this client signs for.
    pub fn pid(&self) -> i64 {
        self.shared.pid
    }

    /// Calls a typed method. Methods whose name starts with `*` (FPNN
    /// built-ins such as `*ping`) are sent unsigned; all others are signed.
    pub async fn execute<M: Method>(&self, params: &M) -> Result<M::Answer, Error> {
        let answer = self.send(M::NAME, params).await?;
        decode_answer(&answer)
    }

    /// Calls any method by name with any map-like `params`, signed, and
    /// reads the answer as `T` (use `rtm_protocol::Value`-compatible types or
    /// `serde::de::IgnoredAny` to ignore it).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T, Error> {
        let answer = self.send(method, params).await?;
        decode_answer(&answer)
    }

    /// Closes the connection. Calls in flight fail with a connection error;
    /// later calls on any clone fail too.
    pub async fn close(&self) {
        let _ = self.shared.commands.send(Command::Close).await;
    }

    async fn send(&self, method: &str, params: &(impl Serialize + ?Sized)) -> Result<Answer, Error> {
        let frame = self.encode(method, params)?;
        self.send_frame(frame).await
    }

    /// Hands an encoded quest to the connection task and waits for its answer.
    pub(crate) async fn send_frame(&self, frame: bytes::Bytes) -> Result<Answer, Error> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .commands
            .send(Command::Call { frame, timeout: self.timeout, reply })
            .await
            .map_err(|_| Error::connection("the client is closed"))?;
        answer.await.map_err(|_| Error::connection("the client is closed"))?
    }

    /// Encodes a twoway quest with seq 0 (the connection task stamps it).
    pub(crate) fn encode(&self, method: &str, params: &(impl Serialize + ?Sized)) -> Result<bytes::Bytes, Error> {
        let mut out = BytesMut::with_capacity(128);
        let result = if method.starts_with('*') {
            write_quest(&mut out, Encoding::MsgPack, Some(0), method, params)
        } else {
            let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let auth = ServerAuth::new(self.shared.pid, &self.shared.secret, next_salt(), method, ts);
            write_quest(&mut out, Encoding::MsgPack, Some(0), method, &Signed { auth: &auth, params })
        };
        result.map_err(|e| Error::invalid(format!("cannot encode '{method}': {e}")))?;
        Ok(out.freeze())
    }

    /// Runs `call` on the client's runtime and hands its result to `callback`.
    pub(crate) fn spawn_callback<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, Error>> + Send + 'static,
        callback: impl FnOnce(Result<T, Error>) + Send + 'static,
    ) {
        self.shared.runtime.spawn(async move { callback(call.await) });
    }

    /// The runtime the connection task runs on.
    pub(crate) fn runtime(&self) -> &Handle {
        &self.shared.runtime
    }
}

/// Turns an answer into `T`, or into the server's error.
pub(crate) fn decode_answer<T: DeserializeOwned>(answer: &Answer) -> Result<T, Error> {
    if answer.status != 0 {
        return match payload::decode::<ErrorAnswer>(answer.encoding, &answer.payload) {
            Ok(err) => Err(Error::server(err.code, err.ex)),
            Err(e) => Err(Error::new(ErrorKind::Protocol, format!("unreadable error answer: {e}"))),
        };
    }
    payload::decode(answer.encoding, &answer.payload)
        .map_err(|e| Error::new(ErrorKind::Protocol, format!("unexpected answer: {e}")))
}
