//! Zero-copy view of Kafka record batches, format v2 (magic 2).
//!
//! Owns: parsing the 61-byte batch header, validating whole batches as a client
//! sent them (length bounds, magic, CRC32C, record count, size limit; on
//! produce also no delete horizon and, for a compacted topic, a key on every
//! record) or as a log stores them, and the few in-place rewrites a broker
//! makes (base offset, partition leader epoch, LogAppendTime). It decodes no
//! values or headers (keys only to see that they are there) and never
//! allocates per record. It never panics, whatever the input.
//!
//! Depends on nothing else in this crate (a compacted topic's compressed
//! batches are decompressed by a function the caller passes); `segment`,
//! `recovery` and `log` use it.
//!
//! Layout of a batch (all big-endian; positions from the start of the batch):
//!
//! ```text
//!  0 baseOffset i64        12 partitionLeaderEpoch i32   16 magic i8
//! 17 crc u32 (CRC32C of bytes 21..end)                   21 attributes i16
//! 23 lastOffsetDelta i32   27 baseTimestamp i64          35 maxTimestamp i64
//! 43 producerId i64        51 producerEpoch i16          53 baseSequence i32
//! 57 recordsCount i32      61 records...
//! ```
//! `batchLength` (bytes 8..12) counts the bytes after itself, so a batch occupies
//! `12 + batchLength` bytes.

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// The smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// Attribute bits holding the compression codec (0 = none).
pub const COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit set when timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit of a transactional batch.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit of a control batch (transaction markers).
pub const CONTROL_BIT: i16 = 0x20;
/// Attribute bit set by the log cleaner (KIP-534) when `baseTimestamp` holds the
/// batch's delete horizon: its tombstones may go once that time has passed.
pub const DELETE_HORIZON_BIT: i16 = 0x40;

const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
pub(crate) const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORDS_COUNT_AT: usize = 57;

/// Why a buffer of batches was rejected. Each variant maps to one Kafka error
/// code (chosen by the server, not here):
/// `TooLarge` -> MESSAGE_TOO_LARGE, `Corrupt` -> CORRUPT_MESSAGE,
/// `Invalid` and `MissingKey` -> INVALID_RECORD, `InvalidTimestamp` -> INVALID_TIMESTAMP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record batch of {size} bytes exceeds max.message.bytes={max}; raise the topic's max.message.bytes or send smaller batches")]
    TooLarge { size: usize, max: usize },
    #[error("corrupt record batch at byte {position} of the buffer: {reason}")]
    Corrupt { position: usize, reason: String },
    #[error("invalid record batch at byte {position} of the buffer: {reason}")]
    Invalid { position: usize, reason: String },
    /// Kafka's "Compacted topic cannot accept message without key".
    #[error("record {record} of the batch at byte {position} of the buffer has no key: a compacted topic (cleanup.policy=compact) cannot accept a record without a key; give every record a key, or produce to a topic without compaction")]
    MissingKey { position: usize, record: i32 },
    /// Kafka's InvalidTimestampException (`message.timestamp.difference.max.ms`).
    #[error("record {record} of the batch at byte {position} of the buffer has timestamp {timestamp}, more than message.timestamp.difference.max.ms={max_diff} from the broker's clock ({now}); fix the producer's clock or timestamps, or raise the topic's setting")]
    InvalidTimestamp {
        position: usize,
        record: i32,
        timestamp: i64,
        now: i64,
        max_diff: i64,
    },
}

impl RecordError {
    pub fn is_too_large(&self) -> bool {
        matches!(self, RecordError::TooLarge { .. })
    }
    pub fn is_corrupt(&self) -> bool {
        matches!(self, RecordError::Corrupt { .. })
    }
    pub fn is_invalid(&self) -> bool {
        matches!(self, RecordError::Invalid { .. })
    }
    pub fn is_missing_key(&self) -> bool {
        matches!(self, RecordError::MissingKey { .. })
    }
}

fn corrupt(position: usize, reason: impl Into<String>) -> RecordError {
    RecordError::Corrupt {
        position,
        reason: reason.into(),
    }
}

