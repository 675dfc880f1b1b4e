//! `fanout --redis ADDR`: the same fan-out against Redis pub/sub, for a
//! side-by-side figure in one harness: one channel per room (`room:<rid>`),
//! every client but the senders subscribed to its room's channel on a
//! connection of its own, and the senders `PUBLISH`ing open-loop at the
//! same rate. A sender does not subscribe, so each message reaches its
//! room's members but the sender, as in RTM. The payload carries the
//! sender, a message number and its scheduled send time, so receipts are
//! checked (lost, duplicated) and timed the same way as the server's.
//!
//! Plain RESP2 on a TCP stream, written here: what a subscriber does is
//! two commands and one reply shape, and a client library would cost the
//! harness more per message than the server under test spends.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{room_of, FanoutPlan, FanoutReport, Received};

/// Appends a RESP command.
fn command(out: &mut BytesMut, parts: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
}

/// One RESP2 reply.
#[derive(Debug, PartialEq)]
enum Reply {
    Integer(i64),
    Error(String),
    /// An array of bulk strings (`subscribe` and `message` pushes).
    Strings(Vec<Vec<u8>>),
    Other,
}

/// Takes one complete reply from `buf`, if there is one.
fn take_reply(buf: &mut BytesMut) -> Result<Option<Reply>, String> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    fn number(bytes: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "bad RESP number".to_string())
    }
    let Some(&kind) = buf.first() else { return Ok(None) };
    let Some((head, mut at)) = line(buf, 1) else { return Ok(None) };
    let reply = match kind {
        b':' => Reply::Integer(number(head)?),
        b'-' => Reply::Error(String::from_utf8_lossy(head).into_owned()),
        b'+' => Reply::Other,
        b'*' => {
            let count = number(head)?;
            let mut parts = Vec::with_capacity(count.max(0) as usize);
            for _ in 0..count {
                let Some((part_head, next)) = line(buf, at) else { return Ok(None) };
                match part_head.first() {
                    Some(b'$') => {
                        let len = usize::try_from(number(&part_head[1..])?)
                            .map_err(|_| "a null bulk string where a channel or message was expected")?;
                        if buf.len() < next + len + 2 {
                            return Ok(None);
                        }
                        parts.push(buf[next..next + len].to_vec());
                        at = next + len + 2;
                    }
                    Some(b':') => {
                        parts.push(part_head[1..].to_vec());
                        at = next;
                    }
                    _ => return Err("unexpected RESP array element".into()),
                }
            }
            Reply::Strings(parts)
        }
        _ => return Err(format!("unexpected RESP reply type {:?}", kind as char)),
    };
    buf.advance(at);
    Ok(Some(reply))
}

/// Runs the plan's fan-out on Redis pub/sub at `addr`.
pub(super) async fn run(plan: FanoutPlan, addr: std::net::SocketAddr) -> Result<FanoutReport, String> {
    // Subscribe everyone first, a few hundred at a time.
    let connecting = Arc::new(Semaphore::new(256));
    let mut opening = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        let (uid, permit, rooms, sender) = (i as i64 + 1, connecting.clone(), plan.rooms, i < plan.senders);
        opening.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await;
            let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("redis: {e}"))?;
            let _ = stream.set_nodelay(true);
            let mut rbuf = BytesMut::with_capacity(64 * 1024);
            if !sender {
                let mut out = BytesMut::new();
                command(&mut out, &[b"SUBSCRIBE", format!("room:{}", room_of(uid, rooms)).as_bytes()]);
                stream.write_all(&out).await.map_err(|e| e.to_string())?;
                loop {
                    if let Some(reply) = take_reply(&mut rbuf)? {
                        match reply {
                            Reply::Strings(parts) if parts.first().is_some_and(|p| p == b"subscribe") => break,
                            other => return Err(format!("SUBSCRIBE answered {other:?}")),
                        }
                    }
                    if stream.read_buf(&mut rbuf).await.map_err(|e| e.to_string())? == 0 {
                        return Err("redis closed the connection".into());
                    }
                }
            }
            Ok::<_, String>((uid, stream, rbuf))
        }));
    }
    let mut clients = Vec::with_capacity(plan.clients);
    for open in opening {
        clients.push(open.await.map_err(|e| e.to_string())??);
    }
    let epoch = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for (i, (uid, stream, rbuf)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(drive(uid, stream, rbuf, super::sends(&plan, i), epoch, plan.duration)));
    }
    super::report(&plan, tasks, false, None).await
}

