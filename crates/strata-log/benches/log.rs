//! Micro-benchmarks of the segmented log, named for what they measure:
//!
//! - `log_append_1kib`: `Log::append` of one batch of 16 uncompressed 1 KiB
//!   records (validation, offset assignment, copy, `pwrite`, index upkeep) into
//!   a log in a temp dir. No fsync inside the timed region (flush.* = never);
//!   the log is recreated, untimed, every 64 MiB so the bench stays in the page
//!   cache and never rolls.
//! - `log_read_1mib`: `Log::read` of 1 MiB of whole batches from a warm
//!   (page-cached) 64 MiB log, cycling through it.
//! - `validate_batches_16x1kib`: `record::validate_batches` of that batch
//!   (length bounds, magic, CRC32C, per-record length walk).
//! - `log_clean_10k_keys_x10`: one cleaning pass (`Log::clean`, map large
//!   enough for every key) over a log of 10,000 keys written 10 times each in
//!   uncompressed batches of 16 records with 100-byte values (about 15 MB in
//!   1 MiB segments), which keeps one record in ten; throughput is the log's
//!   size before the pass. The log is rebuilt, untimed, before each pass and
//!   is in the page cache (cleaning is CPU-bound there: CRC, record walk, key
//!   hashing, copying, index upkeep, fsync of the output).
//!
//! Batches are built with a small hand-rolled v2 encoder (below) so this crate
//! needs no Kafka client dependency.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_log::{record, Log, LogConfig};

