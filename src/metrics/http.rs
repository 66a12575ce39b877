//! A minimal HTTP/1.1 responder for `GET /metrics` on tokio.
//!
//! Prometheus sends one small GET per scrape, so this reads one request head,
//! answers it and closes the connection (`Connection: close`); it needs no HTTP
//! library. Anything that is not a well-formed `GET` (or `HEAD`) gets a 4xx answer,
//! and a client that does not finish its request head within [`READ_TIMEOUT`] is
//! dropped, so a stuck scraper cannot hold a task forever.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{Encoder, TextEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::MetricsError;

/// Largest request head accepted; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` (`host:port`; port 0 picks one) and serves scrapes on it in a task
/// until `shutdown` turns true. Returns the bound address.
pub async fn spawn_server(
    addr: &str,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, MetricsError> {
    let bind_error = |source| MetricsError::Bind {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    tokio::spawn(serve(listener, shutdown));
    Ok(bound)
}

/// Answers scrapes on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream).await {
                            tracing::debug!(%peer, error = %e, "metrics connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, content_type, body) = match parse_request_line(&head) {
        Some(("GET" | "HEAD", "/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            encode(),
        ),
        Some(("GET" | "HEAD", _)) => ("404 Not Found", "text/plain", b"try /metrics\n".to_vec()),
        Some(_) => (
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n".to_vec(),
        ),
        None => ("400 Bad Request", "text/plain", b"bad request\n".to_vec()),
    };
    let head_only = head.starts_with(b"HEAD ");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    if !head_only {
        stream.write_all(&body).await?;
    }
    stream.shutdown().await
}

/// Reads until the blank line that ends the request head (or EOF, or [`MAX_HEAD`]).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// `(method, path)` of a request head, the query string dropped.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    Some((method, target.split('?').next().unwrap_or(target)))
}

/// The Prometheus text format of this broker's own series (not the clients' pushed ones)
/// whose family name `wanted` accepts (counters' family names may lack `_total`).
pub fn own(wanted: &dyn Fn(&str) -> bool) -> Vec<u8> {
    let Some(registry) = super::export::registry() else {
        return Vec::new();
    };
    let mut families = registry.gather();
    families.retain(|f| wanted(f.name()));
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    out
}

/// The Prometheus text format of everything recorded so far.
fn encode() -> Vec<u8> {
    let mut out = own(&|_| true);
    // The metrics clients pushed (KIP-714), after the broker's own.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    out.extend_from_slice(super::client::render(now_ms).as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_or_are_refused() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe HTTP/1.1\r\n"), None);
        assert_eq!(parse_request_line(b"GET /metrics HTTP/1.1"), None);
    }
}
