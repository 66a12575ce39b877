//! A minimal Kafka client: one connection (TCP, or TLS over TCP), one request in flight,
//! versions negotiated through ApiVersions, then SASL when the listener asks for it
//! (`client_security`). It knows frames and versions, not topics: its callers (the admin
//! CLI's commands, the replica fetchers) build requests and read responses.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client_security::{ClientSasl, ClientSecurity};

/// A byte stream to a broker: TCP or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Largest response frame accepted (a Metadata answer for many thousands of partitions
/// fits comfortably).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why a request to another Kafka node failed. Messages name the address and the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no address to connect to")]
    NoAddress,
    #[error("cannot reach a broker at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("connection to {addr} failed during {api}: {reason}")]
    Connection {
        addr: String,
        api: String,
        reason: String,
    },
    #[error("unexpected answer from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{what} is not supported by the broker at {addr}: its ApiVersions does not list it")]
    Unsupported { addr: String, what: String },
    #[error(
        "TLS with {addr} failed: {reason} (check security.protocol and ssl.truststore.location)"
    )]
    Tls { addr: String, reason: String },
    #[error("this node's inter-broker client settings are unusable: {0}")]
    Security(String),
    #[error("SASL authentication with {addr} failed: {reason}")]
    Authentication { addr: String, reason: String },
}

pub struct Client {
    stream: Box<dyn Stream>,
    addr: String,
    /// api key -> (min, max) that the broker advertises.
    versions: HashMap<i16, (i16, i16)>,
    correlation_id: i32,
    timeout: Duration,
    client_id: &'static str,
}

impl Client {
    /// Connects to the first reachable address of a comma-separated bootstrap list and
    /// learns its API versions; `client_id` names the caller in request headers.
    pub async fn connect(
        bootstrap: &str,
        timeout: Duration,
        client_id: &'static str,
    ) -> Result<Client, ClientError> {
        Client::connect_secure(bootstrap, timeout, client_id, &ClientSecurity::default()).await
    }