const RECORDS: usize = 16;
const VALUE: usize = 1024;
const RESET_BYTES: u64 = 64 << 20;

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One uncompressed v2 batch of `n` records with null keys and `size`-byte values.
fn batch(n: usize, size: usize) -> Vec<u8> {
    let value = vec![b'x'; size];
    let mut records = Vec::with_capacity(n * (size + 16));
    let mut body = Vec::with_capacity(size + 16);
    for i in 0..n {
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, -1); // null key
        put_varint(&mut body, size as i64);
        body.extend_from_slice(&value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let n = i32::try_from(n).expect("record count fits i32");
    let ts = 1_700_000_000_000i64;
    let mut b = Vec::with_capacity(record::HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let length = record::HEADER_LEN - record::LOG_OVERHEAD + records.len();
    b.extend_from_slice(&i32::try_from(length).expect("batch fits i32").to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(n - 1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&records);
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One uncompressed v2 batch of `keys.len()` records with the given keys and
/// `size`-byte values.
fn keyed_batch(keys: &[Vec<u8>], size: usize) -> Vec<u8> {
    let value = vec![b'v'; size];
    let mut records = Vec::new();
    let mut body = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, 0); // timestamp delta
        put_varint(&mut body, i as i64); // offset delta
        put_varint(&mut body, key.len() as i64);
        body.extend_from_slice(key);
        put_varint(&mut body, size as i64);
        body.extend_from_slice(&value);
        put_varint(&mut body, 0); // no headers
        put_varint(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let mut b = batch(keys.len(), 0);
    b.truncate(record::HEADER_LEN);
    b.extend_from_slice(&records);
    let length = i32::try_from(b.len() - record::LOG_OVERHEAD).expect("batch fits i32");
    b[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = record::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn config() -> LogConfig {
    LogConfig {
        // Never roll or flush inside the timed region.
        segment_bytes: 1 << 30,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Log {
    Log::open(dir.join("bench-0"), config(), 0).expect("open log")
}

fn log_append_1kib(c: &mut Criterion) {
    let batch = batch(RECORDS, VALUE);
    let mut group = c.benchmark_group("log_append_1kib");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("16_records_per_batch", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut tmp = tempfile::tempdir().expect("tempdir");
            let mut log = open(tmp.path());
            for _ in 0..iters {
                if log.size_bytes() >= RESET_BYTES {
                    drop(log);
                    tmp = tempfile::tempdir().expect("tempdir");
                    log = open(tmp.path());
                }
                let start = Instant::now();
                black_box(log.append(black_box(&batch), 0).expect("append"));
                timed += start.elapsed();
            }
            timed
        });
    });
    group.finish();
}

fn log_read_1mib(c: &mut Criterion) {
    let batch = batch(RECORDS, VALUE);
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path());
    while log.size_bytes() < RESET_BYTES {
        log.append(&batch, 0).expect("append");
    }
    let end = log.log_end_offset();
    let per_read = log.read(0, 1 << 20, true).expect("read").len();
    let mut group = c.benchmark_group("log_read_1mib");
    group.throughput(Throughput::Bytes(per_read as u64));
    group.bench_function("page_cache", |b| {
        let mut offset = 0i64;
        b.iter(|| {
            let bytes = log.read(black_box(offset), 1 << 20, true).expect("read");
            // Whole 16-record batches: the next read starts at a batch boundary.
            offset += (bytes.len() / batch.len() * RECORDS) as i64;
            if offset + (per_read / batch.len() * RECORDS) as i64 > end {
                offset = 0;
            }
            bytes
        });
    });
    group.finish();
}

fn validate_batches_16x1kib(c: &mut Criterion) {
    let batch = batch(RECORDS, VALUE);
    let max = LogConfig::default().max_message_bytes;
    let mut group = c.benchmark_group("validate_batches_16x1kib");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("uncompressed", |b| {
        b.iter(|| record::validate_batches(black_box(&batch), max).expect("valid"));
    });
    group.finish();
}

/// `compression.type` on a topic: what rewriting a produced batch into the topic's codec
/// costs, against the validation every produce pays. Values are text-like (letters and
/// digits from a fixed pseudo-random sequence), so codecs do real work.
fn recompress_16x1kib(c: &mut Criterion) {
    let mut plain = batch(RECORDS, VALUE);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let records_at = record::HEADER_LEN;
    for byte in plain[records_at..].iter_mut().filter(|b| **b == b'x') {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = b"abcdefghij0123456789 ,.;"[(x % 24) as usize];
    }
    let crc = record::compute_crc(&plain);
    plain[17..21].copy_from_slice(&crc.to_be_bytes());
    let gzip = strata_log::recompress::recompress(&plain, 1)
        .expect("gzip")
        .expect("rewritten");
    let max = LogConfig::default().max_message_bytes;
    let mut group = c.benchmark_group("recompress_16x1kib");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("validate only (producer)", |b| {
        b.iter(|| record::validate_batches(black_box(&plain), max).expect("valid"));
    });
    for (name, input, codec) in [
        ("none -> lz4", &plain, 3),
        ("none -> zstd", &plain, 4),
        ("none -> gzip", &plain, 1),
        ("gzip -> zstd", &gzip, 4),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| strata_log::recompress::recompress(black_box(input), codec).expect("ok"));
        });
    }
    group.finish();
}

const CLEAN_KEYS: usize = 10_000;
const CLEAN_VERSIONS: usize = 10;

/// A log of `CLEAN_KEYS` keys written `CLEAN_VERSIONS` times, in 1 MiB segments.
fn dirty_log(dir: &Path) -> Log {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = Log::open(dir.join("clean-0"), config, 0).expect("open log");
    let keys: Vec<Vec<u8>> = (0..CLEAN_KEYS)
        .map(|k| format!("key-{k:08}").into_bytes())
        .collect();
    for _ in 0..CLEAN_VERSIONS {
        for chunk in keys.chunks(RECORDS) {
            log.append(&keyed_batch(chunk, 100), 0).expect("append");
        }
    }
    // Roll, so that everything written is cleanable.
    log.roll_if_due(i64::MAX).expect("roll");
    log
}

fn log_clean_10k_keys_x10(c: &mut Criterion) {
    let probe = tempfile::tempdir().expect("tempdir");
    let size = dirty_log(probe.path()).size_bytes();
    let mut group = c.benchmark_group("log_clean_10k_keys_x10");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size));
    let mut map = strata_log::OffsetMap::with_memory(16 << 20);
    group.bench_function("uncompressed_one_pass", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let tmp = tempfile::tempdir().expect("tempdir");
                let log = dirty_log(tmp.path());
                let params = strata_log::CleanParams::at(0);
                let start = Instant::now();
                let outcome = log.clean(&mut map, &params, &|_| {}).expect("clean");
                timed += start.elapsed();
                assert!(matches!(outcome, strata_log::CleanOutcome::Cleaned(_)));
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    log_append_1kib,
    log_read_1mib,
    validate_batches_16x1kib,
    recompress_16x1kib,
    log_clean_10k_keys_x10
);
criterion_main!(benches);
