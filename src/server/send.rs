//! Writes a response given as parts (`parts.rs`): runs of bytes with one vectored write
//! (`writev`: the encoded head and the chunks of remote records go out together, without
//! being copied into one buffer first), file ranges with `sendfile(2)` once the bytes
//! before them are flushed, or read and written on a transport without a socket (TLS).

use std::io::IoSlice;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter, Interest};
use tokio::net::TcpStream;

use super::connection::Transport;
use super::parts::Part;

/// Writes `parts` in order.
pub async fn write_parts<W: Transport>(
    writer: &mut BufWriter<W>,
    parts: impl IntoIterator<Item = Part>,
) -> std::io::Result<()> {
    let mut run: Vec<Bytes> = Vec::new();
    for part in parts {
        match part {
            Part::Bytes(b) => run.push(b),
            Part::File(slice) => {
                write_run(writer, &mut run).await?;
                write_file(writer, &slice).await?;
            }
        }
    }
    write_run(writer, &mut run).await
}

/// Writes and empties `run`. A run larger than the buffer bypasses it (tokio's `BufWriter`
/// flushes what it holds, then hands the slices to the socket's `writev`); a small one is
/// copied into the buffer like any write.
async fn write_run<W: Transport>(
    writer: &mut BufWriter<W>,
    run: &mut Vec<Bytes>,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < run.len() {
        let slices: Vec<IoSlice<'_>> = run[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < run.len() && n >= run[first].len() {
            n -= run[first].len();
            first += 1;
        }
        if n > 0 {
            // A partial write inside a piece: the rest of it starts the next write.
            let rest = run[first].slice(n..);
            run[first] = rest;
        }
    }
    run.clear();
    Ok(())
}

/// A file range: `sendfile` once the bytes before it are flushed, or read and written on a
/// transport without a socket.
async fn write_file<W: Transport>(
    writer: &mut BufWriter<W>,
    slice: &strata_log::FileSlice,
) -> std::io::Result<()> {
    if writer.get_ref().socket().is_none() {
        let bytes = slice.read().map_err(std::io::Error::other)?;
        return writer.write_all(&bytes).await;
    }
    writer.flush().await?;
    match writer.get_ref().socket() {
        Some(socket) => send_file(socket, slice).await,
        None => Ok(()),
    }
}
/// Sends a file range with `sendfile(2)`, waiting for the socket to be writable between
/// partial sends. The frame's size already counted the range, so a file found shorter
/// than the range (truncated since the read) fails the connection.
async fn send_file(socket: &TcpStream, slice: &strata_log::FileSlice) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let out_fd = socket.as_raw_fd();
    let in_fd = slice.file().as_raw_fd();
    let mut offset = slice.position() as libc::off_t;
    let mut left = slice.len();
    while left > 0 {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (`socket`
            // and `slice` are borrowed); `offset` is a valid pointer.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut offset, left.min(1 << 30)) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} ended {left} bytes before the fetched range (truncated since the read)",
                        slice.path().display()
                    ),
                ))
            }
            Ok(n) => left -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
