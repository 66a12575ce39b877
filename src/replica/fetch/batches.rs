//! Walks over the record batches of a remote read, which arrives as [`Pieces`] (slices of
//! the cached chunks, not joined): the KIP-74 cut, the offsets a read covers, and the
//! cut below an offset. Each looks at batch headers only; a header that straddles two
//! pieces is the only thing copied.

use strata_log::record::{batch_size_at, BatchHeader, HEADER_LEN};
use strata_tier::Pieces;

/// The batches of `records` from the start, back to back: `(position, header, size)`.
/// Stops at the first that is not whole (a read returns whole batches, so only damage
/// would end it early).
pub(crate) fn batches(records: &Pieces) -> impl Iterator<Item = (usize, BatchHeader, usize)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let head = records.contiguous(pos, HEADER_LEN);
        let header = BatchHeader::parse(&head)?;
        let size = batch_size_at(&head)?;
        if pos + size > records.len() {
            return None;
        }
        let at = pos;
        pos += size;
        Some((at, header, size))
    })
}

/// The whole batches at the start of `records` that fit in `limit` bytes; when none does and
/// `first`, the first batch alone (KIP-74's first-record exception). A remote read is made
/// before the pass knows the room left (it runs in parallel with the other partitions'), so
/// it is cut here, between batches.
pub(crate) fn fit(records: &Pieces, limit: usize, first: bool) -> Pieces {
    if records.len() <= limit {
        return records.clone();
    }
    let mut end = 0usize;
    for (at, _, size) in batches(records) {
        if at + size > limit {
            if at == 0 && first {
                end = size;
            }
            break;
        }
        end = at + size;
    }
    records.slice(0..end)
}

/// The first batch's base offset and one past the last batch's last offset.
pub(crate) fn offset_range(records: &Pieces) -> Option<(i64, i64)> {
    let mut all = batches(records);
    let (_, first, _) = all.next()?;
    let last = all
        .last()
        .map_or(first.last_offset(), |(_, h, _)| h.last_offset());
    Some((first.base_offset, last + 1))
}

/// The whole batches of `records` starting below `upper` (a reader's remote end, or the
/// last stable offset for read_committed: a batch of an open transaction starts at or
/// past it).
pub(crate) fn starting_below(records: &Pieces, upper: i64) -> Pieces {
    let end = batches(records)
        .take_while(|(_, h, _)| h.base_offset < upper)
        .last()
        .map_or(0, |(at, _, size)| at + size);
    records.slice(0..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Batches of the given total sizes, back to back, with base offsets 0, 10, 20, ... and
    /// ten offsets each, split into pieces at `cuts` (byte positions).
    fn batches_of(sizes: &[usize], cuts: &[usize]) -> Pieces {
        let mut out = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let mut b = vec![0u8; n];
            b[..8].copy_from_slice(&(10 * i as i64).to_be_bytes());
            b[8..12].copy_from_slice(&((n - 12) as i32).to_be_bytes());
            b[23..27].copy_from_slice(&9i32.to_be_bytes());
            out.extend_from_slice(&b);
        }
        let all = Bytes::from(out);
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(all.len());
        bounds.windows(2).map(|w| all.slice(w[0]..w[1])).collect()
    }

    #[test]
    fn remote_records_are_cut_between_batches_within_the_room() {
        // Pieces cut inside headers, at batch edges and not at all: the same answers.
        for cuts in [vec![], vec![100, 300], vec![5, 120, 301, 599]] {
            let r = batches_of(&[100, 200, 300], &cuts);
            assert_eq!(fit(&r, 600, false).len(), 600);
            assert_eq!(fit(&r, 599, false).len(), 300);
            assert_eq!(fit(&r, 299, false).len(), 100);
            assert_eq!(fit(&r, 99, false).len(), 0);
            // The first partition with data gets one batch past any limit, only one.
            assert_eq!(fit(&r, 99, true).len(), 100);
            assert_eq!(fit(&r, 0, true).len(), 100);
            assert_eq!(fit(&r, 150, true).len(), 100);
            assert_eq!(fit(&r, 350, true).to_bytes(), r.to_bytes().slice(..300));
        }
    }

    #[test]
    fn offset_ranges_and_cuts_below_an_offset_read_headers_across_pieces() {
        for cuts in [vec![], vec![30], vec![1, 110, 150, 320]] {
            let r = batches_of(&[100, 200, 300], &cuts);
            assert_eq!(offset_range(&r), Some((0, 30)), "{cuts:?}");
            assert_eq!(offset_range(&r.slice(100..600)), Some((10, 30)));
            assert_eq!(starting_below(&r, 20).len(), 300);
            assert_eq!(starting_below(&r, 21).len(), 600);
            assert_eq!(starting_below(&r, 0).len(), 0);
            assert_eq!(
                batches(&r.slice(0..599)).count(),
                2,
                "a torn last batch ends the walk"
            );
        }
        assert_eq!(offset_range(&Pieces::new()), None);
    }
}
