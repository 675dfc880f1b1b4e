//! FPNN `*key` encryption on the client's side: the key exchange on a new
//! TCP connection, after which the connection runs on an
//! [`EncryptedStream`] (see [`rtm_protocol::encryption`]).

use std::time::Duration;

use rtm_protocol::encryption::{Bits, EncryptedStream, Mode, PublicKey};
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

    /// Runs the exchange on a fresh connection, within `timeout`.
    pub(crate) async fn exchange(
        &self,
        stream: TcpStream,
        max_frame_len: usize,
        timeout: Duration,
    ) -> Result<EncryptedStream<TcpStream>, Error> {
        let exchange = EncryptedStream::connect(stream, &self.server_key, self.mode, self.bits, max_frame_len);
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(encrypted)) => Ok(encrypted),
            Ok(Err(e)) => Err(Error::connection(format!("*key exchange failed: {e}")).with_source(e)),
            Err(_) => Err(Error::connection(format!("*key exchange timed out after {timeout:?}"))),
        }
    }
}
