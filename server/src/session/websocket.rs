//! FPNN over WebSocket, as the RTM WebSocket SDK speaks it: the same FPNN
//! frames as TCP, carried in binary WebSocket messages, which the peer may
//! split or pack as it likes. [`WsBytes`] turns a WebSocket connection back
//! into the byte stream the pump reads (so a quest's path after its bytes
//! arrive is the same for both transports), and sends each batch the pump
//! writes as one binary message.
//!
//! Frames are `tungstenite`'s: pings are answered by it, its message and
//! frame caps bound what a peer can make us buffer. The server pings too
//! (`websocket.ping_secs`), so that proxies see traffic and a peer that
//! has gone silent is noticed: one that sends nothing at all (no pong, no
//! message) for two intervals is cut off.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A WebSocket connection as a byte stream.
pub(crate) struct WsBytes<S> {
    ws: WebSocketStream<S>,
    /// What is left of the last binary message read.
    unread: Bytes,
    /// Set once the peer closed (or sent something that is not FPNN).
    ended: bool,
    /// Why the server closes, for the close frame.
    close: super::CloseCode,
    /// The server's pings, when on.
    ping: Option<Pinger>,
    /// The peer went silent: this side ended the session (with `close`).
    silent: bool,
}

/// The server's side of WebSocket ping/pong.
struct Pinger {
    every: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// When the peer last sent anything (a pong, a message).
    last_heard: tokio::time::Instant,
    /// A ping is due to be written.
    to_send: bool,
    /// A written ping still being flushed.
    flushing: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> super::Transport for WsBytes<S> {
    fn closing(&mut self, why: super::CloseCode) {
        self.close = why;
    }

    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn ended_by_transport(&self) -> Option<super::CloseCode> {
        self.silent.then_some(self.close)
    }
}

/// The largest WebSocket message (and frame) a peer may send: the gate's
/// frame cap, plus a header's worth. Buffers start small: tungstenite's
/// default 128 KiB read buffer, allocated per connection, made an idle
/// session cost 141 KB (measured); the pump batches its own writes.
pub(crate) fn config(max_frame_len: usize) -> WebSocketConfig {
    let max = max_frame_len.saturating_add(64);
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// The read buffer of a WebSocket session (it grows for larger messages).
const READ_BUFFER: usize = 4096;

impl<S: AsyncRead + AsyncWrite + Unpin> WsBytes<S> {
    /// Wraps a stream whose upgrade handshake is done (server side); pings
    /// the peer every `ping_every` if given.
    pub(crate) async fn after_handshake(stream: S, max_frame_len: usize, ping_every: Option<Duration>) -> Self {
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config(max_frame_len))).await;
        let ping = ping_every.filter(|every| !every.is_zero()).map(|every| Pinger {
            every,
            timer: Box::pin(tokio::time::sleep(every)),
            last_heard: tokio::time::Instant::now(),
            to_send: false,
            flushing: false,
        });
        Self { ws, unread: Bytes::new(), ended: false, close: super::CloseCode::NORMAL, ping, silent: false }
    }