    /// [`Client::connect`] to a listener of any security protocol.
    pub async fn connect_secure(
        bootstrap: &str,
        timeout: Duration,
        client_id: &'static str,
        security: &ClientSecurity,
    ) -> Result<Client, ClientError> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Client::connect_one(addr, timeout, client_id, security).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::NoAddress))
    }

    async fn connect_one(
        addr: &str,
        timeout: Duration,
        client_id: &'static str,
        security: &ClientSecurity,
    ) -> Result<Client, ClientError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ClientError::Unreachable {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Unreachable {
                    addr: addr.to_string(),
                    reason: format!("no connection within {} ms", timeout.as_millis()),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            Some(tls) => Box::new(tls_connect(addr, stream, tls.clone(), timeout).await?),
            None => Box::new(stream),
        };
        let mut client = Client {
            stream,
            addr: addr.to_string(),
            versions: HashMap::new(),
            correlation_id: 0,
            timeout,
            client_id,
        };
        client.negotiate().await?;
        if let Some(sasl) = &security.sasl {
            client.authenticate(sasl).await?;
        }
        Ok(client)
    }

    /// SaslHandshake v1, then SaslAuthenticate until the mechanism is done.
    async fn authenticate(&mut self, sasl: &ClientSasl) -> Result<(), ClientError> {
        use kafka_protocol::messages::SaslHandshakeRequest;
        let mechanism = match sasl {
            ClientSasl::Plain { .. } => "PLAIN",
            ClientSasl::Scram { mechanism, .. } => mechanism.name(),
        };
        let addr = self.addr.clone();
        let fail = |reason: String| ClientError::Authentication {
            addr: addr.clone(),
            reason,
        };
        let resp = self
            .send_version(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
                1,
            )
            .await?;
        if resp.error_code != 0 {
            let enabled: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(fail(format!(
                "the listener does not take {mechanism} (error code {}; it takes {})",
                resp.error_code,
                enabled.join(", ")
            )));
        }
        match sasl {
            ClientSasl::Plain { username, password } => {
                self.sasl_step(crate::sasl::plain::encode(username, password))
                    .await?;
                Ok(())
            }
            ClientSasl::Scram {
                mechanism,
                username,
                password,
            } => {
                let mut scram = crate::sasl::scram::ScramClient::new(
                    *mechanism,
                    username,
                    password,
                    super::client_security::nonce(),
                );
                let first = self.sasl_step(scram.client_first()).await?;
                let fin = scram
                    .client_final(&first)
                    .map_err(|e| fail(e.to_string()))?;
                let last = self.sasl_step(fin).await?;
                scram
                    .verify_server_final(&last)
                    .map_err(|e| fail(format!("the broker's SCRAM signature is wrong: {e}")))
            }
        }
    }

    /// One SaslAuthenticate round trip; the server's bytes, or its error.
    async fn sasl_step(&mut self, bytes: Vec<u8>) -> Result<bytes::Bytes, ClientError> {
        use kafka_protocol::messages::SaslAuthenticateRequest;
        let version = self.version_of::<SaslAuthenticateRequest>().unwrap_or(0);
        let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
        let r = self.send_version(req, version).await?;
        if r.error_code != 0 {
            let msg = r
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(ClientError::Authentication {
                addr: self.addr.clone(),
                reason: format!("error code {}: {msg}", r.error_code),
            });
        }
        Ok(r.auth_bytes)
    }

    /// ApiVersions v3 (flexible); a broker that refuses it answers in v0 with its table,
    /// and we retry in v0.
    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(self.client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp = self.send_version(req.clone(), 3).await?;
        if resp.error_code != 0 {
            resp = self.send_version(req, 0).await?;
        }
        if resp.error_code != 0 {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                reason: format!("ApiVersions failed with error code {}", resp.error_code),
            });
        }
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` both sides speak, if any.
    pub fn version_of<R: Request>(&self) -> Option<i16> {
        let &(bmin, bmax) = self.versions.get(&R::KEY)?;
        let max = bmax.min(R::VERSIONS.max);
        (max >= bmin.max(R::VERSIONS.min)).then_some(max)
    }

    /// Whether the broker serves `key` at all (ApiVersions).
    pub fn serves(&self, key: ApiKey) -> bool {
        self.versions.contains_key(&(key as i16))
    }

    /// The broker's advertised maximum version of `key`.
    pub fn max_version(&self, key: ApiKey) -> Option<i16> {
        self.versions.get(&(key as i16)).map(|v| v.1)
    }

    /// Sends `req` at the highest common version and waits for its response.
    pub async fn send<R: Request>(&mut self, req: R) -> Result<R::Response, ClientError> {
        let version = self
            .version_of::<R>()
            .ok_or_else(|| ClientError::Unsupported {
                addr: self.addr.clone(),
                what: api_name::<R>(),
            })?;
        self.send_version(req, version).await
    }

    /// Like `send`, but at most version `cap` (for requests whose newer versions change
    /// shape in ways the caller does not fill in).
    pub async fn send_capped<R: Request>(
        &mut self,
        req: R,
        cap: i16,
    ) -> Result<R::Response, ClientError> {
        match self.version_of::<R>() {
            Some(v) if v.min(cap) >= self.versions.get(&R::KEY).map_or(0, |r| r.0) => {
                self.send_version(req, v.min(cap)).await
            }
            _ => Err(ClientError::Unsupported {
                addr: self.addr.clone(),
                what: api_name::<R>(),
            }),
        }
    }

    async fn send_version<R: Request>(
        &mut self,
        req: R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = api_name::<R>();
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|_| req.encode(&mut buf, version))
            .map_err(|e| self.protocol(format!("cannot encode {api} v{version}: {e}")))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());

        let exchange = async {
            self.stream.write_all(&buf).await?;
            let size = self.stream.read_i32().await?;
            if size < 0 || size as usize > MAX_RESPONSE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame of {size} bytes"),
                ));
            }
            let mut body = vec![0; size as usize];
            self.stream.read_exact(&mut body).await?;
            Ok(body)
        };
        let body = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return Err(ClientError::Connection {
                    addr: self.addr.clone(),
                    api: api.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(ClientError::Connection {
                    addr: self.addr.clone(),
                    api: api.clone(),
                    reason: format!("no answer within {} ms", self.timeout.as_millis()),
                })
            }
        };
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| self.protocol(format!("bad {api} response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(self.protocol(format!(
                "{api} response has correlation id {} (expected {})",
                header.correlation_id, self.correlation_id
            )));
        }
        let resp = R::Response::decode(&mut body, version)
            .map_err(|e| self.protocol(format!("bad {api} v{version} response: {e}")))?;
        if body.has_remaining() {
            tracing::debug!(api = %api, left = body.remaining(), "trailing response bytes");
        }
        Ok(resp)
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        }
    }
}

async fn tls_connect(
    addr: &str,
    tcp: TcpStream,
    config: std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    let tls_err = |reason: String| ClientError::Tls {
        addr: addr.to_string(),
        reason,
    };
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| tls_err(format!("{host} is not a valid server name: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(tls_err(e.to_string())),
        Err(_) => Err(tls_err(format!(
            "no TLS handshake within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// The API's name for messages ("CreateTopics"), or its number if the crate does not
/// know it.
fn api_name<R: Request>() -> String {
    match ApiKey::try_from(R::KEY) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("api key {}", R::KEY),
    }
}
