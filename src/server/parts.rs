//! A response as a list of parts: encoded bytes and ranges of segment files, so that a
//! Fetch on a plaintext connection sends its records with `sendfile(2)` from the page
//! cache and never copies them through user space (docs/architecture.md, "Fetch").
//!
//! The response is still encoded by the `kafka-protocol` crate's generated code, which
//! takes a partition's records as `Bytes`. A file range is put in as a *placeholder*: a
//! `Bytes` of the range's length that points into a reserved, never-touched region of
//! address space, at an offset that names the range. The generated encoder writes the
//! length prefix and then calls `put_slice` with the placeholder; [`PartsBuf`], the
//! buffer it encodes into, recognises the address and records "the file range goes
//! here" instead of copying. Everything else is copied into one head buffer as before.
//!
//! The region is an anonymous `PROT_READ` mapping with `MAP_NORESERVE`: it costs
//! address space only (no memory, no commit charge), and is valid to read (zero pages),
//! so the placeholders are sound `&[u8]` even if some code did read them. When it cannot
//! be mapped, zero-copy is off and fetches take the copy path.

use std::sync::OnceLock;

use bytes::{buf::UninitSlice, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;
use strata_log::FileSlice;

/// Placeholders per response (one per partition answered from a file); a response
/// with more copies the rest.
pub const MAX_SLICES: usize = 1 << 16;
/// The largest range a placeholder stands for (a segment is at most 2 GiB).
const MAX_SLICE_LEN: usize = 1 << 31;

struct Region(&'static [u8]);

fn region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<Region>> = OnceLock::new();
    REGION
        .get_or_init(|| {
            let len = MAX_SLICES + MAX_SLICE_LEN;
            // SAFETY: a fresh anonymous mapping that nothing else refers to; it is never
            // unmapped, so the slice is valid for 'static, and PROT_READ of anonymous
            // memory reads zeros.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    tracing::warn!(error = %std::io::Error::last_os_error(),
                        "could not reserve the placeholder region; fetches copy their records");
                    return None;
                }
                Some(Region(std::slice::from_raw_parts(p as *const u8, len)))
            }
        })
        .as_ref()
        .map(|r| r.0)
}

/// Whether responses can carry file ranges at all.
pub fn available() -> bool {
    region().is_some()
}

/// The file ranges of one response, in the order their placeholders were made.
#[derive(Default)]
pub struct Slices(Vec<FileSlice>);

impl Slices {
    /// A placeholder for `slice` to put where the records go, or `None` when the
    /// response has no room for another (the caller reads the bytes instead).
    pub fn placeholder(&mut self, slice: FileSlice) -> Option<Bytes> {
        let region = region()?;
        let k = self.0.len();
        if k >= MAX_SLICES || slice.len() > MAX_SLICE_LEN {
            return None;
        }
        let len = slice.len();
        self.0.push(slice);
        Some(Bytes::from_static(&region[k..k + len]))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One piece of a response on the wire.
pub enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

/// The encoder's buffer: bytes go to `head`; a placeholder becomes an insertion of its
/// file range at the current head position. Offsets the encoder sees (`offset`,
/// `range`, gaps) are head offsets, which stay valid because the head is never split
/// until the end.
struct PartsBuf {
    head: BytesMut,
    slices: Vec<Option<FileSlice>>,
    inserts: Vec<(usize, FileSlice)>,
    file_bytes: usize,
}

impl PartsBuf {
    fn slice_for(&mut self, src: &[u8]) -> Option<FileSlice> {
        let region = region()?;
        let base = region.as_ptr() as usize;
        let at = (src.as_ptr() as usize).checked_sub(base)?;
        if src.is_empty() || at >= MAX_SLICES {
            return None;
        }
        let slice = self.slices.get_mut(at)?.take()?;
        debug_assert_eq!(slice.len(), src.len());
        Some(slice)
    }
}

// SAFETY: every method delegates to `BytesMut`, whose implementation upholds the
// contract; `put_slice` only adds a branch before delegating.
unsafe impl BufMut for PartsBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.slice_for(src) {
            Some(slice) => {
                self.file_bytes += slice.len();
                self.inserts.push((self.head.len(), slice));
            }
            None => self.head.extend_from_slice(src),
        }
    }
}

impl ByteBufMut for PartsBuf {
    fn offset(&self) -> usize {
        self.head.len()
    }

    fn seek(&mut self, offset: usize) {
        self.head.resize(offset, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.head[r]
    }
}

/// Encodes a response frame (size, header, body) as parts: the file ranges of `slices`
/// where their placeholders are, encoded bytes between them. The frame's size counts
/// the file ranges.
pub fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    slices: Slices,
) -> anyhow::Result<Vec<Part>> {
    let mut buf = PartsBuf {
        head: BytesMut::with_capacity(4096),
        slices: slices.0.into_iter().map(Some).collect(),
        inserts: Vec::new(),
        file_bytes: 0,
    };
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api.response_header_version(version))?;
    // `ResponseKind::encode` takes a `BytesMut`; the messages themselves encode into any
    // `ByteBufMut`. Only Fetch carries file ranges.
    match body {
        ResponseKind::Fetch(f) => f.encode(&mut buf, version)?,
        _ => anyhow::bail!("only Fetch responses carry file ranges"),
    }
    let size = buf.head.len() - 4 + buf.file_bytes;
    let size = i32::try_from(size).map_err(|_| anyhow::anyhow!("response of {size} bytes"))?;
    buf.head[..4].copy_from_slice(&size.to_be_bytes());
    let head = buf.head.freeze();
    let mut parts = Vec::with_capacity(buf.inserts.len() * 2 + 1);
    let mut from = 0;
    for (at, slice) in buf.inserts {
        if at > from {
            parts.push(Part::Bytes(head.slice(from..at)));
        }
        parts.push(Part::File(slice));
        from = at;
    }
    if from < head.len() {
        parts.push(Part::Bytes(head.slice(from..)));
    }
    Ok(parts)
}
