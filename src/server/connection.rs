//! The connection loop, one per connection, generic over the byte stream: the read and
//! write halves of a plain TCP socket or of a TLS stream, so TLS costs no second copy of
//! the loop.
//!
//! Like Kafka, a connection has one request in progress at a time, so responses leave in
//! request order; clients pipeline by sending several requests before reading. Responses
//! are buffered and flushed when no further request is already buffered.
//!
//! On a SASL listener, [`ConnState`] holds the connection's `SaslSession`: SaslHandshake
//! and SaslAuthenticate go to `handlers::sasl`, which drives it; every other request must
//! be admitted by it (authenticated, session not expired) or the connection closes. Until
//! it is authenticated a connection lives at most `connection.authentication.timeout.ms`
//! and its frames are limited to `sasl.server.max.receive.size`. Any connection idle for
//! `connections.max.idle.ms` is closed.
//!
//! A Fetch answer may come as parts (`parts.rs`): encoded bytes, ranges of segment files
//! and the chunks of remote reads, written by `send.rs`. On a plaintext transport
//! ([`Transport::socket`]) the ranges go out with `sendfile(2)` after the buffered bytes
//! before them are flushed; SASL mechanisms here
//! (PLAIN, SCRAM, OAUTHBEARER) authenticate only and never wrap the stream, so
//! SASL_PLAINTEXT sends files too. TLS reads the ranges into memory (one copy, then
//! rustls encrypts into its own buffer).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use strata_config::SecurityConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use super::auth::session::SaslSession;
use super::auth::Principal;
use super::listener::ListenerRuntime;
use super::parts::{self, Part, Slices};
use super::send;
use super::{handlers, throttle, Ctx, Services};
use crate::protocol::{self, ProtocolError};
use crate::quota::Client;

/// What the connection knows about itself: where it comes from, on which listener, who it
/// is, and its SASL state.
pub struct ConnState<'a> {
    pub peer: SocketAddr,
    pub listener: &'a ListenerRuntime,
    /// `User:ANONYMOUS` until a client certificate or SASL names someone.
    pub principal: Principal,
    pub sasl: Option<SaslSession>,
    /// Until when an unauthenticated SASL connection may stay.
    auth_deadline: Option<Instant>,
    idle: Option<Duration>,
    pub failed_auth_delay: Duration,
    sasl_max_receive: usize,
    /// A client over its quota: nothing more is read from it until then (KIP-219).
    muted_until: Option<Instant>,
    /// `(client_software_name, client_software_version)` from ApiVersions v3+ (KIP-511).
    pub client_software: (String, String),
    /// Responses may carry file ranges: the transport is a plain TCP socket.
    zero_copy: bool,
}

