//! [`RtmClient`]: an end user's connection to the client gate, as the RTM
//! client SDKs make it.
//!
//! It logs in with a token from the backend's `gettoken` as the first quest
//! on every connection (an on-connect hook), so an automatic reconnection
//! is a relogin with the same token, after which the rooms the user had
//! entered are entered again. The gate's pings are answered. Room messages
//! arrive on [`RtmClient::messages`], de-duplicated by `(from, rid, mid)`
//! (a relogin may replay), typed by kind. A `kickout` closes the client for
//! good; a `kickoutroom` forgets the room.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtm_protocol::client::{
    Auth, AuthAnswer, Bye, EnterRoom, GetUserRooms, KickoutRoom, LeaveRoom, MessageBody, PushRoomMsg, SendRoomMsg,
    SentMessage, CHAT_MTYPE,
};
use rtm_protocol::client::{GetRoomMsgCount, GetUserRoomsAndLastMsg};
use rtm_protocol::methods::{DelMsg, GetMsg, GetRoomMembers, Method, ROOM_MESSAGE_TYPE};
use tokio::sync::broadcast;

use crate::connection::{Connection, Settings};
use crate::connector::{Connector, Handshake, HookFuture, OnConnect, TlsSettings};
use crate::encryption::EncryptionSettings;
use crate::error::{Error, ErrorKind};
use crate::history::{HistoryPage, HistoryQuery, HistoryRow, MessageInfo};
use crate::push::{PushHandler, PushQuest};
use crate::quest;
use rtm_protocol::encryption::{Bits, Mode as EncryptionMode};

/// How many `(from, rid, mid)` a client remembers to drop repeats.
const SEEN_MESSAGES: usize = 10_000;

/// Where and as whom an [`RtmClient`] logs in.
#[derive(Clone)]
pub struct RtmClientOptions {
    endpoint: String,
    pid: i64,
    uid: i64,
    token: String,
    quest_timeout: Duration,
    connect_timeout: Duration,
    auto_relogin: bool,
    message_buffer: usize,
    tls: Option<TlsSettings>,
    encryption: Option<EncryptionSettings>,
}

impl std::fmt::Debug for RtmClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token logs the user in: it stays out of logs.
        f.debug_struct("RtmClientOptions")
            .field("endpoint", &self.endpoint)
            .field("pid", &self.pid)
            .field("uid", &self.uid)
            .field("quest_timeout", &self.quest_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("auto_relogin", &self.auto_relogin)
            .field("message_buffer", &self.message_buffer)
            .field("tls", &self.tls.is_some())
            .field("encryption", &self.encryption.is_some())
            .finish_non_exhaustive()
    }
}

impl RtmClientOptions {
    /// The client gate at `endpoint` (`host:port`, usually port 13321), user
    /// `uid` of project `pid`, with a token from the backend's `gettoken`.
    pub fn new(endpoint: impl Into<String>, pid: i64, uid: i64, token: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            pid,
            uid,
            token: token.into(),
            quest_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            auto_relogin: true,
            message_buffer: 1024,
            tls: None,
            encryption: None,
        }
    }

    /// How long a call waits for its answer (default 30 s, as the RTM SDKs).
    pub fn quest_timeout(mut self, timeout: Duration) -> Self {
        self.quest_timeout = timeout;
        self
    }

    /// Whether a dropped connection logs in again by itself (default yes).
    pub fn auto_relogin(mut self, on: bool) -> Self {
        self.auto_relogin = on;
        self
    }

    /// Connect over TLS (1.2 or 1.3) to the gate's TLS endpoint, trusting
    /// only the CA certificates in `ca_pem`.
    pub fn tls_with_ca_pem(self, ca_pem: &[u8]) -> Result<Self, Error> {
        Ok(self.tls_config(TlsSettings::with_ca_pem(ca_pem)?))
    }

    /// Connect over TLS with a rustls configuration of your own.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(TlsSettings::with_config(self.tls.take(), config));
        self.encryption = None;
        self
    }

    /// The name the gate's certificate must be valid for, when it differs
    /// from the endpoint's host (set after the TLS configuration).
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        TlsSettings::name_server(&mut self.tls, name.into());
        self
    }

    /// Encrypt the connection with FPNN `*key` (ECDH, then AES-CFB) instead
    /// of TLS, with the server's public key as `rtm-server keygen` wrote it
    /// (PEM, or DER); the key's curve is read from it. `mode` is package
    /// (the Python, Java and C++ SDKs) or stream (the Go SDK); `bits` 128
    /// or 256. Replaces TLS if it was set. The server's gate needs
    /// `ecdh.key_path` with the matching private key.
    pub fn enable_encryption(mut self, public_key_pem: &[u8], mode: EncryptionMode, bits: Bits) -> Result<Self, Error> {
        self.encryption = Some(EncryptionSettings::new(public_key_pem, mode, bits)?);
        self.tls = None;
        Ok(self)
    }

    /// Room messages kept for a slow [`RoomMessages`] reader before it
    /// lags (default 1024).
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = messages.max(1);
        self
    }
}

