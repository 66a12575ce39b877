//! One batch through the cleaner: its records decoded (after decompression),
//! the keys handed to the offset map, and the batch kept as it is, rewritten
//! with fewer records, reduced to an empty header, or dropped.
//!
//! A rewritten batch keeps, as Kafka's `MemoryRecords.filterTo` does, its base
//! offset and `lastOffsetDelta` (so the last sequence number of its producer is
//! unchanged), producer id, epoch and base sequence, partition leader epoch,
//! timestamp type, transactional and control flags, and codec (the kept records
//! are compressed again with it). Records are copied byte for byte (key, value,
//! headers, offset delta); only when the cleaner sets the batch's delete
//! horizon (KIP-534: `baseTimestamp` becomes the horizon and attribute bit 6 is
//! set) are their timestamp deltas re-encoded against it, so each record's
//! timestamp stays the same. `maxTimestamp` becomes the largest kept timestamp
//! (CreateTime) or stays (LogAppendTime). Everything is checked: the batch CRC
//! on input, the output through the same validation recovery applies.
//!
//! A batch whose records do not decode (bad compressed data a producer sent, a
//! record count or offset deltas that do not add up) is "opaque": none of its
//! keys go to the map and it is kept unchanged. That is always safe: it can
//! only keep records the cleaner could have removed.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::control;
use crate::record::{self, BatchHeader, HEADER_LEN};

use super::compression;
use super::offset_map::{self, OffsetMap};
use super::txn::TxnTracker;

/// A record of a decoded batch, borrowed from its (decompressed) records.
pub(crate) struct Record<'a> {
    pub offset: i64,
    /// The record's timestamp (LogAppendTime: the batch's maxTimestamp).
    pub timestamp: i64,
    /// `baseTimestamp + timestampDelta`, what the bytes say whatever the type.
    raw_timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub has_value: bool,
    /// The whole record after its length prefix.
    body: &'a [u8],
    /// Where the offset delta starts in `body` (after attributes and timestamp delta).
    after_timestamp: usize,
}

/// A batch's header and its records section, decompressed.
pub(crate) struct Decoded {
    pub header: BatchHeader,
    records: Vec<u8>,
}

impl Decoded {
    /// The batch's records, or `None` if they do not decode (an opaque batch).
    pub fn records(&self) -> Option<Vec<Record<'_>>> {
        parse_records(&self.header, &self.records).ok()
    }
}

/// Decodes `batch`, a whole batch read from a segment, whose CRC was checked.
/// `Err` names why its records section could not be decompressed (opaque).
pub(crate) fn decode(batch: &[u8]) -> Result<Decoded, String> {
    let header = BatchHeader::parse(batch).ok_or("batch shorter than its header")?;
    let section = &batch[HEADER_LEN..];
    let codec = header.attributes & record::COMPRESSION_MASK;
    let records = match codec {
        0 => section.to_vec(),
        _ => compression::decompress(codec, section)?,
    };
    Ok(Decoded { header, records })
}

/// Whether the cleaner treats the batch's records at all when it does not
/// know the aborted transactions (no [`TxnTracker`]): control batches
/// (transaction markers) and transactional batches are then kept whole and
/// never mapped. With a tracker, every data batch is (aborted ones go whole,
/// committed ones are filtered like any other) and markers follow `txn.rs`.
pub(crate) fn is_cleanable(header: &BatchHeader, txns: bool) -> bool {
    let whole = if txns {
        record::CONTROL_BIT
    } else {
        record::CONTROL_BIT | record::TRANSACTIONAL_BIT
    };
    header.attributes & whole == 0
}

/// How mapping one batch went.
pub(crate) enum MapOutcome {
    /// Every key of its records at or above `from` is in the map (or the batch
    /// holds none the cleaner maps: control, transactional, below `from`).
    Done,
    /// Its records do not decode: none of its keys are mapped (the caller warns).
    Opaque(String),
    /// The map was full at the record with this offset: records from it on are
    /// not mapped.
    FullAt(i64),
}

