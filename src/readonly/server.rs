//! The read-only node's Kafka listener: accepts connections and runs a small connection
//! loop (one request at a time, responses in order, as the broker's) over the broker's
//! codec (`protocol::decode_request`, `encode_response`). Only the APIs a history reader
//! needs are answered (`handlers.rs`); any other request closes the connection, as Kafka
//! does for an API it does not advertise in ApiVersions.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{handlers, Node};
use crate::protocol::{self, ProtocolError};
use crate::server::connection::{encode, encode_parts};
use crate::server::parts::{Part, Slices};
use crate::server::send;

/// Accepts connections until `shutdown`.
pub async fn serve(node: Arc<Node>, socket: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let node = node.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(&node, stream, peer, shutdown).await {
                            tracing::debug!(%peer, error = %e, "connection ended");
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

async fn connection(
    node: &Node,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, rd);
    let mut writer = BufWriter::with_capacity(256 * 1024, wr);
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let idle = async {
            match node.idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let size = tokio::select! {
            size = reader.read_i32() => match size {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            },
            _ = idle => {
                tracing::debug!(%peer, "closing a connection idle past connections.max.idle.ms");
                return Ok(());
            }
            _ = shutdown.changed() => return Ok(()),
        };
        let size = match protocol::check_frame_size(size, node.max_request_bytes) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return Ok(());
            }
        };
        let mut frame = vec![0u8; size];
        reader.read_exact(&mut frame).await?;
        out.clear();
        let parts = match respond(node, bytes::Bytes::from(frame), &mut out).await {
            Ok(parts) => parts,
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing connection");
                writer.flush().await?;
                return Ok(());
            }
        };
        writer.write_all(&out).await?;
        send::write_parts(&mut writer, parts).await?;
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

/// Decodes, answers and encodes one request into `out`, or into the parts returned when
/// the answer holds records out of the encoding (a Fetch); `Err` closes the connection.
async fn respond(
    node: &Node,
    frame: bytes::Bytes,
    out: &mut BytesMut,
) -> Result<Vec<Part>, ProtocolError> {
    let request = match protocol::decode_request(frame) {
        Ok(r) => r,
        Err(ProtocolError::UnsupportedVersion {
            api: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // KIP-511: answer in v0 with UNSUPPORTED_VERSION and the ranges served.
            let body = ResponseKind::ApiVersions(handlers::api_versions(35));
            return encode(out, ApiKey::ApiVersions, 0, correlation_id, &body).map(|()| Vec::new());
        }
        Err(e) => return Err(e),
    };
    let version = request.header.request_api_version;
    let correlation_id = request.header.correlation_id;
    let api = request.api;
    let started = std::time::Instant::now();
    let mut slices = Slices::default();
    let response = handlers::dispatch(
        node,
        api,
        version,
        correlation_id,
        request.body,
        &mut slices,
    )
    .await?;
    crate::metrics::request(api, started.elapsed());
    match response {
        Some(body) if !slices.is_empty() => {
            encode_parts(api, version, correlation_id, &body, slices)
        }
        Some(body) => encode(out, api, version, correlation_id, &body).map(|()| Vec::new()),
        None => Ok(Vec::new()),
    }
}