/// A room message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The sender's uid.
    pub from: i64,
    /// The room.
    pub rid: i64,
    /// The sender's message id.
    pub mid: i64,
    /// The message type.
    pub mtype: i64,
    /// What it says.
    pub kind: MessageKind,
    /// Its attributes.
    pub attrs: String,
    /// When the server accepted it, Unix milliseconds.
    pub mtime: i64,
}

/// The content of a room message, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    /// Text (any mtype but chat and cmd).
    Text(String),
    /// Bytes.
    Binary(Vec<u8>),
    /// Chat (mtype 30): the text shown (the translation if any, else the source).
    Chat(String),
    /// A command (mtype 32).
    Cmd(String),
}

/// Room messages as they arrive (see [`RtmClient::messages`]).
pub struct RoomMessages {
    receiver: broadcast::Receiver<RoomMessage>,
}

impl RoomMessages {
    /// The next message; `Err(missed)` if this reader fell behind by `missed`
    /// messages; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<Result<RoomMessage, u64>> {
        match self.receiver.recv().await {
            Ok(message) => Some(Ok(message)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Err(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// `(from, rid, mid)` of recent room messages, and their arrival order
/// (to forget the oldest).
#[derive(Default)]
struct Seen {
    keys: HashSet<(i64, i64, i64)>,
    order: VecDeque<(i64, i64, i64)>,
}

struct Shared {
    pid: i64,
    uid: i64,
    connection: OnceLock<Connection>,
    /// Rooms entered, to enter again after a relogin.
    rooms: Mutex<BTreeSet<i64>>,
    messages: broadcast::Sender<RoomMessage>,
    seen: Mutex<Seen>,
    next_mid: Mutex<i64>,
}

/// The login hook: `auth` first on every connection, then the rooms again.
struct Login {
    shared: Arc<Shared>,
    token: String,
    timeout: Duration,
}

impl OnConnect for Login {
    fn on_connect<'a>(&'a self, handshake: &'a mut Handshake) -> HookFuture<'a> {
        Box::pin(async move {
            let auth = Auth {
                pid: self.shared.pid,
                uid: self.shared.uid,
                token: self.token.clone(),
                version: Some(format!("rtm-sdk-rust-{}", env!("CARGO_PKG_VERSION"))),
                lang: None,
                attrs: None,
                device: None,
            };
            let answer = handshake.call(&quest::encode(Auth::NAME, &auth)?, self.timeout).await?;
            let AuthAnswer { ok } = quest::decode_answer(&answer)?;
            if !ok {
                return Err(Error::new(ErrorKind::Server, "login refused: the token is bad, expired or revoked"));
            }
            let rooms: Vec<i64> = self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
            for rid in rooms {
                handshake.send(&quest::encode(EnterRoom::NAME, &EnterRoom { rid })?, self.timeout, Box::new(|_| {}));
            }
            Ok(())
        })
    }
}

/// An end user logged in on the client gate. Cheap to clone: clones share
/// the connection; it closes on [`bye`](Self::bye) or when the last clone
/// is dropped.
#[derive(Clone)]
pub struct RtmClient {
    shared: Arc<Shared>,
    timeout: Duration,
    /// The runtime the client was made on: callbacks run there.
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for RtmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmClient").field("pid", &self.shared.pid).field("uid", &self.shared.uid).finish()
    }
}

impl RtmClient {
    /// Connects and logs in. A refused token is an error of kind
    /// [`ErrorKind::Server`]. Must run inside a tokio runtime.
    pub async fn login(options: RtmClientOptions) -> Result<Self, Error> {
        let (messages, _) = broadcast::channel(options.message_buffer);
        let shared = Arc::new(Shared {
            pid: options.pid,
            uid: options.uid,
            connection: OnceLock::new(),
            rooms: Mutex::new(BTreeSet::new()),
            messages,
            seen: Mutex::new(Seen::default()),
            next_mid: Mutex::new(0),
        });
        let login = Login { shared: shared.clone(), token: options.token, timeout: options.quest_timeout };
        let connector = Connector {
            endpoint: options.endpoint,
            connect_timeout: options.connect_timeout,
            tls: options.tls,
            encryption: options.encryption,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            max_frame_len: 4 * 1024 * 1024,
            on_connect: Some(Box::new(login)),
        };
        let settings = Settings {
            // The gate pings the client; the client sends nothing of its own.
            keepalive: None,
            auto_reconnect: options.auto_relogin,
            on_event: None,
            push_handlers: push_handlers(&shared),
        };
        let connection = Connection::start(connector, settings).await?;
        let _ = shared.connection.set(connection);
        Ok(Self { shared, timeout: options.quest_timeout, runtime: tokio::runtime::Handle::current() })
    }

    /// The logged-in user.
    pub fn uid(&self) -> i64 {
        self.shared.uid
    }

    /// Runs `call` on the client's runtime and hands its result to `callback`.
    pub(crate) fn spawn_callback<T: Send + 'static>(
        &self,
        call: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
        callback: impl FnOnce(Result<T, Error>) + Send + 'static,
    ) {
        self.runtime.spawn(async move { callback(call.await) });
    }

    /// The runtime the client was made on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    async fn call<M: Method>(&self, params: &M) -> Result<M::Answer, Error> {
        let connection = self.shared.connection.get().ok_or_else(|| Error::connection("not connected"))?;
        let answer = connection.call(quest::encode(M::NAME, params)?, self.timeout, None).await?;
        quest::decode_answer(&answer)
    }

    /// Enters room `rid` (entered again after every relogin).
    pub async fn enter_room(&self, rid: i64) -> Result<(), Error> {
        self.call(&EnterRoom { rid }).await?;
        self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).insert(rid);
        Ok(())
    }