/// Puts the key of every record at or above `from` of `batch` (whole, CRC
/// checked, header `h`) into `map`, as a pass maps its dirty range. With
/// `txns` (fed every batch in order), records of aborted transactions are not
/// mapped and committed transactional records are.
pub(crate) fn map_batch(
    map: &mut OffsetMap,
    batch: &[u8],
    h: &BatchHeader,
    from: i64,
    txns: Option<&mut TxnTracker>,
) -> MapOutcome {
    let tracked = txns.is_some();
    if let Some(t) = txns {
        let aborted = if h.attributes & record::CONTROL_BIT != 0 {
            t.on_control(h, control::read_marker(h, batch));
            false
        } else {
            t.on_data(h)
        };
        if aborted {
            return MapOutcome::Done;
        }
    }
    if h.last_offset() < from || !is_cleanable(h, tracked) {
        return MapOutcome::Done;
    }
    let decoded = match decode(batch) {
        Ok(d) => d,
        Err(why) => return MapOutcome::Opaque(why),
    };
    let Some(records) = decoded.records() else {
        return MapOutcome::Opaque("records do not decode".into());
    };
    for r in records.iter().filter(|r| r.offset >= from) {
        let Some(key) = r.key else { continue };
        if map.put_hash(offset_map::key_hash(key), r.offset).is_err() {
            return MapOutcome::FullAt(r.offset);
        }
    }
    MapOutcome::Done
}

/// What the cleaner does with one batch.
pub(crate) enum Verdict {
    /// Write the original bytes.
    Keep,
    /// Write these bytes instead.
    Rewrite(Vec<u8>),
    /// Write nothing.
    Drop,
}

/// What a pass knows when it filters a batch.
pub(crate) struct Filter<'a> {
    pub map: &'a OffsetMap,
    /// Records at or above this offset were not mapped (the map filled up in
    /// the middle of a segment): they are kept as they are, as in Kafka.
    pub map_end: i64,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Producer id -> last offset of its last batch, as the producer state
    /// had it when the pass started: that batch keeps at least its header.
    pub last_batch_of_producer: &'a HashMap<i64, i64>,
    /// Tombstones that are their key's latest record stay, and no delete
    /// horizon is set (see [`super::CleanParams::keep_tombstones`]).
    pub keep_tombstones: bool,
    /// The last offset of the log's last batch, which keeps at least its
    /// header: a gap at the very end of a log could not be crossed (no later
    /// batch tells a reader where offsets go on), and a consumer between the
    /// last record and the log end would fetch nothing forever.
    pub last_batch_of_log: Option<i64>,
    /// The aborted transactions of the rewritten range, fed every batch in
    /// order: with it, aborted records and markers no longer needed go (see
    /// `txn.rs`); without it, transactional and control batches stay whole.
    pub txns: Option<RefCell<TxnTracker>>,
}

/// Per-batch counts, added into the pass's statistics.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub records_read: u64,
    pub records_kept: u64,
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    pub emptied_batches: u64,
    pub horizons_set: u64,
    /// Records of aborted transactions removed, and marker batches removed.
    pub aborted_removed: u64,
    pub markers_removed: u64,
    /// The earliest delete horizon of a batch kept with a tombstone: when a
    /// later pass could remove one.
    pub next_horizon: Option<i64>,
}

