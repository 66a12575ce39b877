//! The Kafka listener: accepts connections, reads frames, dispatches each request to
//! its handler in `handlers/`, and writes responses in order.
//!
//! Like Kafka, a connection has one request in progress at a time, so responses leave
//! in request order; clients pipeline by sending several requests before reading.
//! Responses are buffered and flushed when no further request is already buffered, so
//! a pipelining producer gets its acknowledgements in few writes.
//!
//! This is the only layer that turns module errors into Kafka error codes
//! (`errors.rs`).

mod errors;
mod handlers;

use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

use crate::broker::Broker;
use crate::cleaner::LogCleaner;
use crate::group::GroupCoordinator;
use crate::metadata::MetadataCache;
use crate::protocol::{self, ProtocolError};
use crate::replica::ReplicaManager;
use crate::rlm::RemoteLogManager;

pub use errors::{error_code, group_code, group_result_code, replica_code};

/// The components the handlers call, built once at startup.
#[derive(Clone)]
pub struct Services {
    /// Metadata changes (topic administration) and cluster information.
    pub broker: Arc<Broker>,
    pub metadata: Arc<MetadataCache>,
    /// Appends, fetches and offset lookups.
    pub replicas: Arc<ReplicaManager>,
    /// The RemoteLogManager, when the node has a remote tier.
    pub rlm: Option<Arc<RemoteLogManager>>,
    /// The log cleaner, for its per-partition state in DescribeLogDirs.
    pub cleaner: Arc<LogCleaner>,
    pub groups: Arc<GroupCoordinator>,
}

impl Services {
    pub fn new(broker: Arc<Broker>, groups: Arc<GroupCoordinator>) -> Services {
        Services {
            metadata: broker.metadata.clone(),
            replicas: broker.replicas.clone(),
            rlm: broker.rlm.clone(),
            cleaner: broker.cleaner.clone(),
            broker,
            groups,
        }
    }
}

/// Per-request context handed to every handler: the components (through `Deref` to
/// [`Services`], so a handler writes `ctx.replicas`) and who is asking.
pub struct Ctx<'a> {
    services: &'a Services,
    pub version: i16,
    /// The client's host as Kafka reports it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    pub client_id: String,
}

impl std::ops::Deref for Ctx<'_> {
    type Target = Services;

    fn deref(&self) -> &Services {
        self.services
    }
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(listener: TcpListener, services: Services, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let services = services.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_connection(stream, services, shutdown).await {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    services: Services,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let peer = stream.peer_addr()?;
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(256 * 1024, rd);
    let mut writer = BufWriter::with_capacity(256 * 1024, wr);
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let size = tokio::select! {
            size = reader.read_i32() => match size {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let max = services.metadata.config().socket_request_max_bytes.max(0) as usize;
        let size = match protocol::check_frame_size(size, max) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return Ok(());
            }
        };
        let frame = read_frame(&mut reader, size).await?;
        out.clear();
        match respond(&services, peer, frame.freeze(), &mut out).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad request; closing connection");
                return Ok(());
            }
        }
        if !out.is_empty() {
            writer.write_all(&out).await?;
        }
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

/// Reads a frame body of `size` bytes into uninitialised capacity: zeroing a
/// buffer that is overwritten at once cost ~2% of the broker's CPU under a 1 KiB
/// produce load (docs/benchmarks.md).
async fn read_frame<R>(reader: &mut R, size: usize) -> std::io::Result<BytesMut>
where
    R: tokio::io::AsyncRead + Unpin,
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
    peer: std::net::SocketAddr,
    frame: bytes::Bytes,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let request = match protocol::decode_request(frame) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges, so the
            // client can retry with a version we speak.
            let body = handlers::api_versions::response(35);
            return encode(
                out,
                ApiKey::ApiVersions,
                0,
                correlation_id,
                &ResponseKind::ApiVersions(body),
            );
        }
        Err(e) => return Err(e),
    };
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api = request.api;
    let ctx = Ctx {
        services,
        version,
        client_host: format!("/{}", peer.ip()),
        client_id: request
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
    };
    let started = std::time::Instant::now();
    let response = if crate::metrics::tracing_enabled() {
        let span = tracing::info_span!("request", api = ?api, version, correlation_id);
        handlers::dispatch(&ctx, request.body)
            .instrument(span)
            .await
    } else {
        handlers::dispatch(&ctx, request.body).await
    };
    let result = match response {
        Some(body) => encode(out, api, version, correlation_id, &body),
        None => Ok(()),
    };
    crate::metrics::request(api, started.elapsed());
    result
}

/// Only a handler bug (a field set that this version cannot carry) fails here; the
/// connection is closed so the client retries instead of waiting for an answer.
fn encode(
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