    /// Leaves room `rid`.
    pub async fn leave_room(&self, rid: i64) -> Result<(), Error> {
        self.shared.rooms.lock().unwrap_or_else(|e| e.into_inner()).remove(&rid);
        self.call(&LeaveRoom { rid }).await.map(|_| ())
    }

    /// The rooms the user is in, as the server knows them.
    pub async fn user_rooms(&self) -> Result<Vec<i64>, Error> {
        Ok(self.call(&GetUserRooms {}).await?.rooms)
    }

    /// The members of room `rid`.
    pub async fn room_members(&self, rid: i64) -> Result<Vec<i64>, Error> {
        Ok(self.call(&GetRoomMembers { rid }).await?.uids)
    }

    /// Says `msg` (text or bytes) in room `rid` with message type `mtype`;
    /// returns the server's `mtime`. The message id is made here, unique
    /// per client, and a retry by the caller should resend through
    /// [`send_room_message_with_mid`](Self::send_room_message_with_mid).
    pub async fn send_room_message(&self, rid: i64, mtype: i64, msg: MessageBody, attrs: &str) -> Result<i64, Error> {
        let mid = self.next_mid();
        self.send_room_message_with_mid(rid, mid, mtype, msg, attrs).await
    }

    /// [`send_room_message`](Self::send_room_message) with the caller's own
    /// message id (a retry with the same id and content is not delivered twice).
    pub async fn send_room_message_with_mid(
        &self,
        rid: i64,
        mid: i64,
        mtype: i64,
        msg: MessageBody,
        attrs: &str,
    ) -> Result<i64, Error> {
        let send = SendRoomMsg { rid, mid, mtype, msg, attrs: attrs.into(), strategyid: None, check_params: None };
        let SentMessage { mtime } = self.call(&send).await?;
        Ok(mtime)
    }

    /// Chat text (mtype 30) in room `rid`.
    pub async fn send_room_chat(&self, rid: i64, text: &str) -> Result<i64, Error> {
        self.send_room_message(rid, CHAT_MTYPE, MessageBody::Text(text.into()), "").await
    }

    /// One page of room `rid`'s history (`getroommsg`; the user must be in
    /// the room). [`room_history`](Self::room_history) pages by itself.
    pub async fn get_room_messages(&self, rid: i64, query: &HistoryQuery) -> Result<HistoryPage, Error> {
        self.call(&query.client_request(rid)).await
    }

    /// The message `from` sent in room `rid` as `mid`, from history (`getmsg`).
    pub async fn get_room_message(&self, rid: i64, from: i64, mid: i64) -> Result<MessageInfo, Error> {
        self.call(&GetMsg { mid, from, xid: rid, kind: ROOM_MESSAGE_TYPE }).await
    }