impl Filter<'_> {
    /// The verdict on `decoded` (the decode of `original`).
    pub fn apply(
        &self,
        original: &[u8],
        decoded: &Decoded,
        counts: &mut Counts,
    ) -> Result<Verdict, String> {
        let h = &decoded.header;
        let n = u64::try_from(h.records_count).unwrap_or(0);
        counts.records_read += n;
        let records = match decoded.records() {
            Some(records) if is_cleanable(h, self.txns.is_some()) => records,
            _ => {
                counts.records_kept += n;
                return Ok(Verdict::Keep);
            }
        };
        let horizon = (h.attributes & record::DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp);
        let tombstones_go = !self.keep_tombstones && horizon.is_some_and(|at| self.now_ms >= at);
        let mut kept = Vec::with_capacity(records.len());
        let mut kept_tombstone = false;
        for r in &records {
            if r.offset >= self.map_end {
                kept.push(r);
                continue;
            }
            let Some(key) = r.key else {
                // Kafka's cleaner drops keyless records: a compacted topic
                // cannot hold them (they predate a switch from delete).
                counts.keyless_removed += 1;
                continue;
            };
            let latest = r.offset >= self.map.get_hash(offset_map::key_hash(key)).unwrap_or(-1);
            if !latest {
                continue;
            }
            if !r.has_value && tombstones_go {
                counts.tombstones_removed += 1;
                continue;
            }
            kept_tombstone |= !r.has_value;
            kept.push(r);
        }
        counts.records_kept += kept.len() as u64;
        let set_horizon = !self.keep_tombstones && kept_tombstone && horizon.is_none();
        let new_horizon =
            set_horizon.then(|| self.now_ms.saturating_add(self.delete_retention_ms.max(0)));
        if kept_tombstone {
            if let Some(at) = new_horizon.or(horizon) {
                counts.next_horizon = Some(counts.next_horizon.map_or(at, |n| n.min(at)));
            }
        }
        if kept.len() == records.len() && !set_horizon {
            return Ok(Verdict::Keep);
        }
        if kept.is_empty() {
            return Ok(self.emptied_or_dropped(h, counts));
        }
        if set_horizon {
            counts.horizons_set += 1;
        }
        let rebuilt = rebuild(h, &kept, new_horizon)?;
        // The same check recovery makes: a bug here must not reach the log.
        record::validate_stored_batch(&rebuilt, 0).map_err(|e| {
            format!(
                "rewritten batch from {} bytes is invalid: {e}",
                original.len()
            )
        })?;
        Ok(Verdict::Rewrite(rebuilt))
    }
}

