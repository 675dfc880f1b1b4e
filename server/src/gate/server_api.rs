//! The server-API gate: backends call room methods, each quest signed.

use std::sync::Arc;

use bytes::BytesMut;
use rtm_protocol::methods::AuthRef;
use rtm_protocol::{payload, Quest};

use super::{stopping_error, unknown_method, AnswerTo, Counted, Discard};
use crate::app::App;
use crate::auth::{Authenticator, QuestToCheck};
use crate::clock;
use crate::cmd::{CmdContext, Command};
use crate::error::RtmError;
use crate::session::{Gate, Session};

/// The RTM server API: the room methods of `cmd/`, per-quest signatures.
pub(crate) struct ServerGate {
    app: Arc<App>,
    auth: Authenticator,
}

impl ServerGate {
    /// How many methods the gate has (metric slots before the client gate's).
    pub(crate) const METHODS: usize = Command::ALL.len();

    pub(crate) fn new(app: Arc<App>) -> Self {
        let auth = Authenticator::new(&app.config);
        Self { app, auth }
    }

    /// The gate's method names, indexed as its metrics count them.
    pub(crate) fn method_names() -> impl Iterator<Item = String> {
        Command::ALL.iter().map(|c| c.name().to_owned())
    }

    /// Forgets replay-cache entries older than the time window.
    pub(crate) fn sweep(&self, now_secs: i64) {
        self.auth.sweep(now_secs);
    }

    async fn run(
        &self,
        session: &mut Session,
        command: Command,
        quest: &Quest,
        out: &mut BytesMut,
    ) -> Result<(), RtmError> {
        let params = payload::parse(quest.encoding, &quest.payload)?;
        let now_ms = clock::now_ms();
        let pid = if command.needs_auth() {
            let checked = AuthRef::from_value(&params).map_err(RtmError::from).and_then(|auth| {
                self.auth.check(&QuestToCheck {
                    auth: &auth,
                    method: command.name(),
                    payload: &quest.payload,
                    // Replay detection only needs to tell live connections apart.
                    connection: session.id as u32,
                    now_secs: now_ms.div_euclid(1000),
                })?;
                Ok(auth)
            });
            let auth = checked.inspect_err(|e| self.app.metrics.auth_failure(e.code))?;
            session.authenticated(auth.pid);
            auth.pid
        } else {
            0
        };
        let ctx = CmdContext {
            engine: &self.app.engine,
            tokens: &self.app.tokens,
            recordings: &self.app.recordings,
            limits: &self.app.config.limits,
            pid,
            now_ms,
            session: Some(session),
            encoding: quest.encoding,
        };
        match quest.seq {
            Some(seq) => {
                let reply = AnswerTo { out, version: quest.version, encoding: quest.encoding, seq };
                command.execute(&ctx, &params, reply).await
            }
            None => command.execute(&ctx, &params, Discard).await,
        }
    }
}

impl Gate for ServerGate {
    async fn execute(
        &self,
        session: &mut Session,
        quest: &Quest,
        stopping: bool,
        out: &mut BytesMut,
    ) -> Result<(), RtmError> {
        let command = Command::from_name(&quest.method);
        let counted = Counted::start(&self.app.metrics);
        let result = match command {
            _ if stopping => Err(stopping_error()),
            None => Err(unknown_method(&quest.method)),
            Some(command) => self.run(session, command, quest, out).await,
        };
        counted.finish(&self.app.metrics, command.map(|c| c as usize), &result);
        result
    }
}
