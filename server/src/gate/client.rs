//! The client gate: players log in once with a token, then call the client
//! methods of `cmd/client/` as that user.
//!
//! - `auth` must be the first quest: any other gets 200022, a second
//!   `auth` 200023. A bad, expired or revoked token answers `{ok: false}`
//!   (status 0, as the SDKs expect); a user on the project block list gets
//!   200024. A connection that does not log in within
//!   `sessions.auth_timeout_secs` is closed.
//! - A logged-in session is registered in [`Presence`]; under
//!   `sessions.multi_login = "single"` the user's other sessions get
//!   `kickout`. The gate pings the session every
//!   `sessions.ping_interval_secs`.
//! - `bye` answers `{}` and closes the session.
//! - When a user's last session ends, the rooms the user entered as a
//!   client are left after `sessions.relogin_grace_secs`, unless the user
//!   logs in again meanwhile.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::client::{Auth, AuthAnswer};
use rtm_protocol::methods::{Empty, PingAnswer};
use rtm_protocol::{params, payload, ErrorCode, Quest, Value};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{stopping_error, unknown_method, AnswerTo, Counted, Discard, ServerGate};
use crate::app::App;
use crate::auth::Tokens;
use crate::clock;
use crate::cmd::client::{ClientCommand, ClientContext};
use crate::cmd::Reply;
use crate::error::RtmError;
use crate::model::{EventName, UserKey};
use crate::presence::ClientHandle;
use crate::session::{Gate, Session};

/// The RTM client gate.
pub(crate) struct ClientGate {
    app: Arc<App>,
    tokens: Arc<Tokens>,
    grace: Duration,
    /// Relogin-grace timers end with the server.
    stop: CancellationToken,
}

/// Metric slots after the client commands: `auth`, `bye`, anything else.
const AUTH_SLOT: usize = ClientCommand::ALL.len();

impl ClientGate {
    /// The gate's method names for metrics, `client.<name>`, indexed after
    /// the server gate's.
    pub(crate) fn method_names() -> impl Iterator<Item = String> {
        let names = ClientCommand::ALL.iter().map(|c| c.name()).chain(["auth", "bye"]);
        names.map(|name| format!("client.{name}"))
    }

    /// The metric slot of a method, if known.
    fn metric_slot(method: &[u8]) -> Option<usize> {
        let slot = match method {
            b"auth" => AUTH_SLOT,
            b"bye" => AUTH_SLOT + 1,
            name => ClientCommand::from_name(name)? as usize,
        };
        Some(ServerGate::METHODS + slot)
    }

    pub(crate) fn new(app: Arc<App>, tokens: Arc<Tokens>, stop: CancellationToken) -> Self {
        let grace = Duration::from_secs(app.config.sessions.relogin_grace_secs);
        Self { app, tokens, grace, stop }
    }

