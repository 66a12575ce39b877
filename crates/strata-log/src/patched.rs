//! Produced batches written without copying them: the broker must rewrite a few
//! header fields of every batch (base offset, partitionLeaderEpoch, and for
//! LogAppendTime the attributes, maxTimestamp and CRC), all within the first
//! [`HEADER_LEN`] bytes. Instead of copying the request into a new buffer to
//! patch it (3% of produce CPU, docs/benchmarks.md "Profile"), the patched
//! headers live in a small side buffer and the batches are written with one
//! `pwritev` of header, rest of batch, header, rest of batch, ...
//!
//! The CRC of a LogAppendTime batch covers the patched attributes and the rest
//! of the batch, so it is computed over both pieces (`crc32c_append`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use crate::record::{self, BatchInfo, HEADER_LEN};

/// The patched header of each batch of a produce request, in order.
pub(crate) type Headers = Vec<[u8; HEADER_LEN]>;

/// Copies the header of every batch of `data` (as described by `infos`) for
/// patching.
pub(crate) fn headers(data: &[u8], infos: &[BatchInfo]) -> Headers {
    infos
        .iter()
        .map(|i| {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&data[i.position..i.position + HEADER_LEN]);
            h
        })
        .collect()
}

/// Marks a batch as LogAppendTime in its header copy (see
/// [`record::set_log_append_time`]); `rest` is the batch after the header.
pub(crate) fn set_log_append_time(header: &mut [u8; HEADER_LEN], rest: &[u8], now_ms: i64) {
    record::set_log_append_time_fields(header, now_ms);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[record::ATTRIBUTES_AT..]), rest);
    header[record::CRC_AT..record::CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Linux's IOV_MAX.
const MAX_IOVECS: usize = 1024;

/// Writes the batches of `data` at `pos`, each with its header from `headers`
/// (one per info; empty: `data` as it is).
pub(crate) fn write_at(
    file: &File,
    data: &[u8],
    infos: &[BatchInfo],
    headers: &[[u8; HEADER_LEN]],
    pos: u64,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    if headers.is_empty() {
        return file.write_all_at(data, pos);
    }
    debug_assert_eq!(headers.len(), infos.len());
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(infos.len() * 2);
    for (info, h) in infos.iter().zip(headers) {
        pieces.push(h);
        pieces.push(&data[info.position + HEADER_LEN..info.range().end]);
    }
    write_all_vectored_at(file, &mut pieces, pos)
}

/// `pwritev` until every piece is written (partial writes resume in the middle
/// of a piece).
fn write_all_vectored_at(file: &File, pieces: &mut [&[u8]], mut pos: u64) -> io::Result<()> {
    let mut first = 0;
    while first < pieces.len() {
        let end = pieces.len().min(first + MAX_IOVECS);
        let iov: Vec<libc::iovec> = pieces[first..end]
            .iter()
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: every iovec points into a live slice of `pieces`, only read.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                pos as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        pos += n as u64;
        while n > 0 && first < pieces.len() {
            let len = pieces[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                pieces[first] = &pieces[first][n..];
                n = 0;
            }
        }
        while first < pieces.len() && pieces[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_writes_span_iov_max_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let data: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 251) as u8; (i % 17) as usize])
            .collect();
        let mut pieces: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
        write_all_vectored_at(&file, &mut pieces, 5).unwrap();
        let want: Vec<u8> = data.concat();
        let mut got = vec![0u8; want.len()];
        use std::os::unix::fs::FileExt;
        file.read_exact_at(&mut got, 5).unwrap();
        assert_eq!(got, want);
    }
}