impl Filter<'_> {
    /// A batch left without records: its header stays if it is its
    /// producer's last batch or the log's last, else it goes.
    fn emptied_or_dropped(&self, h: &BatchHeader, counts: &mut Counts) -> Verdict {
        if self.keeps_header(h) {
            counts.emptied_batches += 1;
            return Verdict::Rewrite(empty_batch(h));
        }
        Verdict::Drop
    }

    fn keeps_header(&self, h: &BatchHeader) -> bool {
        let last = self.last_batch_of_producer.get(&h.producer_id);
        let producers_last = h.producer_id >= 0 && last == Some(&h.last_offset());
        producers_last || self.last_batch_of_log == Some(h.last_offset())
    }

    /// The verdict on a transactional or control batch when the pass knows
    /// the aborted transactions; `None` for a batch filtered record by record
    /// (not transactional, or of a committed transaction).
    fn txn_verdict(
        &self,
        batch: &[u8],
        h: &BatchHeader,
        counts: &mut Counts,
    ) -> Result<Option<Verdict>, String> {
        let Some(txns) = &self.txns else {
            return Ok(None);
        };
        let n = u64::try_from(h.records_count).unwrap_or(0);
        if h.attributes & record::CONTROL_BIT != 0 {
            let discardable = txns
                .borrow_mut()
                .on_control(h, control::read_marker(h, batch));
            counts.records_read += n;
            return self.marker_verdict(batch, h, discardable, counts).map(Some);
        }
        if !txns.borrow_mut().on_data(h) {
            return Ok(None);
        }
        counts.records_read += n;
        counts.aborted_removed += n;
        if n == 0 && self.keeps_header(h) {
            // Emptied by an earlier pass and still its producer's last batch.
            return Ok(Some(Verdict::Keep));
        }
        Ok(Some(self.emptied_or_dropped(h, counts)))
    }

    /// A marker: kept while needed; once discardable, its batch gets a delete
    /// horizon, and a pass after the horizon removes it (keeping the header if
    /// it may carry its producer's latest epoch, or is the log's last batch).
    fn marker_verdict(
        &self,
        batch: &[u8],
        h: &BatchHeader,
        discardable: bool,
        counts: &mut Counts,
    ) -> Result<Verdict, String> {
        let n = u64::try_from(h.records_count).unwrap_or(0);
        let horizon = (h.attributes & record::DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp);
        let goes = horizon.is_some_and(|at| self.now_ms >= at) || n == 0;
        if !discardable || (!goes && horizon.is_some()) {
            if let (true, Some(at)) = (discardable, horizon) {
                counts.next_horizon = Some(counts.next_horizon.map_or(at, |x| x.min(at)));
            }
            counts.records_kept += n;
            return Ok(Verdict::Keep);
        }
        if goes {
            // A producer whose last data batch is below this marker may have
            // this marker as the record of its latest epoch (Kafka keeps it).
            let after_last_data = h.producer_id >= 0
                && self
                    .last_batch_of_producer
                    .get(&h.producer_id)
                    .is_some_and(|last| *last < h.base_offset);
            if after_last_data || self.last_batch_of_log == Some(h.last_offset()) {
                if n == 0 {
                    return Ok(Verdict::Keep);
                }
                counts.markers_removed += 1;
                counts.emptied_batches += 1;
                return Ok(Verdict::Rewrite(empty_batch(h)));
            }
            counts.markers_removed += 1;
            return Ok(Verdict::Drop);
        }
        // Control batches are never compressed and a discardable one parsed as
        // a marker, so this decodes; if not, the marker simply stays.
        let Ok(decoded) = decode(batch) else {
            counts.records_kept += n;
            return Ok(Verdict::Keep);
        };
        let Some(records) = decoded.records() else {
            counts.records_kept += n;
            return Ok(Verdict::Keep);
        };
        let refs: Vec<&Record<'_>> = records.iter().collect();
        let at = self.now_ms.saturating_add(self.delete_retention_ms.max(0));
        let rebuilt = rebuild(h, &refs, Some(at))?;
        record::validate_stored_batch(&rebuilt, 0)
            .map_err(|e| format!("marker with a delete horizon is invalid: {e}"))?;
        counts.records_kept += n;
        counts.horizons_set += 1;
        counts.next_horizon = Some(counts.next_horizon.map_or(at, |x| x.min(at)));
        Ok(Verdict::Rewrite(rebuilt))
    }

    /// The verdict on `batch` (whole, CRC checked, header `h`): [`Filter::apply`]
    /// on its records, or `Keep` for an opaque batch, whose reason goes to
    /// `opaque` (every record counted as kept). `Err` only when a rewritten
    /// batch would be invalid.
    pub fn verdict(
        &self,
        batch: &[u8],
        h: &BatchHeader,
        counts: &mut Counts,
        opaque: &mut dyn FnMut(&str),
    ) -> Result<Verdict, String> {
        if let Some(v) = self.txn_verdict(batch, h, counts)? {
            return Ok(v);
        }
        match decode(batch) {
            Ok(decoded) => self.apply(batch, &decoded, counts),
            Err(why) => {
                opaque(&why);
                let n = u64::try_from(h.records_count).unwrap_or(0);
                counts.records_read += n;
                counts.records_kept += n;
                Ok(Verdict::Keep)
            }
        }
    }
}

/// Kafka's `writeEmptyHeader`: the header of a batch whose records all went,
/// kept so that its producer's last sequence and epoch survive.
pub(crate) fn empty_batch(h: &BatchHeader) -> Vec<u8> {
    let attributes = h.attributes
        & (record::TIMESTAMP_TYPE_BIT | record::TRANSACTIONAL_BIT | record::CONTROL_BIT);
    encode(h, attributes, h.max_timestamp, h.max_timestamp, 0, &[])
}