impl<'a> ConnState<'a> {
    pub fn new(
        peer: SocketAddr,
        listener: &'a ListenerRuntime,
        security: &SecurityConfig,
    ) -> ConnState<'a> {
        let sasl = listener
            .sasl
            .as_ref()
            .map(|s| SaslSession::new(s.mechanisms.clone(), listener.max_reauth_ms));
        let auth_deadline = sasl.as_ref().map(|_| {
            Instant::now() + Duration::from_millis(security.authentication_timeout_ms.max(1) as u64)
        });
        ConnState {
            peer,
            listener,
            principal: Principal::anonymous(),
            sasl,
            auth_deadline,
            idle: (security.connections_max_idle_ms > 0)
                .then(|| Duration::from_millis(security.connections_max_idle_ms as u64)),
            failed_auth_delay: Duration::from_millis(
                security.failed_authentication_delay_ms.max(0) as u64,
            ),
            sasl_max_receive: security.sasl_max_receive_size.max(0) as usize,
            muted_until: None,
            client_software: Default::default(),
            zero_copy: false,
        }
    }

    /// A verified client certificate names the connection (SASL may rename it).
    pub fn set_tls_principal(&mut self, p: Principal) {
        self.principal = p;
    }

    /// SASL succeeded: the connection is `p` from now on.
    pub fn authenticated(&mut self, p: Principal) {
        self.principal = p;
        self.auth_deadline = None;
    }

    fn unauthenticated(&self) -> bool {
        self.sasl.as_ref().is_some_and(|s| !s.is_authenticated())
    }

    /// When waiting for the next request must stop.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let idle = self.idle.map(|d| now + d);
        match (idle, self.auth_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Whether the connection goes on after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The write half of a connection's transport.
pub trait Transport: AsyncWrite + Unpin {
    /// The TCP socket when bytes written reach it unchanged (no TLS), so file ranges
    /// can be sent to it with `sendfile`.
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl Transport for OwnedWriteHalf {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<T: AsyncRead + AsyncWrite> Transport for tokio::io::WriteHalf<T> {}

/// Serves requests until the client leaves, a deadline passes, or `shutdown`.
pub async fn serve<R, W>(
    rd: R,
    wr: W,
    services: Services,
    st: &mut ConnState<'_>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: Transport,
{
    let peer = st.peer;
    st.zero_copy = wr.socket().is_some();
    let mut reader = BufReader::with_capacity(256 * 1024, rd);
    let mut writer = BufWriter::with_capacity(256 * 1024, wr);
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut parts = Vec::new();
    loop {
        // A size already buffered needs no timer (the common case under load).
        let size = if reader.buffer().len() >= 4 {
            reader.read_i32().await?
        } else {
            let deadline = st.deadline(Instant::now());
            tokio::select! {
                size = reader.read_i32() => match size {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                },
                _ = until(deadline) => {
                    tracing::info!(%peer, listener = %st.listener.name, unauthenticated = st.unauthenticated(),
                        "closing a connection idle past connections.max.idle.ms or unauthenticated past connection.authentication.timeout.ms");
                    return Ok(());
                }
                _ = shutdown.changed() => return Ok(()),
            }
        };
        let max = if st.unauthenticated() {
            st.sasl_max_receive
        } else {
            services.metadata.config().socket_request_max_bytes.max(0) as usize
        };
        let size = match protocol::check_frame_size(size, max) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return Ok(());
            }
        };
        let frame = if st.unauthenticated() {
            tokio::select! {
                f = read_frame(&mut reader, size) => f?,
                _ = until(st.auth_deadline) => return Ok(()),
            }
        } else {
            read_frame(&mut reader, size).await?
        };
        out.clear();
        let flow = match respond(&services, st, frame.freeze(), &mut out, &mut parts).await {
            Ok(flow) => flow,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad request; closing connection");
                return Ok(());
            }
        };
        if !out.is_empty() {
            writer.write_all(&out).await?;
        }
        if !parts.is_empty() {
            send::write_parts(&mut writer, parts.drain(..)).await?;
        }
        if flow == Flow::Close {
            writer.flush().await?;
            linger(&mut reader, &mut writer).await;
            return Ok(());
        }
        if let Some(until) = st.muted_until.take() {
            // Muted: the throttled answer goes out now, the next request waits.
            writer.flush().await?;
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        } else if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

/// Closes after a final answer (a failed authentication) so that the client reads it.
/// The client closes first where it will: drain its input until it does, for at most
/// 500 ms, and only then send FIN. Sending FIN at once lost the answer for kafka-python
/// 3.0, which discards what it read in the same wake-up as the end of the stream; and
/// closing a socket with unread input sends a reset, which can destroy the answer too.
async fn linger<R, W>(reader: &mut R, writer: &mut W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
    let _ = writer.shutdown().await;
}

/// Reads a frame body of `size` bytes into uninitialised capacity: zeroing a
/// buffer that is overwritten at once cost ~2% of the broker's CPU under a 1 KiB
/// produce load (docs/benchmarks.md).
async fn read_frame<R>(reader: &mut R, size: usize) -> std::io::Result<BytesMut>
where
    R: AsyncRead + Unpin,
{
    let mut frame = BytesMut::with_capacity(size);
    while frame.len() < size {
        let want = (size - frame.len()) as u64;
        if reader.take(want).read_buf(&mut frame).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(frame)
}

/// Decodes, handles and encodes one request. `Err` means the connection must close
/// (Kafka's answer to framing garbage, unknown APIs and undecodable bodies).
async fn respond(
    services: &Services,
    st: &mut ConnState<'_>,
    frame: bytes::Bytes,
    out: &mut BytesMut,
    parts: &mut Vec<Part>,
) -> Result<Flow, ProtocolError> {
    let request = match protocol::decode_request(frame) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges, so the
            // client can retry with a version we speak.
            let body = ResponseKind::ApiVersions(handlers::api_versions::response(35));
            encode(out, ApiKey::ApiVersions, 0, correlation_id, &body)?;
            return Ok(Flow::Continue);
        }
        Err(e) => return Err(e),
    };
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api = request.api;
    let (response, flow) = match request.body {
        RequestKind::SaslHandshake(r) => {
            let (resp, flow) = handlers::sasl::handshake(services, st, r);
            (Some(ResponseKind::SaslHandshake(resp)), flow)
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, flow) = handlers::sasl::authenticate(services, st, r, version).await;
            (Some(ResponseKind::SaslAuthenticate(resp)), flow)
        }
        body => {
            if let Some(sasl) = &st.sasl {
                if let Err(e) = sasl.admit(api, Instant::now()) {
                    tracing::info!(peer = %st.peer, listener = %st.listener.name, error = %e, "closing connection");
                    return Ok(Flow::Close);
                }
            }
            if let RequestKind::ApiVersions(r) = &body {
                if version >= 3 {
                    st.client_software = (
                        r.client_software_name.to_string(),
                        r.client_software_version.to_string(),
                    );
                }
            }
            let (response, throttle_ms, slices) =
                dispatch(services, st, &request.header, api, version, body).await;
            if throttle_ms > 0 {
                st.muted_until = Some(Instant::now() + Duration::from_millis(throttle_ms));
            }
            if let (Some(body), false) = (&response, slices.is_empty()) {
                *parts = encode_parts(api, version, correlation_id, body, slices)?;
                return Ok(Flow::Continue);
            }
            (response, Flow::Continue)
        }
    };
    let result = match response {
        Some(body) => encode(out, api, version, correlation_id, &body),
        None => Ok(()),
    };
    result.map(|()| flow)
}

async fn dispatch(
    services: &Services,
    st: &ConnState<'_>,
    header: &kafka_protocol::messages::RequestHeader,
    api: ApiKey,
    version: i16,
    body: RequestKind,
) -> (Option<ResponseKind>, u64, Slices) {
    let ctx = Ctx {
        services,
        version,
        client_host: format!("/{}", st.peer.ip()),
        client_port: st.peer.port(),
        client_software: &st.client_software,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        principal: &st.principal,
        listener: &st.listener.name,
        throttle_ms: Default::default(),
        zero_copy: st.zero_copy,
        slices: Default::default(),
    };
    let usage = throttle::Usage::of(&body, version);
    let started = Instant::now();
    let mut busy = Duration::ZERO;
    let mut response = if crate::metrics::tracing_enabled() {
        let span = tracing::info_span!("request", api = ?api, version, correlation_id = header.correlation_id);
        let handler = std::pin::pin!(handlers::dispatch(&ctx, body).instrument(span));
        throttle::Busy::new(handler, &mut busy).await
    } else {
        let handler = std::pin::pin!(handlers::dispatch(&ctx, body));
        throttle::Busy::new(handler, &mut busy).await
    };
    crate::metrics::request(api, started.elapsed());
    let client = Client {
        user: &st.principal.name,
        client_id: &ctx.client_id,
    };
    let throttle_ms = throttle::after(services, client, usage, &mut response, busy)
        .max(ctx.handler_throttle_ms());
    (response, throttle_ms, ctx.slices.into_inner())
}

/// [`encode`] of a response whose placeholders stand for `slices`.
pub(crate) fn encode_parts(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    slices: Slices,
) -> Result<Vec<Part>, ProtocolError> {
    parts::encode(api, version, correlation_id, body, slices).map_err(|e| {
        tracing::error!(?api, version, error = %e, "could not encode response");
        ProtocolError::Encode {
            api,
            version,
            reason: e.to_string(),
        }
    })
}

/// Only a handler bug (a field set that this version cannot carry) fails here; the
/// connection is closed so the client retries instead of waiting for an answer.
pub(crate) fn encode(
    out: &mut BytesMut,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<(), ProtocolError> {
    protocol::encode_response(out, api, version, correlation_id, body).map_err(|e| {
        tracing::error!(?api, version, error = %e, "could not encode response");
        ProtocolError::Encode {
            api,
            version,
            reason: e.to_string(),
        }
    })
}
