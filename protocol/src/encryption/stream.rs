//! [`EncryptedStream`]: an encrypted connection as a tokio byte stream, so
//! that whatever reads and writes FPNN frames runs on it unchanged.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{
    Bits, CipherError, Decryptor, Encryptor, KeyExchange, Mode, PrivateKey, PublicKey, SessionKeys, KEY_METHOD,
};
use crate::frame::{write_quest, Frame};
use crate::Encoding;

/// Buffers grown past this by a burst are released once empty.
const SHRINK_ABOVE: usize = 64 * 1024;

/// A byte stream whose bytes are encrypted on the wire: reads give the
/// plain text, writes take plain text. In package mode writes must be whole
/// FPNN frames (a frame split across writes goes out once complete).
///
/// Written bytes may wait in the stream until the next write or flush, as
/// with TLS: flush after writing.
pub struct EncryptedStream<S> {
    inner: S,
    encryptor: Encryptor,
    decryptor: Decryptor,
    stream_mode: bool,
    max_packet_len: usize,
    /// Package mode: ciphertext not yet a whole packet.
    raw_in: BytesMut,
    /// Package mode: decrypted, not yet read.
    plain_in: BytesMut,
    /// Ciphertext not yet written.
    raw_out: BytesMut,
}

impl<S> EncryptedStream<S> {
    /// Wraps `inner` once the key exchange is done. `already_read` is
    /// ciphertext read from `inner` past the `*key` quest. A package longer
    /// than `max_packet_len` is an error.
    pub fn new(
        inner: S,
        keys: &SessionKeys,
        mode: Mode,
        max_packet_len: usize,
        already_read: &[u8],
    ) -> Result<Self, CipherError> {
        let mut stream = Self {
            inner,
            encryptor: Encryptor::new(keys, mode),
            decryptor: Decryptor::new(keys, mode),
            stream_mode: mode == Mode::Stream,
            max_packet_len,
            raw_in: BytesMut::new(),
            plain_in: BytesMut::new(),
            raw_out: BytesMut::new(),
        };
        let mut raw = BytesMut::from(already_read);
        stream.decryptor.decrypt(&mut raw, &mut stream.plain_in, max_packet_len)?;
        stream.raw_in = raw;
        Ok(stream)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The underlying stream, mutably (writing to it directly breaks the
    /// cipher stream).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> EncryptedStream<S> {
    /// The client's side of the handshake on a fresh connection: a new
    /// ephemeral key on the server key's curve, `*key` in plain text (seq
    /// 1), then its answer, which comes encrypted. Fails if the server
    /// closes (no `*key` on that gate, or another curve) or if the answer
    /// does not decrypt to a success (another key).
    pub async fn connect(
        mut inner: S,
        server_key: &PublicKey,
        mode: Mode,
        bits: Bits,
        max_packet_len: usize,
    ) -> io::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let invalid_data = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        let ephemeral = PrivateKey::generate(server_key.curve(), &mut rand_core::OsRng);
        let secret = ephemeral.agree(&server_key.to_xy()).map_err(|e| invalid_data(e.to_string()))?;
        let keys = SessionKeys::derive(&secret, bits);
        let quest = KeyExchange { public_key: ephemeral.public_key().to_xy(), mode, bits };
        let mut frame = BytesMut::new();
        write_quest(&mut frame, Encoding::MsgPack, Some(1), KEY_METHOD, &quest)
            .map_err(|e| invalid_data(format!("cannot encode *key: {e}")))?;
        inner.write_all(&frame).await?;
        let mut stream = Self::new(inner, &keys, mode, max_packet_len, &[]).map_err(|e| invalid_data(e.to_string()))?;
        let mut read = BytesMut::with_capacity(256);
        loop {
            match Frame::decode(&mut read, max_packet_len) {
                // The server sends nothing before this answer.
                Ok(Some(Frame::Answer(answer))) if answer.seq == 1 && answer.status == 0 && read.is_empty() => {
                    return Ok(stream);
                }
                Ok(Some(_)) | Err(_) => {
                    return Err(invalid_data(
                        "the answer to *key did not decrypt to a success (is the public key the server's?)".into(),
                    ))
                }
                Ok(None) => {}
            }
            if stream.read_buf(&mut read).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection during the key exchange \
                     (is ecdh configured on that gate, with this key's curve?)",
                ));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> EncryptedStream<S> {
    /// Writes queued ciphertext until none is left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.raw_out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.raw_out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.raw_out.advance(n);
        }
        if self.raw_out.capacity() > SHRINK_ABOVE {
            self.raw_out = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

fn invalid(e: CipherError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: AsyncRead + Unpin> AsyncRead for EncryptedStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.plain_in.is_empty() {
                let n = this.plain_in.len().min(buf.remaining());
                buf.put_slice(&this.plain_in[..n]);
                this.plain_in.advance(n);
                if this.plain_in.is_empty() && this.plain_in.capacity() > SHRINK_ABOVE {
                    this.plain_in = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            if buf.filled().len() == before {
                // End of stream; a partial package left over is dropped,
                // as a peer that closes mid-frame loses that frame.
                return Poll::Ready(Ok(()));
            }
            if this.stream_mode {
                // Decrypted in place: no copy.
                this.decryptor.decrypt_stream(&mut buf.filled_mut()[before..]);
                return Poll::Ready(Ok(()));
            }
            // Package mode: ciphertext goes through `raw_in` until whole.
            this.raw_in.extend_from_slice(&buf.filled()[before..]);
            buf.set_filled(before);
            this.decryptor.decrypt(&mut this.raw_in, &mut this.plain_in, this.max_packet_len).map_err(invalid)?;
            if this.raw_in.is_empty() && this.raw_in.capacity() > SHRINK_ABOVE {
                this.raw_in = BytesMut::new();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for EncryptedStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // At most one batch of ciphertext waits: backpressure from the socket.
        ready!(this.poll_drain(cx))?;
        this.encryptor.encrypt(data, &mut this.raw_out).map_err(invalid)?;
        // Start writing now; what the socket does not take goes out on the
        // next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.encryptor.pending() > 0 {
            // Package mode sends whole frames only: a flush mid-frame would
            // otherwise report written what never left.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "package mode: flush in the middle of an FPNN frame",
            )));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::encryption::Bits;
    use crate::frame::write_quest;
    use crate::{Encoding, Frame};

    #[test]
    fn frames_cross_an_encrypted_pipe_in_both_modes() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            for mode in [Mode::Package, Mode::Stream] {
                let keys = SessionKeys::derive(&[3u8; 28], Bits::Aes256);
                let (a, b) = tokio::io::duplex(64);
                let mut client = EncryptedStream::new(a, &keys, mode, 1 << 20, &[]).unwrap();
                let mut server = EncryptedStream::new(b, &keys, mode, 1 << 20, &[]).unwrap();
                let mut frames = BytesMut::new();
                for seq in 1..=20u32 {
                    let payload = serde_json::json!({ "seq": seq, "text": "y".repeat(seq as usize * 13) });
                    write_quest(&mut frames, Encoding::MsgPack, Some(seq), "sendroommsg", &payload).unwrap();
                }
                let expected = frames.clone();
                let writer = tokio::spawn(async move {
                    client.write_all(&frames).await.unwrap();
                    client.flush().await.unwrap();
                    client
                });
                let mut got = BytesMut::new();
                while got.len() < expected.len() {
                    let mut chunk = [0u8; 37];
                    let n = server.read(&mut chunk).await.unwrap();
                    assert_ne!(n, 0);
                    got.extend_from_slice(&chunk[..n]);
                }
                assert_eq!(got, expected, "{mode:?}");
                let mut count = 0;
                while let Some(Frame::Quest(_)) = Frame::decode(&mut got, 1 << 20).unwrap() {
                    count += 1;
                }
                assert_eq!(count, 20);
                drop(writer.await.unwrap());
            }
        });
    }
}
