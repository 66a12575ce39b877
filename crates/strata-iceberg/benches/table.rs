//! What writing a segment into its Iceberg table costs next to uploading the segment:
//! both into the same store, a `LocalFileSystem` in a temp dir (the embedded default
//! remote tier, `file://`), so the figures compare CPU and local I/O, not a network.
//!
//! - `upload`: the segment's bytes put as one object (what the copier does for `.log`);
//! - `parquet`: decode every record and encode the day files (no I/O);
//! - `table`: the whole table step: decode, Parquet, data files put, manifest, manifest
//!   list and metadata written, commit (the table grows by one snapshot per iteration).
//!
//! Throughput is in bytes of the segment (Kafka records as stored).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use strata_iceberg::records::testing::batch;
use strata_iceberg::{table, writer, Step, TableWriter};

/// A segment of `batches` batches of 100 records with 16-byte keys, one header and
/// `value_bytes`-byte values.
fn segment(batches: usize, value_bytes: usize) -> (Vec<u8>, i64) {
    let value = vec![b'v'; value_bytes];
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i:012}")).collect();
    const HS: &[(&str, &[u8])] = &[("trace-id", b"0123456789abcdef")];
    let mut seg = Vec::new();
    let mut offset = 0;
    for b in 0..batches {
        let recs: Vec<_> = keys
            .iter()
            .map(|k| (Some(k.as_bytes()), Some(&value[..]), HS))
            .collect();
        seg.extend(batch(offset, 1_764_000_000_000 + b as i64 * 10, &recs, 0));
        offset += 100;
    }
    (seg, offset)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let root = format!("file://{}", dir.path().display());
    let w: TableWriter = writer(&root, store.clone()).unwrap();
    let schema = table::arrow_schema(&table::table_schema().unwrap()).unwrap();
    for value_bytes in [100usize, 1000] {
        // About 4 MiB of records.
        let (seg, next) = segment((4 << 20) / (100 * (value_bytes + 50)), value_bytes);
        let mut g = c.benchmark_group(format!(
            "segment_{}KiB_values_{value_bytes}B",
            seg.len() >> 10
        ));
        g.throughput(Throughput::Bytes(seg.len() as u64));
        g.sample_size(10);
        g.bench_function("upload", |b| {
            b.iter(|| {
                rt.block_on(store.put(&Path::from("seg.log"), seg.clone().into()))
                    .unwrap()
            })
        });
        g.bench_function("parquet", |b| {
            b.iter(|| {
                let rows = strata_iceberg::records::decode_segment(&seg, 0).unwrap();
                table::parquet_files(&rows, 0, &schema, false).unwrap()
            })
        });
        let topic = format!("bench-{value_bytes}");
        let mut t = Some(rt.block_on(w.open(&topic)).unwrap());
        let mut base = 0;
        g.bench_function("table", |b| {
            b.iter(|| {
                // Each iteration commits the segment again as the next offsets.
                let step = Step {
                    base_offset: base,
                    next_offset: base + next,
                    from: base,
                };
                let (nt, _) = rt
                    .block_on(w.write_step(&topic, t.take().unwrap(), 0, step, &seg, &[], &[]))
                    .unwrap();
                t = Some(nt);
                base += next;
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
