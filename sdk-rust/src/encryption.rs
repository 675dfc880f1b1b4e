//! FPNN `*key` encryption on the client's side: the key exchange on a new
//! TCP connection, after which the connection runs on an
//! [`EncryptedStream`] (see [`rtm_protocol::encryption`]).

use std::time::Duration;

use bytes::BytesMut;
use rtm_protocol::encryption::{
    Bits, EncryptedStream, KeyExchange, Mode, PrivateKey, PublicKey, SessionKeys, KEY_METHOD,
};
use rtm_protocol::{write_quest, Encoding, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// How a client encrypts its connections.
#[derive(Clone, Debug)]
pub(crate) struct EncryptionSettings {
    server_key: PublicKey,
    mode: Mode,
    bits: Bits,
}

impl EncryptionSettings {
    /// The server's public key in PEM (or DER), as `rtm-server keygen` wrote it.
    pub(crate) fn new(public_key: &[u8], mode: Mode, bits: Bits) -> Result<Self, Error> {
        let server_key = PublicKey::from_pem_or_der(public_key).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(Self { server_key, mode, bits })
    }

    /// Runs the exchange on a fresh connection, within `timeout`: a new
    /// ephemeral key, `*key` in plain text, then the answer, already
    /// encrypted.
    pub(crate) async fn exchange(
        &self,
        mut stream: TcpStream,
        max_frame_len: usize,
        timeout: Duration,
    ) -> Result<EncryptedStream<TcpStream>, Error> {
        let ephemeral = PrivateKey::generate(self.server_key.curve(), &mut rand_core::OsRng);
        let secret = ephemeral.agree(&self.server_key.to_xy()).map_err(|e| Error::invalid(e.to_string()))?;
        let keys = SessionKeys::derive(&secret, self.bits);
        let quest = KeyExchange { public_key: ephemeral.public_key().to_xy(), mode: self.mode, bits: self.bits };
        let mut frame = BytesMut::new();
        write_quest(&mut frame, Encoding::MsgPack, Some(1), KEY_METHOD, &quest)
            .map_err(|e| Error::invalid(format!("cannot encode *key: {e}")))?;
        let exchange = async {
            stream.write_all(&frame).await?;
            let mut encrypted = EncryptedStream::new(stream, &keys, self.mode, max_frame_len, &[])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut read = BytesMut::with_capacity(256);
            loop {
                match Frame::decode(&mut read, max_frame_len) {
                    Ok(Some(Frame::Answer(answer))) if answer.seq == 1 && answer.status == 0 => {
                        // The server sends nothing else before its answer.
                        return Ok((encrypted, read));
                    }
                    Ok(Some(_)) | Err(_) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "the answer to *key did not decrypt to a success (is the public key the server's?)",
                        ))
                    }
                    Ok(None) => {}
                }
                if encrypted.read_buf(&mut read).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection during the key exchange \
                         (is ecdh configured on that gate, with this key's curve?)",
                    ));
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((encrypted, rest))) if rest.is_empty() => Ok(encrypted),
            Ok(Ok(_)) => Err(Error::connection("the server sent more than the *key answer")),
            Ok(Err(e)) => Err(Error::connection(format!("*key exchange failed: {e}")).with_source(e)),
            Err(_) => Err(Error::connection(format!("*key exchange timed out after {timeout:?}"))),
        }
    }
}
