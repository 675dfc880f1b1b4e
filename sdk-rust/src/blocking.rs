//! A blocking client for plain `fn main` programs.
//!
//! It is a thin layer over the async [`crate::RtmServerClient`]: the async
//! client and its connection task run on a small tokio runtime on a
//! background thread owned by this client, so keep-alive pings, pushes and
//! callbacks keep working between calls. Each blocking method hands its
//! call to that runtime and parks the calling thread until the answer.

use std::future::Future;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use rtm_protocol::methods::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::client;
use crate::error::Error;
use crate::history::{HistoryQuery, HistoryRow};
use crate::listen::ListenState;
use crate::options::ClientOptions;
use crate::quest::decode_answer;
use crate::room_events::{Lagged, RoomEvent, RoomEventStream};

/// The blocking client. Cloning is cheap; the background thread stops
/// when the last clone is dropped.
///
/// ```no_run
/// use rtm_sdk::{blocking::RtmServerClient, ClientOptions};
///
/// let client = RtmServerClient::connect(ClientOptions::new("127.0.0.1:13315", 11000001, "demo-secret-for-local-use-only"))?;
/// client.add_room_member(7001, 1001)?;
/// assert_eq!(client.get_room_members(7001)?, vec![1001]);
/// # Ok::<(), rtm_sdk::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RtmServerClient {
    client: client::RtmServerClient,
    background: Arc<Background>,
}

#[derive(Debug)]
struct Background {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // A callback running on the background thread may drop the last
        // clone; that thread cannot join itself.
        if std::thread::current().id() != self.thread_id {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Background {
    /// Starts a thread with a runtime of its own, makes the client there
    /// with `connect`, and keeps the runtime running for it.
    fn start<T, F, Fut>(what: &str, connect: F) -> Result<(T, Arc<Self>), Error>
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, Error>>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(format!(
                "{what} called inside an async runtime; use the async client (rtm_sdk::{})",
                what.trim_start_matches("blocking::").split("::").next().unwrap_or_default()
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::connection("cannot start the client runtime").with_source(e))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rtm-sdk".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let connected = connect().await;
                    let ok = connected.is_ok();
                    let _ = ready_tx.send(connected);
                    if ok {
                        let _ = stop_rx.await;
                    }
                });
            })
            .map_err(|e| Error::connection("cannot start the client thread").with_source(e))?;
        let thread_id = thread.thread().id();
        match ready_rx.recv() {
            Ok(Ok(client)) => Ok((client, Arc::new(Self { stop: Some(stop_tx), thread: Some(thread), thread_id }))),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(Error::connection("the client thread stopped")),
        }
    }
}

impl RtmServerClient {
    /// Starts the background runtime and connects.
    pub fn connect(options: ClientOptions) -> Result<Self, Error> {
        let (client, background) =
            Background::start("blocking::RtmServerClient::connect", move || client::RtmServerClient::connect(options))?;
        Ok(Self { client, background })
    }

    /// A handle to the same connection whose calls time out after `timeout`.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self { client: self.client.with_timeout(timeout), background: self.background.clone() }
    }

    /// The async client underneath, for mixing styles.
    pub fn async_client(&self) -> &client::RtmServerClient {
        &self.client
    }

    /// A new iterator over the room events pushed to this client from now
    /// on; see [`crate::RtmServerClient::room_events`] for delivery and
    /// buffering.
    ///
    /// ```no_run
    /// # fn demo(client: rtm_sdk::blocking::RtmServerClient) -> Result<(), rtm_sdk::Error> {
    /// use rtm_sdk::ListenFilter;
    ///
    /// let events = client.room_events();
    /// // Every event of room 7001.
    /// client.set_listen(&ListenFilter::new().rooms([7001]), false, true)?;
    /// for event in events {
    ///     match event {
    ///         Ok(event) => println!("{} in room {}: {}", event.name, event.rid, event.data),
    ///         Err(lagged) => eprintln!("{lagged}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn room_events(&self) -> RoomEvents {
        RoomEvents {
            stream: self.client.room_events(),
            runtime: self.client.runtime().clone(),
            _background: self.background.clone(),
        }
    }

    /// What this client listens to (see [`crate::RtmServerClient::listening`]).
    pub fn listening(&self) -> ListenState {
        self.client.listening()
    }

    /// Calls a typed method (see [`crate::RtmServerClient::execute`]).
    pub fn execute<M: Method + Send + Sync + 'static>(&self, params: M) -> Result<M::Answer, Error>
    where
        M::Answer: Send,
    {
        self.block_on(|client| async move { client.execute(&params).await })
    }

    /// Calls any method by name (see [`crate::RtmServerClient::call`]).
    pub fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T, Error> {
        let frame = self.client.encode(method, params)?;
        self.block_on(|client| async move { decode_answer(&client.send_frame(frame).await?) })
    }

    /// Closes the connection; later calls fail.
    pub fn close(&self) -> Result<(), Error> {
        self.block_on(|client| async move {
            client.close().await;
            Ok(())
        })
    }

    /// Runs `call` with the async client and waits for it on this thread.
    /// Room `rid`'s history as user `uid` sees it, as an iterator that
    /// blocks for each next page (see [`crate::RoomHistory`]).
    pub fn room_history(&self, uid: i64, rid: i64, query: HistoryQuery) -> RoomHistory {
        RoomHistory {
            pager: self.client.room_history(uid, rid, query),
            runtime: self.client.runtime().clone(),
            failed: false,
            _background: self.background.clone(),
        }
    }

    pub(crate) fn block_on<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: FnOnce(client::RtmServerClient) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(
                "a blocking call was made inside an async runtime, where it would block the runtime; \
                 use rtm_sdk::RtmServerClient (async) or the *_with_callback methods instead",
            ));
        }
        self.client.runtime().block_on(call(self.client.clone()))
    }
}