    /// Deletes one of the user's own messages from room `rid`'s history (`delmsg`).
    pub async fn delete_room_message(&self, rid: i64, mid: i64) -> Result<(), Error> {
        self.call(&DelMsg { mid, from: self.uid(), xid: rid, kind: ROOM_MESSAGE_TYPE }).await.map(|_| ())
    }

    /// How many of room `rid`'s messages (of `mtypes`, if any) history holds
    /// between `begin` and `end` (Unix ms, inclusive; 0 = unbounded).
    pub async fn get_room_message_count(
        &self,
        rid: i64,
        begin: i64,
        end: i64,
        mtypes: Option<&[i64]>,
    ) -> Result<i64, Error> {
        let request = GetRoomMsgCount { rid, begin, end, mtypes: mtypes.map(<[i64]>::to_vec) };
        Ok(self.call(&request).await?.count)
    }

    /// Each of the user's rooms with its newest message (of `mtypes`, if
    /// any), by room id; rooms without one are left out.
    pub async fn rooms_with_last_message(
        &self,
        mtypes: Option<&[i64]>,
    ) -> Result<std::collections::BTreeMap<i64, HistoryRow>, Error> {
        let answer = self.call(&GetUserRoomsAndLastMsg { mtypes: mtypes.map(<[i64]>::to_vec) }).await?;
        Ok(answer.rooms.into_iter().filter_map(|(rid, row)| Some((rid.parse().ok()?, row))).collect())
    }

    /// Room messages from now on. Each call gives a reader of its own.
    pub fn messages(&self) -> RoomMessages {
        RoomMessages { receiver: self.shared.messages.subscribe() }
    }

    /// Says goodbye and closes the connection (no relogin).
    pub async fn bye(&self) {
        let _ = self.call(&Bye {}).await;
        if let Some(connection) = self.shared.connection.get() {
            connection.close().await;
        }
    }

    fn next_mid(&self) -> i64 {
        // `(ms << 16) + counter`, as the RTM client SDKs make them.
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut last = self.shared.next_mid.lock().unwrap_or_else(|e| e.into_inner());
        *last = (ms << 16).max(*last + 1);
        *last
    }
}

fn push_handlers(shared: &Arc<Shared>) -> std::collections::HashMap<String, PushHandler> {
    let mut handlers: std::collections::HashMap<String, PushHandler> = std::collections::HashMap::new();
    // Answered `{}` by the connection task; nothing else to do.
    handlers.insert("ping".into(), Arc::new(|_| {}));
    let for_messages = shared.clone();
    handlers.insert("pushroommsg".into(), Arc::new(move |push: PushQuest| on_room_message(&for_messages, &push)));
    let for_rooms = shared.clone();
    handlers.insert(
        "kickoutroom".into(),
        Arc::new(move |push: PushQuest| {
            if let Ok(KickoutRoom { rid }) = push.decode() {
                for_rooms.rooms.lock().unwrap_or_else(|e| e.into_inner()).remove(&rid);
            }
        }),
    );
    let for_kickout = shared.clone();
    handlers.insert(
        "kickout".into(),
        Arc::new(move |_| {
            // Kicked out: no relogin. The handler runs on the connection task,
            // so the close is sent from another.
            if let Some(connection) = for_kickout.connection.get().cloned() {
                tokio::spawn(async move { connection.close().await });
            }
        }),
    );
    handlers
}

fn on_room_message(shared: &Shared, push: &PushQuest) {
    let Ok(message) = push.decode::<PushRoomMsg>() else { return };
    let key = (message.from, message.rid, message.mid);
    {
        let mut seen = shared.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.keys.insert(key) {
            return;
        }
        seen.order.push_back(key);
        if seen.order.len() > SEEN_MESSAGES {
            if let Some(old) = seen.order.pop_front() {
                seen.keys.remove(&old);
            }
        }
    }
    let kind = match (message.mtype, message.msg) {
        (_, MessageBody::Chat(chat)) => {
            MessageKind::Chat(if chat.target_text.is_empty() { chat.source_text } else { chat.target_text })
        }
        (CHAT_MTYPE, MessageBody::Text(text)) => MessageKind::Chat(text),
        (32, MessageBody::Text(text)) => MessageKind::Cmd(text),
        (_, MessageBody::Text(text)) => MessageKind::Text(text),
        (_, MessageBody::Binary(bytes)) => MessageKind::Binary(bytes),
    };
    let message = RoomMessage {
        from: message.from,
        rid: message.rid,
        mid: message.mid,
        mtype: message.mtype,
        kind,
        attrs: message.attrs,
        mtime: message.mtime,
    };
    // No reader is fine: the message is dropped.
    let _ = shared.messages.send(message);
}
