//! Server-API authentication: project lookup, the signature, the time
//! window, the per-project rate limit and replay detection, in that order.
//!
//! The checks run in an order that never lets an unsigned quest cost a
//! project anything: a bad signature is refused before it can use up rate
//! limit tokens or replay-cache space.

mod rate_limit;
mod replay;
mod tokens;

pub(crate) use tokens::{constant_time_eq, Tokens};

use std::collections::HashMap;

use rtm_protocol::methods::AuthRef;
use rtm_protocol::sign::verify_sign;
use rtm_protocol::ErrorCode;

use crate::config::Config;
use crate::error::RtmError;
pub(crate) use rate_limit::RateLimiter;
use replay::ReplayCache;
use replay::Verdict;

struct Project {
    secret: String,
    limiter: Option<RateLimiter>,
}

/// Everything needed to authenticate quests.
pub(crate) struct Authenticator {
    projects: HashMap<i64, Project>,
    window_secs: u64,
    replay: ReplayCache,
}

/// One quest, as the authenticator sees it.
pub(crate) struct QuestToCheck<'a> {
    pub(crate) auth: &'a AuthRef<'a>,
    pub(crate) method: &'a str,
    pub(crate) payload: &'a [u8],
    pub(crate) connection: u32,
    pub(crate) now_secs: i64,
}

impl Authenticator {
    pub(crate) fn new(config: &Config) -> Self {
        let rate = &config.rate_limit;
        let projects = config
            .projects
            .iter()
            .map(|p| {
                let limiter =
                    (rate.quests_per_second > 0).then(|| RateLimiter::new(rate.quests_per_second, rate.burst));
                (p.pid, Project { secret: p.secret.clone(), limiter })
            })
            .collect();
        Self {
            projects,
            window_secs: config.auth.time_window_secs,
            replay: ReplayCache::new(config.auth.time_window_secs, config.auth.replay_cache_entries),
        }
    }

    /// Authenticates a quest; `Ok` means it may be executed for `auth.pid`.
    pub(crate) fn check(&self, quest: &QuestToCheck<'_>) -> Result<(), RtmError> {
        let auth = quest.auth;
        let project = self.projects.get(&auth.pid);
        // Verify against some secret even for an unknown pid, so that the
        // time taken does not reveal which pids exist.
        let secret = project.map_or("", |p| p.secret.as_str());
        let signed = verify_sign(auth.pid, secret, auth.salt, quest.method, auth.ts, auth.sign);
        let Some(project) = project.filter(|_| signed) else {
            return Err(RtmError::new(ErrorCode::InvalidPidOrSign, "invalid pid or sign"));
        };
        let skew = (auth.ts - quest.now_secs).unsigned_abs();
        if skew > self.window_secs {
            return Err(RtmError::new(
                ErrorCode::InvalidServerTime,
                format!("ts {} is {skew} s away from the server time {}", auth.ts, quest.now_secs),
            ));
        }
        if let Some(limiter) = &project.limiter {
            if !limiter.try_acquire() {
                return Err(RtmError::new(ErrorCode::FrequencyLimited, "project rate limit exceeded"));
            }
        }
        let digest = self.replay.digest(quest.method.as_bytes(), quest.payload);
        match self.replay.check(auth.ts, quest.now_secs, digest, quest.connection) {
            Verdict::Fresh => Ok(()),
            Verdict::Replay => {
                Err(RtmError::new(ErrorCode::SameSign, "this signed quest was already received on another connection"))
            }
            Verdict::OutsideWindow => Err(RtmError::new(
                ErrorCode::InvalidServerTime,
                format!("ts {} is older than the replay cache currently covers; sign with the current time", auth.ts),
            )),
        }
    }

    /// Frees replay-cache seconds that have left the window.
    pub(crate) fn sweep(&self, now_secs: i64) {
        self.replay.sweep(now_secs);
    }
}