/// Room events for a blocking program, from
/// [`RtmServerClient::room_events`]: an iterator that blocks for the next
/// event and ends when the client is closed or every client handle is
/// dropped. Items are `Err(Lagged)` when events were lost because the
/// reader fell behind.
///
/// It keeps the client's background thread running while it exists, so
/// that it can always be waited on; the connection itself still closes
/// with the last client handle.
///
/// # Panics
///
/// Waiting (`next`, [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout))
/// inside an async runtime panics; use
/// [`crate::RtmServerClient::room_events`] there.
#[derive(Debug)]
pub struct RoomEvents {
    stream: RoomEventStream,
    runtime: tokio::runtime::Handle,
    _background: Arc<Background>,
}

impl RoomEvents {
    /// Blocks for the next event; `None` once the client is closed.
    pub fn recv(&mut self) -> Option<Result<RoomEvent, Lagged>> {
        self.runtime.block_on(self.stream.next())
    }

    /// Blocks for the next event for at most `timeout`:
    /// [`Timeout`](RecvTimeoutError::Timeout) if none came,
    /// [`Disconnected`](RecvTimeoutError::Disconnected) once the client is closed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Result<RoomEvent, Lagged>, RecvTimeoutError> {
        let next = self.runtime.block_on(async { tokio::time::timeout(timeout, self.stream.next()).await });
        match next {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }
}

impl Iterator for RoomEvents {
    type Item = Result<RoomEvent, Lagged>;

    fn next(&mut self) -> Option<Self::Item> {
        self.recv()
    }
}

/// A room's history for a blocking program, from
/// [`RtmServerClient::room_history`]: an iterator of rows that blocks while
/// it fetches the next page. An error ends the iteration after it is given.
///
/// # Panics
///
/// Iterating inside an async runtime panics; use
/// [`crate::RtmServerClient::room_history`] there.
pub struct RoomHistory {
    pager: crate::history_pager::RoomHistory,
    runtime: tokio::runtime::Handle,
    failed: bool,
    _background: Arc<Background>,
}

impl Iterator for RoomHistory {
    type Item = Result<HistoryRow, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.runtime.block_on(self.pager.next()).transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// The end-user client for a blocking program: [`crate::RtmClient`] on a
/// background thread of its own. Every async method has a blocking form of
/// the same name (and a `_with_callback` form); cloning is cheap.
///
/// ```no_run
/// use rtm_sdk::{blocking::RtmClient, RtmClientOptions};
///
/// # let token = String::new();
/// let player = RtmClient::login(RtmClientOptions::new("127.0.0.1:13321", 11000001, 1001, token))?;
/// player.enter_room(7001)?;
/// let mut heard = player.messages();
/// player.send_room_chat(7001, "hi")?;
/// if let Some(Ok(message)) = heard.next() { println!("{:?}", message.kind); }
/// # Ok::<(), rtm_sdk::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RtmClient {
    client: crate::end_user::RtmClient,
    background: Arc<Background>,
}

impl RtmClient {
    /// Starts the background runtime, connects and logs in.
    pub fn login(options: crate::end_user::RtmClientOptions) -> Result<Self, Error> {
        let (client, background) =
            Background::start("blocking::RtmClient::login", move || crate::end_user::RtmClient::login(options))?;
        Ok(Self { client, background })
    }

    /// The async client underneath.
    pub fn async_client(&self) -> &crate::end_user::RtmClient {
        &self.client
    }

    /// The logged-in user.
    pub fn uid(&self) -> i64 {
        self.client.uid()
    }

    /// Room messages from now on, as an iterator that blocks for the next
    /// one (`Err(missed)` when the reader fell behind; the end once the
    /// client is closed).
    pub fn messages(&self) -> RoomMessages {
        RoomMessages {
            messages: self.client.messages(),
            runtime: self.client.runtime().clone(),
            _background: self.background.clone(),
        }
    }

    /// Room `rid`'s history, page by page, as a blocking iterator.
    pub fn room_history(&self, rid: i64, query: HistoryQuery) -> RoomHistory {
        RoomHistory {
            pager: self.client.room_history(rid, query),
            runtime: self.client.runtime().clone(),
            failed: false,
            _background: self.background.clone(),
        }
    }

    /// Says goodbye and closes the connection (no relogin).
    pub fn bye(&self) -> Result<(), Error> {
        self.block_on(|client| async move {
            client.bye().await;
            Ok(())
        })
    }

    pub(crate) fn block_on<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: FnOnce(crate::end_user::RtmClient) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::invalid(
                "a blocking call was made inside an async runtime, where it would block the runtime; \
                 use rtm_sdk::RtmClient (async) or the *_with_callback methods instead",
            ));
        }
        self.client.runtime().block_on(call(self.client.clone()))
    }
}

/// Room messages for a blocking program, from [`RtmClient::messages`].
pub struct RoomMessages {
    messages: crate::end_user::RoomMessages,
    runtime: tokio::runtime::Handle,
    _background: Arc<Background>,
}

impl RoomMessages {
    /// Blocks for at most `timeout` for the next message.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Result<crate::end_user::RoomMessage, u64>, RecvTimeoutError> {
        let next = self.runtime.block_on(async { tokio::time::timeout(timeout, self.messages.next()).await });
        match next {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(RecvTimeoutError::Disconnected),
            Err(_) => Err(RecvTimeoutError::Timeout),
        }
    }
}

impl Iterator for RoomMessages {
    type Item = Result<crate::end_user::RoomMessage, u64>;

    fn next(&mut self) -> Option<Self::Item> {
        self.runtime.block_on(self.messages.next())
    }
}