    fn reply<'a>(quest: &Quest, out: &'a mut BytesMut) -> Option<AnswerTo<'a>> {
        quest.seq.map(|seq| AnswerTo { out, version: quest.version, encoding: quest.encoding, seq })
    }

    /// `auth`: checks the token and registers the session.
    async fn login(
        &self,
        session: &mut Session,
        quest: &Quest,
        params: &Value<'_>,
        out: &mut BytesMut,
    ) -> Result<(), RtmError> {
        if session.client.is_some() {
            return Err(RtmError::new(ErrorCode::DuplicatedAuth, "this connection is already logged in"));
        }
        let auth: Auth = params::from_value(params)?;
        let now_ms = clock::now_ms();
        let user = UserKey { pid: auth.pid, uid: auth.uid };
        let engine = &self.app.engine;
        let revoked_at = engine.tokens_revoked_at(user);
        if !self.tokens.accepts(auth.pid, auth.uid, &auth.token, now_ms, revoked_at) {
            debug!(pid = auth.pid, uid = auth.uid, "login refused: bad, expired or revoked token");
            self.app.metrics.login("refused");
            if let Some(reply) = Self::reply(quest, out) {
                reply.ok(&AuthAnswer { ok: false });
            }
            return Ok(());
        }
        if engine.is_project_black(auth.pid, auth.uid, now_ms) {
            self.app.metrics.login("denied");
            return Err(RtmError::new(ErrorCode::AuthDenied, format!("user {} is blocked in this project", auth.uid)));
        }
        let handle = Arc::new(ClientHandle {
            session: session.id,
            user,
            outbox: session.outbox.clone(),
            encoding: quest.encoding,
            endpoint: session.peer.to_string(),
            login_seq: u64::MAX.into(),
        });
        for older in engine.presence().login(handle.clone()) {
            info!(pid = user.pid, uid = user.uid, session = older.session, "single login: kicking the older session");
            older.outbox.kick();
        }
        self.app.metrics.login("ok");
        session.outbox.keep_alive(quest.encoding);
        session.authenticated(user.pid);
        session.span.record("uid", user.uid);
        engine.events().user_presence(EventName::Login, user.pid, user.uid, &handle.endpoint, now_ms);
        session.client = Some(handle);
        if let Err(e) = engine.logged_in(user, session.id).await {
            // The login stands; an older session elsewhere may live on until its own next login.
            warn!(pid = user.pid, uid = user.uid, code = e.code.code(), ex = %e.ex, "login: other nodes not told");
            if let Some(client) = &session.client {
                // No notice to order kicks by: every later kick applies.
                client.login_seq.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some(reply) = Self::reply(quest, out) {
            reply.ok(&AuthAnswer { ok: true });
        }
        Ok(())
    }

    async fn run(&self, session: &mut Session, quest: &Quest, out: &mut BytesMut) -> Result<(), RtmError> {
        let params = payload::parse(quest.encoding, &quest.payload)?;
        match &quest.method[..] {
            b"auth" => return self.login(session, quest, &params, out).await,
            b"*ping" => {
                if let Some(reply) = Self::reply(quest, out) {
                    reply.ok(&PingAnswer { ts: clock::now_ms() });
                }
                return Ok(());
            }
            _ => {}
        }
        let Some(client) = &session.client else {
            return Err(RtmError::new(ErrorCode::Unauthorized, "log in first: the first quest must be 'auth'"));
        };
        if &quest.method[..] == b"bye" {
            session.closing = true;
            if let Some(reply) = Self::reply(quest, out) {
                reply.ok(&Empty {});
            }
            return Ok(());
        }
        let Some(command) = ClientCommand::from_name(&quest.method) else {
            return Err(unknown_method(&quest.method));
        };
        let ctx = ClientContext {
            engine: &self.app.engine,
            limits: &self.app.config.limits,
            user: client.user,
            session: session.id,
            now_ms: clock::now_ms(),
        };
        match Self::reply(quest, out) {
            Some(reply) => command.execute(&ctx, &params, reply).await,
            None => command.execute(&ctx, &params, Discard).await,
        }
    }
}

impl Gate for ClientGate {
    async fn execute(
        &self,
        session: &mut Session,
        quest: &Quest,
        stopping: bool,
        out: &mut BytesMut,
    ) -> Result<(), RtmError> {
        let counted = Counted::start(&self.app.metrics);
        let result = match stopping {
            true => Err(stopping_error()),
            false => self.run(session, quest, out).await,
        };
        counted.finish(&self.app.metrics, Self::metric_slot(&quest.method), &result);
        result
    }

    fn closed(&self, session: &mut Session) {
        let Some(client) = session.client.take() else { return };
        let (user, now_ms) = (client.user, clock::now_ms());
        self.app.engine.events().user_presence(EventName::Logout, user.pid, user.uid, &client.endpoint, now_ms);
        let presence = self.app.engine.presence();
        let Some(generation) = presence.logout(client.user, client.session) else { return };
        // The user's last session: leave the client-entered rooms after the
        // grace, unless the user is back by then.
        let (engine, user, grace, stop) = (self.app.engine.clone(), client.user, self.grace, self.stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(grace) => {}
                _ = stop.cancelled() => return,
            }
            for rid in engine.presence().leave_if_still_offline(user, generation) {
                if let Err(e) = engine.leave_room(user, rid, clock::now_ms()).await {
                    warn!(pid = user.pid, uid = user.uid, rid, code = e.code.code(), ex = %e.ex, "leaving a room after the relogin grace failed");
                }
            }
        });
    }
}