/// A subscriber counts what it receives; a sender publishes on a schedule.
async fn drive(
    uid: i64,
    mut stream: TcpStream,
    mut rbuf: BytesMut,
    sends: Option<(i64, Duration, Duration)>,
    epoch: Instant,
    duration: Duration,
) -> Received {
    let mut received = Received::new();
    let stop_sending = epoch + duration;
    let stop_reading = stop_sending + Duration::from_secs(2);
    let mut next_send = sends.map(|(_, phase, _)| epoch + phase);
    let mut mid = 0i64;
    // Messages published, answers not read yet (Redis answers in order).
    let mut pending = std::collections::VecDeque::new();
    let mut out = BytesMut::new();
    loop {
        let wake = match next_send {
            Some(at) if at < stop_sending => at,
            _ => stop_reading,
        };
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        tokio::select! {
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= stop_reading {
                    break;
                }
                if let (Some((rid, _, interval)), Some(at)) = (sends, next_send) {
                    let scheduled = at.duration_since(epoch).as_nanos() as u64;
                    mid += 1;
                    let payload = format!("{uid} {mid} {scheduled}");
                    command(&mut out, &[b"PUBLISH", format!("room:{rid}").as_bytes(), payload.as_bytes()]);
                    pending.push_back((rid, mid));
                    next_send = Some(at + interval);
                }
            }
        }
        loop {
            match take_reply(&mut rbuf) {
                Ok(Some(Reply::Integer(_))) => {
                    if let Some(sent) = pending.pop_front() {
                        received.sent.push(sent);
                    }
                }
                Ok(Some(Reply::Error(_))) => {
                    pending.pop_front();
                    received.send_errors += 1;
                }
                Ok(Some(Reply::Strings(parts))) if parts.len() == 3 && parts[0] == b"message" => {
                    take_message(&parts[2], epoch, &mut received);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return received,
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
    }
    received
}

fn take_message(payload: &[u8], epoch: Instant, received: &mut Received) {
    let text = String::from_utf8_lossy(payload);
    let mut fields = text.split(' ').map(|f| f.parse::<u64>().ok());
    let (Some(Some(from)), Some(Some(mid)), Some(Some(scheduled))) = (fields.next(), fields.next(), fields.next())
    else {
        return;
    };
    if !received.seen.insert((from as i64, mid as i64)) {
        received.duplicated += 1;
        return;
    }
    let now = epoch.elapsed().as_nanos() as u64;
    let _ = received.latency.record((now.saturating_sub(scheduled) / 1000).max(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_taken_whole_or_not_at_all() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"PUBLISH", b"room:1", b"7 1 99"]);
        assert_eq!(&out[..], b"*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom:1\r\n$6\r\n7 1 99\r\n");
        let message_len = 41;
        let push = b"*3\r\n$7\r\nmessage\r\n$6\r\nroom:1\r\n$6\r\n7 1 99\r\n:2\r\n-ERR no\r\n";
        for cut in 0..message_len {
            let mut partial = BytesMut::from(&push[..cut]);
            assert_eq!(take_reply(&mut partial).unwrap(), None, "cut at {cut}");
            assert_eq!(partial.len(), cut, "nothing taken from a partial reply");
        }
        let mut buf = BytesMut::from(&push[..]);
        let message = vec![b"message".to_vec(), b"room:1".to_vec(), b"7 1 99".to_vec()];
        assert_eq!(take_reply(&mut buf).unwrap(), Some(Reply::Strings(message)));
        assert_eq!(take_reply(&mut buf).unwrap(), Some(Reply::Integer(2)));
        assert_eq!(take_reply(&mut buf).unwrap(), Some(Reply::Error("ERR no".into())));
        assert_eq!(take_reply(&mut buf).unwrap(), None);
        // A subscribe confirmation has an integer element.
        let mut buf = BytesMut::from(&b"*3\r\n$9\r\nsubscribe\r\n$6\r\nroom:1\r\n:1\r\n"[..]);
        assert!(matches!(take_reply(&mut buf).unwrap(), Some(Reply::Strings(p)) if p[0] == b"subscribe"));
    }
}
