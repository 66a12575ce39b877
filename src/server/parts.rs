//! A response as a list of parts: encoded bytes, ranges of segment files and the pieces of
//! remote reads, so that a Fetch on a plaintext connection sends local records with
//! `sendfile(2)` from the page cache, and remote records from the chunks they were read
//! into, without copying either into the response (docs/architecture.md, "Fetch").
//!
//! The response is still encoded by the `kafka-protocol` crate's generated code, which
//! takes a partition's records as `Bytes`. A file range or a list of pieces is put in as a
//! *placeholder*: a `Bytes` of its length that points into a reserved, never-touched region
//! of address space, at an offset that names it. The generated encoder writes the
//! length prefix and then calls `put_slice` with the placeholder; [`PartsBuf`], the
//! buffer it encodes into, recognises the address and records "these records go
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
use strata_tier::Pieces;

/// Placeholders per response (one per partition answered from a file or a remote read);
/// a response with more copies the rest.
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

/// Records kept out of the encoded head: a file range, or the pieces of a remote read.
enum Held {
    File(FileSlice),
    Pieces(Pieces),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::File(s) => s.len(),
            Held::Pieces(p) => p.len(),
        }
    }
}

/// Below this, a remote read's pieces are joined into the head: an iovec each would cost
/// more than the copy.
const MIN_PIECES_LEN: usize = 4096;

/// The records held out of one response, in the order their placeholders were made.
#[derive(Default)]
pub struct Slices(Vec<Held>);

impl Slices {
    /// A placeholder for `slice` to put where the records go, or `None` when the
    /// response has no room for another (the caller reads the bytes instead).
    pub fn placeholder(&mut self, slice: FileSlice) -> Option<Bytes> {
        self.has_room(slice.len())
            .then(|| self.hold(Held::File(slice)))
    }

    /// A placeholder for `pieces` (written from where they are, with `writev`), or the
    /// bytes joined when they are small, the response has no room for another, or the
    /// copy path is asked for (`STRATA_BENCH_COPY_PATH`).
    pub fn pieces(&mut self, pieces: Pieces) -> Bytes {
        if pieces.len() < MIN_PIECES_LEN
            || strata_log::bench_copy_path()
            || !self.has_room(pieces.len())
        {
            return pieces.to_bytes();
        }
        self.hold(Held::Pieces(pieces))
    }

    fn has_room(&self, len: usize) -> bool {
        available() && self.0.len() < MAX_SLICES && len <= MAX_SLICE_LEN
    }

    /// Call only after [`Slices::has_room`] said yes.
    fn hold(&mut self, held: Held) -> Bytes {
        let (k, len) = (self.0.len(), held.len());
        self.0.push(held);
        match region() {
            Some(region) => Bytes::from_static(&region[k..k + len]),
            None => unreachable!("has_room checked the region"),
        }
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
/// records at the current head position. Offsets the encoder sees (`offset`, `range`,
/// gaps) are head offsets, which stay valid because the head is never split until the
/// end.
struct PartsBuf {
    head: BytesMut,
    held: Vec<Option<Held>>,
    inserts: Vec<(usize, Held)>,
    held_bytes: usize,
}

impl PartsBuf {
    fn held_for(&mut self, src: &[u8]) -> Option<Held> {
        let region = region()?;
        let base = region.as_ptr() as usize;
        let at = (src.as_ptr() as usize).checked_sub(base)?;
        if src.is_empty() || at >= MAX_SLICES {
            return None;
        }
        let held = self.held.get_mut(at)?.take()?;
        debug_assert_eq!(held.len(), src.len());
        Some(held)
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
        match self.held_for(src) {
            Some(held) => {
                self.held_bytes += held.len();
                self.inserts.push((self.head.len(), held));
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

/// Encodes a response frame (size, header, body) as parts: the records held in `slices`
/// where their placeholders are, encoded bytes between them. The frame's size counts
/// the held records.
pub fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    slices: Slices,
) -> anyhow::Result<Vec<Part>> {
    let mut buf = PartsBuf {
        head: BytesMut::with_capacity(4096),
        held: slices.0.into_iter().map(Some).collect(),
        inserts: Vec::new(),
        held_bytes: 0,
    };
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(&mut buf, api.response_header_version(version))?;
    // `ResponseKind::encode` takes a `BytesMut`; the messages themselves encode into any
    // `ByteBufMut`. Only Fetch carries held records.
    match body {
        ResponseKind::Fetch(f) => f.encode(&mut buf, version)?,
        _ => anyhow::bail!("only Fetch responses carry held records"),
    }
    let size = buf.head.len() - 4 + buf.held_bytes;
    let size = i32::try_from(size).map_err(|_| anyhow::anyhow!("response of {size} bytes"))?;
    buf.head[..4].copy_from_slice(&size.to_be_bytes());
    let head = buf.head.freeze();
    let mut parts = Vec::with_capacity(buf.inserts.len() * 2 + 1);
    let mut from = 0;
    for (at, held) in buf.inserts {
        if at > from {
            parts.push(Part::Bytes(head.slice(from..at)));
        }
        match held {
            Held::File(slice) => parts.push(Part::File(slice)),
            Held::Pieces(pieces) => parts.extend(pieces.into_vec().into_iter().map(Part::Bytes)),
        }
        from = at;
    }
    if from < head.len() {
        parts.push(Part::Bytes(head.slice(from..)));
    }
    Ok(parts)
}