/// The batch `h` with only `kept` (in order), its delete horizon set to
/// `horizon` if given.
fn rebuild(h: &BatchHeader, kept: &[&Record<'_>], horizon: Option<i64>) -> Result<Vec<u8>, String> {
    let base_ts = horizon.unwrap_or(h.base_timestamp);
    let mut section = Vec::with_capacity(kept.iter().map(|r| r.body.len() + 5).sum());
    let mut body = Vec::new();
    for r in kept {
        if base_ts == h.base_timestamp {
            put_varint(&mut section, r.body.len() as i64);
            section.extend_from_slice(r.body);
        } else {
            body.clear();
            body.push(r.body[0]);
            put_varint(&mut body, r.raw_timestamp.wrapping_sub(base_ts));
            body.extend_from_slice(&r.body[r.after_timestamp..]);
            put_varint(&mut section, body.len() as i64);
            section.extend_from_slice(&body);
        }
    }
    let max_ts = if h.attributes & record::TIMESTAMP_TYPE_BIT != 0 {
        h.max_timestamp
    } else {
        kept.iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or(h.max_timestamp)
    };
    let codec = h.attributes & record::COMPRESSION_MASK;
    if codec != 0 {
        section = compression::compress(codec, &section)?;
    }
    let mut attributes = h.attributes;
    if horizon.is_some() {
        attributes |= record::DELETE_HORIZON_BIT;
    }
    Ok(encode(
        h,
        attributes,
        base_ts,
        max_ts,
        kept.len() as i32,
        &section,
    ))
}

/// A v2 batch with `h`'s offsets, producer fields and leader epoch, the given
/// attributes, timestamps, record count and records section; CRC computed.
pub(crate) fn encode(
    h: &BatchHeader,
    attributes: i16,
    base_ts: i64,
    max_ts: i64,
    count: i32,
    section: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + section.len());
    b.extend_from_slice(&h.base_offset.to_be_bytes());
    let length = (HEADER_LEN - record::LOG_OVERHEAD + section.len()) as i32;
    b.extend_from_slice(&length.to_be_bytes());
    b.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // CRC, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&h.producer_id.to_be_bytes());
    b.extend_from_slice(&h.producer_epoch.to_be_bytes());
    b.extend_from_slice(&h.base_sequence.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The records of a batch: exactly `recordsCount` of them filling `section`,
/// offset deltas strictly increasing within `0..=lastOffsetDelta`.
fn parse_records<'a>(h: &BatchHeader, section: &'a [u8]) -> Result<Vec<Record<'a>>, String> {
    let count = usize::try_from(h.records_count).map_err(|_| "negative record count")?;
    let mut records = Vec::with_capacity(count.min(section.len() / 7 + 1));
    let mut pos = 0;
    let mut prev_delta = -1i64;
    let log_append = h.attributes & record::TIMESTAMP_TYPE_BIT != 0;
    for i in 0..count {
        let len =
            read_varint(section, &mut pos).ok_or_else(|| format!("record {i}: bad length"))?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&e| e <= section.len())
            .ok_or_else(|| format!("record {i}: length {len} runs past the records"))?;
        let body = &section[pos..end];
        let r =
            parse_record(body, h, log_append).ok_or_else(|| format!("record {i} is malformed"))?;
        let delta = r.offset - h.base_offset;
        if delta <= prev_delta || delta > i64::from(h.last_offset_delta) {
            return Err(format!("record {i}: offset delta {delta} out of order"));
        }
        prev_delta = delta;
        records.push(r);
        pos = end;
    }
    if pos != section.len() {
        return Err(format!(
            "{} bytes after the last record",
            section.len() - pos
        ));
    }
    Ok(records)
}

fn parse_record<'a>(body: &'a [u8], h: &BatchHeader, log_append: bool) -> Option<Record<'a>> {
    let mut pos = 1; // attributes
    body.first()?;
    let ts_delta = read_varlong(body, &mut pos)?;
    let after_timestamp = pos;
    let offset_delta = read_varint(body, &mut pos)?;
    let key_len = read_varint(body, &mut pos)?;
    let key = match key_len {
        -1 => None,
        n => {
            let end = pos.checked_add(usize::try_from(n).ok()?)?;
            let key = body.get(pos..end)?;
            pos = end;
            Some(key)
        }
    };
    let value_len = read_varint(body, &mut pos)?;
    if value_len < -1 || pos.checked_add(value_len.max(0) as usize)? > body.len() {
        return None;
    }
    let raw_timestamp = h.base_timestamp.wrapping_add(ts_delta);
    Some(Record {
        offset: h.base_offset.checked_add(i64::from(offset_delta))?,
        timestamp: if log_append {
            h.max_timestamp
        } else {
            raw_timestamp
        },
        raw_timestamp,
        key,
        has_value: value_len >= 0,
        body,
        after_timestamp,
    })
}

/// A zigzag varint of at most 5 bytes (Kafka's `varint`).
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let v = read_varlong(buf, pos)?;
    i32::try_from(v).ok()
}

/// A zigzag varint of at most 10 bytes (Kafka's `varlong`).
fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}
