//! Login tokens for the client gate.
//!
//! A token is issued by the server API (`gettoken`) and presented by a
//! client in `auth`. It is self-contained, so any node can check it without
//! a lookup:
//!
//! ```text
//! base64url( 1 | uid i64 | issued_ms i64 | expires_ms i64 | nonce u64 | mac[16] )
//! mac = HMAC-SHA256(key = the project's secret, "rtm-token-1" | pid | the fields before it), first 16 bytes
//! ```
//!
//! The project id is not in the token but is in the MAC, so a token of one
//! project is refused by another. The MAC is compared in constant time
//! (`ring::hmac::verify`). A token is reusable for reconnects until it
//! expires; `removetoken` revokes every token of a user issued until then
//! (a revocation time kept by the engine, so it is durable and shared).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const FORMAT: u8 = 1;
const DOMAIN: &[u8] = b"rtm-token-1";
const MAC_LEN: usize = 16;
const BODY_LEN: usize = 1 + 8 * 4;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenClaims {
    pub(crate) uid: i64,
    pub(crate) issued_ms: i64,
    pub(crate) expires_ms: i64,
}

/// Issues and checks tokens with one project's secret.
pub(crate) struct TokenKey {
    pid: i64,
    key: hmac::Key,
}

impl TokenKey {
    pub(crate) fn new(pid: i64, secret: &str) -> Self {
        Self { pid, key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()) }
    }

    fn sign(&self, body: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(DOMAIN);
        context.update(&self.pid.to_le_bytes());
        context.update(body);
        context.sign()
    }

    /// A token for `uid`, valid from `issued_ms` for `lifetime_ms`.
    pub(crate) fn issue(&self, uid: i64, issued_ms: i64, lifetime_ms: i64) -> String {
        let mut nonce = [0u8; 8];
        // The OS random source does not fail on supported platforms; a zero
        // nonce would still give a valid, unforgeable token.
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut bytes = Vec::with_capacity(BODY_LEN + MAC_LEN);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&uid.to_le_bytes());
        bytes.extend_from_slice(&issued_ms.to_le_bytes());
        bytes.extend_from_slice(&issued_ms.saturating_add(lifetime_ms).to_le_bytes());
        bytes.extend_from_slice(&nonce);
        let tag = self.sign(&bytes);
        bytes.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What `token` says, if this project issued it unaltered. Expiry and
    /// revocation are the caller's to check.
    pub(crate) fn verify(&self, token: &str) -> Option<TokenClaims> {
        let bytes = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
        if bytes.len() != BODY_LEN + MAC_LEN || bytes[0] != FORMAT {
            return None;
        }
        let (body, mac) = bytes.split_at(BODY_LEN);
        // Constant time: compare the whole truncated tag, never byte by byte early.
        let expected = self.sign(body);
        if !constant_time_eq(&expected.as_ref()[..MAC_LEN], mac) {
            return None;
        }
        let field = |i: usize| i64::from_le_bytes(body[1 + 8 * i..9 + 8 * i].try_into().expect("8 bytes"));
        Some(TokenClaims { uid: field(0), issued_ms: field(1), expires_ms: field(2) })
    }
}

/// The token keys of every configured project, and the token lifetime.
pub(crate) struct Tokens {
    keys: std::collections::HashMap<i64, TokenKey>,
    lifetime_ms: i64,
}

impl Tokens {
    pub(crate) fn new(config: &crate::config::Config) -> Self {
        let keys = config.projects.iter().map(|p| (p.pid, TokenKey::new(p.pid, &p.secret))).collect();
        let lifetime_ms = i64::try_from(config.sessions.token_lifetime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self { keys, lifetime_ms }
    }

    /// A token for `uid` of `pid`, issued after the user's last revocation.
    pub(crate) fn issue(&self, pid: i64, uid: i64, now_ms: i64, revoked_at: Option<i64>) -> Option<String> {
        let issued_ms = revoked_at.map_or(now_ms, |at| now_ms.max(at.saturating_add(1)));
        Some(self.keys.get(&pid)?.issue(uid, issued_ms, self.lifetime_ms))
    }

    /// Whether `token` logs `uid` of `pid` in at `now_ms`: issued by this
    /// project for this user, unaltered, not expired, issued after the
    /// user's last revocation.
    pub(crate) fn accepts(&self, pid: i64, uid: i64, token: &str, now_ms: i64, revoked_at: Option<i64>) -> bool {
        let Some(claims) = self.keys.get(&pid).and_then(|key| key.verify(token)) else { return false };
        claims.uid == uid && now_ms < claims.expires_ms && revoked_at.is_none_or(|at| claims.issued_ms > at)
    }
}

/// Compares secrets without an early exit that would time the match.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_says_who_and_until_when() {
        let key = TokenKey::new(7, "secret");
        let token = key.issue(1001, 5_000, 60_000);
        assert!(token.len() >= 33, "long enough for the SDKs' optional IP scheme to leave it alone");
        assert_eq!(key.verify(&token), Some(TokenClaims { uid: 1001, issued_ms: 5_000, expires_ms: 65_000 }));
        assert_ne!(key.issue(1001, 5_000, 60_000), token, "a nonce makes each token new");
    }

    #[test]
    fn expiry_and_revocation_end_a_token() {
        let config = crate::config::Config::default();
        let tokens = Tokens::new(&config);
        let pid = config.projects[0].pid;
        let token = tokens.issue(pid, 5, 1_000, None).unwrap();
        assert!(tokens.accepts(pid, 5, &token, 2_000, None));
        assert!(!tokens.accepts(pid, 6, &token, 2_000, None), "another user");
        assert!(!tokens.accepts(pid, 5, &token, 1_000 + 604_800_000, None), "expired");
        assert!(!tokens.accepts(pid, 5, &token, 2_000, Some(1_000)), "revoked at its issue time");
        let after = tokens.issue(pid, 5, 1_000, Some(1_000)).unwrap();
        assert!(tokens.accepts(pid, 5, &after, 2_000, Some(1_000)), "issued after the revocation, same millisecond");
        assert!(tokens.issue(pid + 1, 5, 1_000, None).is_none(), "unknown project");
    }

    #[test]
    fn forged_altered_and_foreign_tokens_are_refused() {
        let key = TokenKey::new(7, "secret");
        let token = key.issue(1001, 5_000, 60_000);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[1] ^= 1; // another uid
        assert_eq!(key.verify(&URL_SAFE_NO_PAD.encode(&bytes)), None);
        assert_eq!(TokenKey::new(8, "secret").verify(&token), None, "another project");
        assert_eq!(TokenKey::new(7, "other").verify(&token), None, "another secret");
        assert_eq!(key.verify("not a token"), None);
        assert_eq!(key.verify(&token[..token.len() - 2]), None, "truncated");
        assert_eq!(key.verify(""), None);
    }
}