fn invalid(position: usize, reason: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        position,
        reason: reason.into(),
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fixed header of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`; `None` if `buf` is shorter than
    /// [`HEADER_LEN`]. No field is checked.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_AT),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, PRODUCER_ID_AT),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_AT),
            base_sequence: be_i32(buf, BASE_SEQUENCE_AT),
            records_count: be_i32(buf, RECORDS_COUNT_AT),
        })
    }

    /// Total bytes of the batch on the wire (`12 + batchLength`), or `None` if the
    /// length field is below the legal minimum.
    pub fn size(&self) -> Option<usize> {
        batch_size(self.batch_length)
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// Total size of a batch from its `batchLength` field; `None` if below minimum.
pub fn batch_size(batch_length: i32) -> Option<usize> {
    if batch_length < MIN_BATCH_LENGTH {
        return None;
    }
    Some(LOG_OVERHEAD + batch_length as usize)
}

/// Reads `batchLength` from the first 12 bytes of `buf` and returns the batch's
/// total size; `None` if `buf` is shorter than 12 bytes or the length is illegal.
pub fn batch_size_at(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    batch_size(be_i32(buf, 8))
}

/// The whole batches at the start of `buf`, back to back, found by their length fields
/// alone (nothing else is checked): `(position, header, bytes)`. Stops at the first batch
/// that is not whole, leaving the rest for validation to name.
pub fn whole_batches(buf: &[u8]) -> impl Iterator<Item = (usize, BatchHeader, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = buf.get(pos..)?;
        let header = BatchHeader::parse(rest)?;
        let bytes = rest.get(..batch_size_at(rest)?)?;
        let at = pos;
        pos += bytes.len();
        Some((at, header, bytes))
    })
}

/// What [`validate_batches`] learned about one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub attributes: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// Byte position of the batch in the validated buffer.
    pub position: usize,
    /// Total bytes of the batch.
    pub len: usize,
}

impl BatchInfo {
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.position..self.position + self.len
    }
}

/// Validates a buffer of one or more concatenated v2 batches, as a producer sends
/// them. The buffer must hold whole batches only (no trailing bytes), and at least
/// one batch. Each batch is checked for: length bounds, size <= `max_batch_bytes`,
/// magic 2, CRC32C, `recordsCount == lastOffsetDelta + 1 > 0`, and for uncompressed
/// batches that the records' length prefixes account for exactly `recordsCount`
/// records filling the batch. What only a leader's append adds is
/// [`validate_produced`]'s.
pub fn validate_batches(buf: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchInfo>, RecordError> {
    validate_all(buf, |batch, pos| {
        validate_batch(batch, pos, max_batch_bytes)
    })
}

/// Decompresses a batch's records section: `(codec, compressed) -> records`
/// (the codec is the attributes' low three bits, never 0).
pub type Decompress<'a> = &'a dyn Fn(i16, &[u8]) -> Result<Vec<u8>, String>;

/// [`validate_batches`] plus what a leader checks of a Produce: no batch may
/// carry the delete-horizon attribute (only the log cleaner sets it), and if
/// `require_keys` is given (the topic is compacted) every record of every
/// non-control batch must have a key ([`RecordError::MissingKey`] otherwise).
/// Keys of uncompressed batches are read during the walk over the record
/// lengths; compressed records sections are decompressed with `require_keys`
/// and walked the same way. Without `require_keys` this costs what
/// `validate_batches` costs.
pub fn validate_produced(
    buf: &[u8],
    max_batch_bytes: usize,
    require_keys: Option<Decompress<'_>>,
) -> Result<Vec<BatchInfo>, RecordError> {
    let mode = Mode::Produced { require_keys };
    validate_all(buf, |batch, pos| {
        check_batch(batch, pos, max_batch_bytes, &mode)
    })
}

fn validate_all(
    buf: &[u8],
    mut check: impl FnMut(&[u8], usize) -> Result<BatchInfo, RecordError>,
) -> Result<Vec<BatchInfo>, RecordError> {
    if buf.is_empty() {
        return Err(invalid(0, "no record batches in the request"));
    }
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let size = checked_size(rest, pos)?;
        batches.push(check(&rest[..size], pos)?);
        pos += size;
    }
    Ok(batches)
}

/// Which rules [`check_batch`] applies beyond the framing.
enum Mode<'a> {
    /// As a client sent it, framing only.
    Client,
    /// A leader's append: no delete horizon, keys if required.
    Produced {
        require_keys: Option<Decompress<'a>>,
    },
    /// As a log stores it: compacted batches allowed.
    Stored,
}

/// Checks the length field of the batch at the start of `rest` (found at
/// `position` of a larger buffer) and that the whole batch is present.
fn checked_size(rest: &[u8], position: usize) -> Result<usize, RecordError> {
    if rest.len() < LOG_OVERHEAD {
        return Err(corrupt(
            position,
            format!(
                "{} trailing bytes are too few for a batch header",
                rest.len()
            ),
        ));
    }
    let length = be_i32(rest, 8);
    let size = batch_size(length).ok_or_else(|| {
        corrupt(
            position,
            format!("batchLength {length} is below the minimum {MIN_BATCH_LENGTH}"),
        )
    })?;
    if size > rest.len() {
        return Err(corrupt(
            position,
            format!(
                "batch declares {size} bytes but only {} remain (truncated)",
                rest.len()
            ),
        ));
    }
    Ok(size)
}

/// Validates exactly one batch: `batch` must be the whole batch (its length field
/// is checked against `batch.len()`). `position` is only used in errors and
/// stored in the returned [`BatchInfo`].
pub fn validate_batch(
    batch: &[u8],
    position: usize,
    max_batch_bytes: usize,
) -> Result<BatchInfo, RecordError> {
    check_batch(batch, position, max_batch_bytes, &Mode::Client)
}

/// [`validate_batches`] for batches as a log stores them (recovery, replication),
/// which the log cleaner may have compacted: as Kafka, a compacted batch keeps
/// its base offset and `lastOffsetDelta` but holds fewer records
/// (`0 <= recordsCount <= lastOffsetDelta + 1`; an empty batch only keeps the
/// header of a producer's last batch). No size limit.
pub fn validate_stored_batches(buf: &[u8]) -> Result<Vec<BatchInfo>, RecordError> {
    validate_all(buf, validate_stored_batch)
}

/// [`validate_batch`] for one batch as stored in a log (see
/// [`validate_stored_batches`]).
pub fn validate_stored_batch(batch: &[u8], position: usize) -> Result<BatchInfo, RecordError> {
    check_batch(batch, position, usize::MAX, &Mode::Stored)
}

fn check_batch(
    batch: &[u8],
    position: usize,
    max_batch_bytes: usize,
    mode: &Mode<'_>,
) -> Result<BatchInfo, RecordError> {
    let size = checked_size(batch, position)?;
    if size != batch.len() {
        return Err(corrupt(
            position,
            format!("batch declares {size} bytes but {} were given", batch.len()),
        ));
    }
    if size > max_batch_bytes {
        return Err(RecordError::TooLarge {
            size,
            max: max_batch_bytes,
        });
    }
    // size >= HEADER_LEN is guaranteed by the minimum batchLength.
    let header = BatchHeader::parse(batch)
        .ok_or_else(|| corrupt(position, "batch shorter than its header"))?;
    if header.magic != 2 {
        return Err(invalid(
            position,
            format!("magic {} is not supported (only v2 batches)", header.magic),
        ));
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    if computed != header.crc {
        return Err(corrupt(
            position,
            format!(
                "CRC32C mismatch: header says {:#010x}, data gives {computed:#010x}",
                header.crc
            ),
        ));
    }
    let span = i64::from(header.last_offset_delta) + 1;
    let count = i64::from(header.records_count);
    if matches!(mode, Mode::Stored) {
        if header.last_offset_delta < 0 || count < 0 || count > span {
            return Err(invalid(
                position,
                format!(
                    "recordsCount {} does not fit lastOffsetDelta {}",
                    header.records_count, header.last_offset_delta
                ),
            ));
        }
    } else if header.records_count <= 0 {
        return Err(invalid(
            position,
            format!("recordsCount {} must be positive", header.records_count),
        ));
    } else if header.last_offset_delta < 0 || count != span {
        return Err(invalid(
            position,
            format!(
                "recordsCount {} does not match lastOffsetDelta {} + 1",
                header.records_count, header.last_offset_delta
            ),
        ));
    }
    let mut require_keys = None;
    if let Mode::Produced { require_keys: keys } = mode {
        if header.attributes & DELETE_HORIZON_BIT != 0 {
            return Err(invalid(
                position,
                "attribute bit 6 (delete horizon, KIP-534) is set: only the log cleaner sets it",
            ));
        }
        // Control batches (transaction markers) have keys of their own schema
        // and are never compacted away by key.
        if header.attributes & CONTROL_BIT == 0 {
            require_keys = *keys;
        }
    }
    let codec = header.attributes & COMPRESSION_MASK;
    let records = &batch[HEADER_LEN..];
    match (codec, require_keys) {
        (0, keys) => walk_records(records, header.records_count, position, keys.is_some())?,
        (_, Some(decompress)) => {
            let records = decompress(codec, records)
                .map_err(|e| corrupt(position, format!("the records do not decompress: {e}")))?;
            walk_records(&records, header.records_count, position, true)?;
        }
        (_, None) => {}
    }
    Ok(BatchInfo {
        base_offset: header.base_offset,
        last_offset_delta: header.last_offset_delta,
        records_count: header.records_count,
        base_timestamp: header.base_timestamp,
        max_timestamp: header.max_timestamp,
        attributes: header.attributes,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
        position,
        len: size,
    })
}

/// Follows the length prefix of each record of a records section (an
/// uncompressed batch's, or a compressed one's once decompressed), checking
/// that there are exactly `count` records and that they fill the section; with
/// `keys`, also that every record has a key (its key length is not -1).
fn walk_records(
    records: &[u8],
    count: i32,
    position: usize,
    keys: bool,
) -> Result<(), RecordError> {
    let mut pos = 0;
    for i in 0..count {
        if pos >= records.len() {
            return Err(invalid(
                position,
                format!("batch declares {count} records but holds only {i}"),
            ));
        }
        let length = read_varint(records, &mut pos).ok_or_else(|| {
            corrupt(
                position,
                format!("record {i} has a malformed length varint"),
            )
        })?;
        if length < 0 {
            return Err(invalid(
                position,
                format!("record {i} has negative length {length}"),
            ));
        }
        let end = pos.saturating_add(length as usize);
        if end > records.len() {
            return Err(invalid(
                position,
                format!("record {i} of length {length} runs past the end of the batch"),
            ));
        }
        if keys && !has_key(&records[pos..end], i, position)? {
            return Err(RecordError::MissingKey {
                position,
                record: i,
            });
        }
        pos = end;
    }
    if pos != records.len() {
        return Err(invalid(
            position,
            format!(
                "{} bytes remain after the declared {count} records",
                records.len() - pos
            ),
        ));
    }
    Ok(())
}

/// Whether a record (the bytes after its length) has a key: it starts with
/// attributes (1 byte), timestampDelta (varlong), offsetDelta (varint), then
/// the key length (varint, -1 for null).
fn has_key(record: &[u8], i: i32, position: usize) -> Result<bool, RecordError> {
    let malformed = || invalid(position, format!("record {i} is too short for its key"));
    let mut pos = 1;
    skip_varint(record, &mut pos, 10).ok_or_else(malformed)?;
    skip_varint(record, &mut pos, 5).ok_or_else(malformed)?;
    match read_varint(record, &mut pos).ok_or_else(malformed)? {
        -1 => Ok(false),
        n if n < 0 => Err(invalid(position, format!("record {i} has key length {n}"))),
        _ => Ok(true),
    }
}

/// Steps over a varint of at most `max` bytes.
fn skip_varint(buf: &[u8], pos: &mut usize, max: usize) -> Option<()> {
    for _ in 0..max {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if byte & 0x80 == 0 {
            return Some(());
        }
    }
    None
}

/// Reads a zigzag-encoded varint (at most 5 bytes) as Kafka writes record lengths.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let mut raw: u32 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        if shift == 28 && byte & 0xf0 != 0 {
            return None;
        }
        raw |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    Some(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Computes the CRC32C a v2 batch should carry (over attributes..end).
/// Returns 0 for slices shorter than a header.
pub fn compute_crc(batch: &[u8]) -> u32 {
    match batch.get(ATTRIBUTES_AT..) {
        Some(covered) if batch.len() >= HEADER_LEN => crc32c::crc32c(covered),
        _ => 0,
    }
}

/// Rewrites baseOffset in place; the CRC does not cover it. Slices shorter than a
/// header are left untouched (callers pass validated batches).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= HEADER_LEN {
        batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites partitionLeaderEpoch in place; the CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if batch.len() >= HEADER_LEN {
        batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Marks the batch as LogAppendTime: sets attribute bit 3, sets maxTimestamp to
/// `now_ms` and recomputes the CRC. As in Kafka, baseTimestamp and the record
/// timestamp deltas are left alone: consumers take maxTimestamp as the timestamp
/// of every record of a LogAppendTime batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_LEN {
        return;
    }
    set_log_append_time_fields(batch, now_ms);
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The header fields of [`set_log_append_time`] without the CRC (`batch` holds at
/// least the header).
pub(crate) fn set_log_append_time_fields(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
}

/// A tiny v2 batch builder for tests (uncompressed, no headers).
#[cfg(test)]
pub(crate) mod testing {
    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// Builds a batch holding `values` (one record each), with timestamps
    /// `base_ts + i`.
    pub fn batch(base_offset: i64, base_ts: i64, values: &[&[u8]]) -> Vec<u8> {
        assert!(!values.is_empty());
        let mut records = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut body = vec![0u8]; // attributes
            put_varint(&mut body, i as i64); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            put_varint(&mut body, -1); // null key
            put_varint(&mut body, v.len() as i64);
            body.extend_from_slice(v);
            put_varint(&mut body, 0); // no headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let n = values.len() as i32;
        let mut b = Vec::with_capacity(61 + records.len());
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&base_ts.to_be_bytes());
        b.extend_from_slice(&(base_ts + i64::from(n) - 1).to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = super::compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch of `n` records of `size` bytes each.
    pub fn batch_n(base_ts: i64, n: usize, size: usize) -> Vec<u8> {
        let value = vec![b'x'; size];
        let values: Vec<&[u8]> = (0..n).map(|_| value.as_slice()).collect();
        batch(0, base_ts, &values)
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
