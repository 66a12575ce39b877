//! Mutual TLS for the Raft transport, when the controller listener's protocol is SSL.
//!
//! The broker builds both rustls configs from the controller listener's PEM files (this crate
//! reads no files): the server side requires a client certificate that chains to the cluster
//! CA (the listener's truststore), the client side presents the node's own certificate and
//! verifies the peer's against the same CA, host name included. A node without a certificate
//! from that CA therefore cannot open a connection, so it can neither vote, nor append
//! entries, nor forward proposals.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The two sides of the transport's TLS.
#[derive(Clone, Debug)]
pub struct TransportTls {
    /// Must verify client certificates (the caller builds it with a required client
    /// verifier).
    pub server: Arc<rustls::ServerConfig>,
    /// Presents this node's certificate and trusts the cluster CA.
    pub client: Arc<rustls::ClientConfig>,
}

/// How long a TLS handshake on the transport may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream the transport frames travel on: TCP, or TLS over TCP.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

/// One transport connection.
pub(crate) struct Conn(pub(crate) Box<dyn Stream>);

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Conn")
    }
}

/// The client side: `tcp` as is, or after a TLS handshake with the peer at `addr`
/// (`host:port`; the host is the name its certificate must carry).
pub(crate) async fn connect(
    tls: Option<&TransportTls>,
    addr: &str,
    tcp: TcpStream,
) -> std::io::Result<Conn> {
    let Some(tls) = tls else {
        return Ok(Conn(Box::new(tcp)));
    };
    let host = addr
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(addr)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    Ok(Conn(Box::new(stream)))
}

/// The server side: `tcp` as is, or after a TLS handshake that verified the client's
/// certificate.
pub(crate) async fn accept(tls: Option<&TransportTls>, tcp: TcpStream) -> std::io::Result<Conn> {
    let Some(tls) = tls else {
        return Ok(Conn(Box::new(tcp)));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    Ok(Conn(Box::new(stream)))
}
