//! The cleaner's offset map (Kafka's `SkimpyOffsetMap`): for each record key
//! of the dirty range, the offset of its latest record, in memory bounded by a
//! byte budget the caller gives (`log.cleaner.dedupe.buffer.size` divided by
//! `log.cleaner.threads`).
//!
//! Keys are not stored, only a 128-bit hash of each: XXH3-128 (the `twox-hash`
//! crate). Two keys with the same hash would make the cleaner drop the older
//! one's latest value, so the hash must be wide and well distributed; Kafka
//! uses MD5 for this, which is no stronger against a deliberate collision
//! (chosen-prefix MD5 collisions are practical) and several times slower on
//! short keys. An accidental collision among 2^32 distinct keys has a
//! probability around 2^-65. A deliberate one gives a producer nothing it
//! lacks: whoever can write to the topic can already overwrite any key.
//!
//! Layout: open addressing over a power-of-two number of slots (the largest
//! that fits the budget at 24 bytes a slot: a 16-byte hash and an 8-byte
//! offset), double hashing from the two halves of the hash, and a load limit
//! of [`LOAD_FACTOR`] (Kafka's `log.cleaner.io.buffer.load.factor` default):
//! past it, a new key is refused ([`Full`]) and the pass stops mapping at the
//! previous segment boundary.

/// The fraction of slots that may hold keys.
pub const LOAD_FACTOR: f64 = 0.9;

/// Bytes per slot: the key hash and the offset.
pub const BYTES_PER_ENTRY: usize = 16 + 8;

/// The map holds [`OffsetMap::capacity`] keys and this one is new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Latest offset per key hash, in a fixed amount of memory. Reused across
/// passes: [`OffsetMap::clear`] keeps the allocation.
pub struct OffsetMap {
    hashes: Vec<u128>,
    /// `EMPTY` marks a free slot (offsets are never negative).
    offsets: Vec<i64>,
    len: usize,
    capacity: usize,
}

const EMPTY: i64 = -1;

/// The map's key hash of `key` (XXH3-128, seed 0).
pub fn key_hash(key: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(key)
}

impl OffsetMap {
    /// A map using at most `memory_bytes` (at least 2 slots). Allocates and
    /// zeroes it now, so a broker finds out at startup that the budget fits.
    pub fn with_memory(memory_bytes: usize) -> OffsetMap {
        let fit = (memory_bytes / BYTES_PER_ENTRY).max(2);
        // The largest power of two <= fit.
        let slots = 1usize << (usize::BITS - 1 - fit.leading_zeros());
        let capacity = ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1);
        OffsetMap {
            hashes: vec![0; slots],
            offsets: vec![EMPTY; slots],
            len: 0,
            capacity,
        }
    }

    /// How many distinct keys fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many distinct keys it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes it allocated.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.len() * BYTES_PER_ENTRY
    }

    /// Forgets every key; keeps the memory.
    pub fn clear(&mut self) {
        self.offsets.fill(EMPTY);
        self.len = 0;
    }

    /// Records `offset` (>= 0) as the latest for `key` unless a later one is
    /// already recorded. `Err(Full)` (and no change) if `key` is new and the
    /// map is at capacity.
    pub fn put(&mut self, key: &[u8], offset: i64) -> Result<(), Full> {
        self.put_hash(key_hash(key), offset)
    }

    pub(crate) fn put_hash(&mut self, hash: u128, offset: i64) -> Result<(), Full> {
        let slot = self.find(hash);
        if self.offsets[slot] == EMPTY {
            if self.len >= self.capacity {
                return Err(Full);
            }
            self.hashes[slot] = hash;
            self.offsets[slot] = offset;
            self.len += 1;
        } else if offset > self.offsets[slot] {
            self.offsets[slot] = offset;
        }
        Ok(())
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.get_hash(key_hash(key))
    }

    pub(crate) fn get_hash(&self, hash: u128) -> Option<i64> {
        let offset = self.offsets[self.find(hash)];
        (offset != EMPTY).then_some(offset)
    }

    /// The slot holding `hash`, or the free slot where it would go. Terminates
    /// because at least one slot is always free (capacity < slots) and an odd
    /// step visits every slot of a power-of-two table.
    fn find(&self, hash: u128) -> usize {
        let mask = self.hashes.len() - 1;
        let mut slot = (hash as u64 as usize) & mask;
        let step = ((hash >> 64) as u64 as usize) | 1;
        loop {
            if self.offsets[slot] == EMPTY || self.hashes[slot] == hash {
                return slot;
            }
            slot = slot.wrapping_add(step) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_follows_the_budget_and_the_load_factor() {
        let map = OffsetMap::with_memory(1000 * BYTES_PER_ENTRY);
        // 512 slots fit 1000 entries' bytes; 90% of them hold keys.
        assert_eq!(map.memory_bytes(), 512 * BYTES_PER_ENTRY);
        assert_eq!(map.capacity(), 460);
        let tiny = OffsetMap::with_memory(0);
        assert_eq!(
            (tiny.memory_bytes(), tiny.capacity()),
            (2 * BYTES_PER_ENTRY, 1)
        );
    }

    #[test]
    fn latest_offset_wins_and_full_refuses_only_new_keys() {
        let mut map = OffsetMap::with_memory(16 * BYTES_PER_ENTRY);
        let cap = map.capacity();
        assert_eq!(cap, 14);
        for i in 0..cap {
            map.put(format!("k{i}").as_bytes(), i as i64).unwrap();
        }
        assert_eq!(map.put(b"new", 99), Err(Full));
        assert_eq!(map.get(b"new"), None);
        // Existing keys still take later offsets, never earlier ones.
        map.put(b"k3", 50).unwrap();
        map.put(b"k3", 40).unwrap();
        assert_eq!(map.get(b"k3"), Some(50));
        assert_eq!(map.len(), cap);
        for i in (0..cap).filter(|&i| i != 3) {
            assert_eq!(map.get(format!("k{i}").as_bytes()), Some(i as i64));
        }
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.get(b"k3"), None);
        map.put(b"new", 7).unwrap();
        assert_eq!(map.get(b"new"), Some(7));
    }

    #[test]
    fn colliding_slots_probe_on() {
        // Same slot, different hashes: both are kept and found.
        let mut map = OffsetMap::with_memory(8 * BYTES_PER_ENTRY);
        let a = 5u128;
        let b = (1u128 << 64) | 5 | (8 << 3);
        map.put_hash(a, 1).unwrap();
        map.put_hash(b, 2).unwrap();
        assert_eq!((map.get_hash(a), map.get_hash(b)), (Some(1), Some(2)));
        assert_eq!(map.get_hash(13), None);
    }
}
