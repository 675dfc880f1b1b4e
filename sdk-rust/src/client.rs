//! The async server-API client: a cheap `Clone` handle over one connection
//! task, which signs its quests with the project's secret and keeps what it
//! listens to.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rtm_protocol::methods::{Empty, Method};
use rtm_protocol::Answer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::broadcast;

use crate::connection::Connection;
use crate::error::Error;
use crate::listen::{ListenChange, ListenState, Relisten};
use crate::options::ClientOptions;
use crate::quest::{decode_answer, Signer};
use crate::room_events::{self, RoomEvent, RoomEventStream};

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
///
/// Room events the client listens to ([`add_listen`](Self::add_listen))
/// arrive at the [`ClientOptions::on_room_event`] callback and at every
/// [`room_events`](Self::room_events) stream.
#[derive(Clone)]
pub struct RtmServerClient {
    shared: Arc<Shared>,
    timeout: Duration,
}

struct Shared {
    connection: Connection,
    signer: Signer,
    runtime: Handle,
    /// Weak, so that streams end when the connection task does.
    room_events: broadcast::WeakSender<RoomEvent>,
    /// Written by the connection task only, as the server accepts listen calls.
    listening: Arc<Mutex<ListenState>>,
}

impl std::fmt::Debug for RtmServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmServerClient")
            .field("pid", &self.shared.signer.pid())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RtmServerClient {
    /// Connects to the server. Must be called within a tokio runtime; the
    /// connection task and callbacks run on that runtime.
    pub async fn connect(options: ClientOptions) -> Result<Self, Error> {
        let runtime = Handle::try_current()
            .map_err(|_| Error::invalid("RtmServerClient::connect must run inside a tokio runtime"))?;
        let mut options = options;
        let room_events =
            room_events::install(&mut options.push_handlers, options.on_room_event.clone(), options.room_event_buffer);
        let listening = Arc::new(Mutex::new(ListenState::default()));
        let signer = Signer::new(options.pid, options.secret.clone());
        let timeout = options.quest_timeout;
        let relisten =
            Relisten { state: listening.clone(), signer: signer.clone(), timeout, on_event: options.on_event.clone() };
        let (connector, settings) = options.into_connection(Some(Box::new(relisten)));
        let connection = Connection::start(connector, settings).await?;
        let shared = Arc::new(Shared { connection, signer, runtime, room_events, listening });
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
        self.shared.signer.pid()
    }

    /// A new stream of the room events pushed to this client from now on
    /// (events pushed before the call are not in it). Any number of streams
    /// may be open, beside the [`ClientOptions::on_room_event`] callback;
    /// each gets every event. The stream ends when the client is closed.
    ///
    /// Delivery is at most once: events the server emits while the client
    /// is disconnected are lost, and a stream that falls behind by more than
    /// [`ClientOptions::room_event_buffer`] loses its oldest events (and is
    /// told how many).
    ///
    /// ```no_run
    /// # async fn demo(client: rtm_sdk::RtmServerClient) -> Result<(), rtm_sdk::Error> {
    /// use rtm_sdk::{ListenFilter, RoomEvent};
    ///
    /// let mut events = client.room_events();
    /// let filter = ListenFilter::new().rooms([7001]).events([RoomEvent::MEMBER_JOINED, RoomEvent::MEMBER_LEFT]);
    /// client.add_listen(&filter).await?;
    /// while let Some(event) = events.next().await {
    ///     match event {
    ///         Ok(event) if event.name == RoomEvent::MEMBER_JOINED => println!("{} joined {}", event.uid, event.rid),
    ///         Ok(event) => println!("{event:?}"),
    ///         Err(lagged) => eprintln!("{lagged}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn room_events(&self) -> RoomEventStream {
        let receiver = match self.shared.room_events.upgrade() {
            Some(sender) => sender.subscribe(),
            // The connection task has ended: a stream that ends at once.
            None => broadcast::channel(1).1,
        };
        RoomEventStream::new(receiver)
    }

    /// What this client listens to, as the server has accepted it through
    /// [`add_listen`](Self::add_listen), [`remove_listen`](Self::remove_listen)
    /// and [`set_listen`](Self::set_listen) on any clone. After a reconnect,
    /// the client restores it with one `setlisten` before any other call.
    pub fn listening(&self) -> ListenState {
        self.shared.listening.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
        self.shared.connection.close().await;
    }

    async fn send(&self, method: &str, params: &(impl Serialize + ?Sized)) -> Result<Answer, Error> {
        let frame = self.encode(method, params)?;
        self.send_frame(frame).await
    }

    /// Hands an encoded quest to the connection task and waits for its answer.
    pub(crate) async fn send_frame(&self, frame: bytes::Bytes) -> Result<Answer, Error> {
        self.shared.connection.call(frame, self.timeout, None).await
    }

    /// Sends a listen call; the connection task applies `change` to the
    /// remembered listen state when the server accepts it.
    pub(crate) async fn listen(&self, change: &ListenChange) -> Result<Empty, Error> {
        let frame = change.encode(&self.shared.signer)?;
        let hook = change.clone().apply_when_accepted(self.shared.listening.clone());
        let answer = self.shared.connection.call(frame, self.timeout, Some(hook)).await?;
        decode_answer(&answer)
    }

    /// Encodes a twoway quest with seq 0 (the connection task stamps it).
    pub(crate) fn encode(&self, method: &str, params: &(impl Serialize + ?Sized)) -> Result<bytes::Bytes, Error> {
        self.shared.signer.encode(method, params)
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