    /// Pings when due and writes the ping; whether the peer has been
    /// silent for two intervals (the caller closes only once nothing it
    /// sent is waiting to be read: a session busy elsewhere may not have
    /// read its pong yet).
    fn poll_ping(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let Some(ping) = self.ping.as_mut() else { return Ok(false) };
        while ping.timer.as_mut().poll(cx).is_ready() {
            ping.to_send = true;
            let next = tokio::time::Instant::now() + ping.every;
            ping.timer.as_mut().reset(next);
        }
        let silent = ping.last_heard.elapsed() >= ping.every * 2;
        if ping.to_send {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    Pin::new(&mut self.ws)
                        .start_send(Message::Ping(Bytes::from_static(b"rtm")))
                        .map_err(io::Error::other)?;
                    ping.to_send = false;
                    ping.flushing = true;
                }
                Poll::Ready(Err(e)) => return Err(io::Error::other(e)),
                Poll::Pending => {}
            }
        }
        if ping.flushing {
            if let Poll::Ready(flushed) = Pin::new(&mut self.ws).poll_flush(cx) {
                flushed.map_err(io::Error::other)?;
                ping.flushing = false;
            }
        }
        Ok(silent)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.remaining());
                buf.put_slice(&self.unread[..n]);
                self.unread.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.ended {
                return Poll::Ready(Ok(()));
            }
            let silent = match self.poll_ping(cx) {
                Ok(silent) => silent,
                Err(e) => {
                    self.ended = true;
                    return Poll::Ready(Err(e));
                }
            };
            let next = match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(next) => next,
                Poll::Pending if silent => {
                    self.ended = true;
                    self.silent = true;
                    self.close = super::CloseCode::NO_PONG;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer answered no WebSocket ping and sent nothing for two intervals",
                    )));
                }
                Poll::Pending => return Poll::Pending,
            };
            if let (Some(ping), Some(Ok(_))) = (self.ping.as_mut(), &next) {
                ping.last_heard = tokio::time::Instant::now();
            }
            match next {
                Some(Ok(Message::Binary(bytes))) => self.unread = bytes,
                // Answered (pings) or ignored: not part of the stream.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    self.ended = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message: FPNN travels in binary messages",
                    )));
                }
                // The peer closed: end of stream (tungstenite answers the close).
                Some(Ok(Message::Close(_))) | None => {
                    self.ended = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Poll::Ready(Err(io::Error::other(e)));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let ws = Pin::new(&mut self.ws);
        ready!(ws.poll_ready(cx)).map_err(io::Error::other)?;
        // The pump writes a whole batch of frames at once: one message.
        Pin::new(&mut self.ws).start_send(Message::Binary(Bytes::copy_from_slice(buf))).map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A close frame first, so the browser sees why, then the socket.
        let ws = Pin::new(&mut self.ws);
        if ready!(ws.poll_ready(cx)).is_ok() {
            let why = self.close;
            let close = CloseFrame { code: CloseCode::from(why.code), reason: why.reason.into() };
            let _ = Pin::new(&mut self.ws).start_send(Message::Close(Some(close)));
        }
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            // Already closed by the peer: nothing left to do.
            Err(_) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair() -> (WsBytes<tokio::io::DuplexStream>, WebSocketStream<tokio::io::DuplexStream>) {
        let (server, client) = tokio::io::duplex(1 << 16);
        let server = WsBytes::after_handshake(server, 1024, None).await;
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (server, client)
    }

    #[tokio::test]
    async fn the_server_pings_and_cuts_off_a_silent_peer() {
        let every = Duration::from_millis(50);
        let (server, client) = tokio::io::duplex(1 << 16);
        let mut server = WsBytes::after_handshake(server, 1024, Some(every)).await;
        let mut client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // A peer that reads (and so answers pings) stays.
        let reader = tokio::spawn(async move {
            let mut pings = 0;
            let _ = tokio::time::timeout(every * 8, async {
                while let Some(message) = client.next().await {
                    pings += i32::from(matches!(message, Ok(Message::Ping(_))));
                }
            })
            .await;
            (client, pings)
        });
        let mut byte = [0; 1];
        let stayed = tokio::time::timeout(every * 6, server.read(&mut byte)).await;
        assert!(stayed.is_err(), "still open after six intervals, the peer answering");
        let (client, pings) = reader.await.unwrap();
        assert!(pings >= 4, "pinged every interval: {pings}");
        // One that stops reading answers no ping: cut off within two intervals or so.
        let started = tokio::time::Instant::now();
        let err = server.read(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < every * 4, "{:?}", started.elapsed());
        assert_eq!(server.close.code, 4004);
        drop(client);
    }

    #[tokio::test]
    async fn messages_are_one_byte_stream_however_they_are_cut() {
        let (mut server, mut client) = pair().await;
        for piece in [&b"FPNN"[..], b"\x01\x80", b"\x01\x04abcdef", b""] {
            client.send(Message::Binary(Bytes::copy_from_slice(piece))).await.unwrap();
        }
        client.send(Message::Ping(Bytes::from_static(b"p"))).await.unwrap();
        client.send(Message::Binary(Bytes::from_static(b"gh"))).await.unwrap();
        let mut read = vec![0; 16];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"FPNN\x01\x80\x01\x04abcdefgh");
        // What the server writes arrives as binary messages; the ping was answered.
        server.write_all(b"answer").await.unwrap();
        server.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.push(client.next().await.unwrap().unwrap());
        }
        assert_eq!(got, vec![Message::Pong(Bytes::from_static(b"p")), Message::Binary(Bytes::from_static(b"answer"))]);
        client.close(None).await.unwrap();
        assert_eq!(server.read(&mut read).await.unwrap(), 0, "a close ends the stream");
    }

    #[tokio::test]
    async fn text_and_oversized_messages_end_the_stream_with_an_error() {
        let (mut server, mut client) = pair().await;
        client.send(Message::text("{\"not\":\"fpnn\"}")).await.unwrap();
        let err = server.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let (mut server, mut client) = pair().await;
        client.send(Message::Binary(Bytes::from(vec![0; 4096]))).await.unwrap();
        assert!(server.read(&mut [0; 8]).await.is_err(), "over the frame cap");
    }
}
