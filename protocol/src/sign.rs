//! The server-API signature.
//!
//! `sign = UPPER(HEX(MD5("{pid}:{secret}:{salt}:{cmd}:{ts}")))`, numbers in
//! decimal, `cmd` the FPNN method name of the quest. Every RTM server SDK
//! computes it this way.

use md5::{Digest, Md5};

/// Length of a signature: 32 uppercase hex characters.
pub const SIGN_LEN: usize = 32;

/// The expected signature of a quest, as 32 uppercase hex ASCII bytes.
pub fn server_sign(pid: i64, secret: &str, salt: i64, cmd: &str, ts: i64) -> [u8; SIGN_LEN] {
    let mut md5 = Md5::new();
    let mut digits = [0u8; 20];
    md5.update(decimal(pid, &mut digits));
    md5.update(b":");
    md5.update(secret.as_bytes());
    md5.update(b":");
    md5.update(decimal(salt, &mut digits));
    md5.update(b":");
    md5.update(cmd.as_bytes());
    md5.update(b":");
    md5.update(decimal(ts, &mut digits));
    let digest = md5.finalize();
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [0u8; SIGN_LEN];
    for (i, byte) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// Writes `n` in decimal into `buf` (core's formatter is several times
/// slower, and this runs for every quest).
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// Compares two byte strings in time that depends only on their lengths,
/// so a forger learns nothing from how long a rejection takes.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Checks a received signature against the expected one, in constant time.
/// Lower-case hex is accepted too: the hex digits carry the same digest.
pub fn verify_sign(pid: i64, secret: &str, salt: i64, cmd: &str, ts: i64, sign: &[u8]) -> bool {
    let expected = server_sign(pid, secret, salt, cmd, ts);
    let mut got = [0u8; SIGN_LEN];
    if sign.len() != SIGN_LEN {
        return false;
    }
    for (g, s) in got.iter_mut().zip(sign) {
        *g = s.to_ascii_uppercase();
    }
    constant_time_eq(&expected, &got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_python_sdk_example() {
        // Reference §1.3: pid=11000001, secret="test-secret-key", salt=123456789, ts=1700000000.
        let sign = server_sign(11000001, "test-secret-key", 123456789, "addroommember", 1700000000);
        assert_eq!(&sign, b"647C9CA29B55362273F0C9688B121AAC");
    }

    #[test]
    fn verify_accepts_the_right_sign_only() {
        let sign = server_sign(1, "s", 2, "cmd", 3);
        assert!(verify_sign(1, "s", 2, "cmd", 3, &sign));
        assert!(verify_sign(1, "s", 2, "cmd", 3, sign.to_ascii_lowercase().as_slice()));
        assert!(!verify_sign(1, "s", 2, "other", 3, &sign));
        assert!(!verify_sign(1, "t", 2, "cmd", 3, &sign));
        assert!(!verify_sign(1, "s", 2, "cmd", 3, &sign[..31]));
    }

    #[test]
    fn decimal_matches_display() {
        let mut buf = [0u8; 20];
        for n in [0, 7, -7, 10, 1_700_000_000, i64::MAX, i64::MIN, -1] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
