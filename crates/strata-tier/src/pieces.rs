//! Bytes held as a list of pieces: a remote read that spans cached chunks is answered
//! with slices of those chunks, in order, instead of one buffer they are copied into.
//!
//! The broker hands the pieces to the socket as they are (one `writev`), so a record
//! read from the bucket is copied once in user space: from the HTTP body into its chunk.
//! Code that needs contiguous bytes asks for them: [`Pieces::to_bytes`] joins (a copy
//! unless there is one piece), [`Pieces::contiguous`] copies only a range that straddles
//! two pieces (a batch header, a few dozen bytes).

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pieces {
    parts: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    pub fn new() -> Pieces {
        Pieces::default()
    }

    /// Appends `b` (an empty one is dropped, so no piece is empty).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.parts.push(b);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; none is empty.
    pub fn as_slices(&self) -> &[Bytes] {
        &self.parts
    }

    pub fn into_vec(self) -> Vec<Bytes> {
        self.parts
    }

    /// The bytes in one buffer: the piece itself when there is one, else a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = BytesMut::with_capacity(self.len);
                for p in many {
                    out.extend_from_slice(p);
                }
                out.freeze()
            }
        }
    }

    /// Bytes `range` (clamped to the length) as pieces, without copying.
    pub fn slice(&self, range: Range<usize>) -> Pieces {
        let (from, to) = (range.start.min(self.len), range.end.min(self.len));
        let mut out = Pieces::new();
        let mut at = 0usize;
        for p in &self.parts {
            let (lo, hi) = (at, at + p.len());
            at = hi;
            if hi <= from {
                continue;
            }
            if lo >= to {
                break;
            }
            out.push(p.slice(from.saturating_sub(lo)..(to - lo).min(p.len())));
        }
        out
    }

    /// Up to `n` bytes from `pos` as one slice: borrowed when one piece holds them, copied
    /// when they straddle pieces. Shorter than `n` at the end.
    pub fn contiguous(&self, pos: usize, n: usize) -> Cow<'_, [u8]> {
        let end = pos.saturating_add(n).min(self.len);
        if pos >= end {
            return Cow::Borrowed(&[]);
        }
        let mut at = 0usize;
        let mut copied: Option<Vec<u8>> = None;
        for p in &self.parts {
            let (lo, hi) = (at, at + p.len());
            at = hi;
            if hi <= pos {
                continue;
            }
            let piece = &p[pos.max(lo) - lo..end.min(hi) - lo];
            match copied.as_mut() {
                None if hi >= end => return Cow::Borrowed(piece),
                None => copied = Some(piece.to_vec()),
                Some(buf) => buf.extend_from_slice(piece),
            }
            if hi >= end {
                break;
            }
        }
        Cow::Owned(copied.unwrap_or_default())
    }
}

impl From<Bytes> for Pieces {
    fn from(b: Bytes) -> Pieces {
        let mut p = Pieces::new();
        p.push(b);
        p
    }
}

impl FromIterator<Bytes> for Pieces {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Pieces {
        let mut p = Pieces::new();
        for b in iter {
            p.push(b);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8], cuts: &[usize]) -> Pieces {
        let b = Bytes::copy_from_slice(data);
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(data.len());
        bounds.windows(2).map(|w| b.slice(w[0]..w[1])).collect()
    }

    #[test]
    fn slices_and_contiguous_views_equal_the_joined_bytes() {
        let data: Vec<u8> = (0..200u8).collect();
        for cuts in [vec![], vec![1], vec![50, 51, 120], vec![10, 20, 30, 199]] {
            let p = split(&data, &cuts);
            assert_eq!(p.len(), data.len());
            assert_eq!(p.to_bytes(), data.as_slice());
            for (from, to) in [(0, 200), (0, 0), (5, 60), (50, 51), (119, 121), (150, 400)] {
                let want = &data[from.min(200)..to.min(200)];
                assert_eq!(
                    p.slice(from..to).to_bytes(),
                    want,
                    "slice {from}..{to} of {cuts:?}"
                );
                assert_eq!(
                    &*p.contiguous(from, to - from),
                    want,
                    "view {from}+{} of {cuts:?}",
                    to - from
                );
            }
        }
    }

    #[test]
    fn a_view_inside_one_piece_is_borrowed_and_empty_pieces_are_dropped() {
        let p = split(&[7u8; 100], &[40, 40, 40]);
        assert_eq!(p.as_slices().len(), 2);
        assert!(matches!(p.contiguous(10, 20), Cow::Borrowed(_)));
        assert!(matches!(p.contiguous(30, 20), Cow::Owned(_)));
        assert!(Pieces::from(Bytes::new()).is_empty());
    }
}
