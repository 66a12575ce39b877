//! The conformance suite against every backend, and fault injection.
//!
//! The S3 case needs `S3_TEST_ENDPOINT` (scripts/test.sh starts moto and sets
//! it). Without it the case is skipped, except under `CI=true`, where it fails.

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use strata_tier::conformance;
use strata_tier::copier::{self, Throttle, TopicInfo};
use strata_tier::faulty::{Faults, FaultyStore};
use strata_tier::{open_store, CacheConfig, PartitionKey, RemoteReader, S3Options};

#[tokio::test]
async fn memory_backend_conforms() {
    conformance::run_all(open_store("memory://", &S3Options::default()).unwrap()).await;
}

#[tokio::test]
async fn file_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/remote", dir.path().display());
    conformance::run_all(open_store(&url, &S3Options::default()).unwrap()).await;
}

/// The moto/S3 store from the environment, or `None` outside CI.
pub fn s3_store() -> Option<Arc<dyn ObjectStore>> {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto");
        }
        eprintln!("skipping the S3 backend: S3_TEST_ENDPOINT is not set");
        return None;
    };
    let bucket = std::env::var("S3_TEST_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let opts = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    Some(open_store(&format!("s3://{bucket}/conformance"), &opts).expect("s3 store"))
}

#[tokio::test]
async fn s3_backend_conforms() {
    if let Some(store) = s3_store() {
        conformance::run_all(store).await;
    }
}

#[tokio::test]
async fn uploads_and_reads_survive_injected_faults() {
    let faulty = FaultyStore::new(
        InMemory::new(),
        Faults {
            fail_every: 7,
            truncate_every: 5,
            delay: Duration::from_millis(1),
        },
    );
    let store: Arc<dyn ObjectStore> = faulty.clone();
    let pk = PartitionKey {
        topic: "f".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
    };
    let dir = tempfile::tempdir().unwrap();
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let throttle = Throttle::new(0);
    // Upload 5 segments, retrying failed attempts like the RLM does.
    let mut logs = Vec::new();
    for s in 0..5i64 {
        let (files, log) = conformance::write_fake_segment(dir.path(), s * 100, 10, 50);
        logs.push(log);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match copier::copy_segment(&*store, &pk, &files, &info, &throttle).await {
                Ok(m) if m.end_offset() == Some(files.next_offset) => break,
                Ok(m) => panic!("segment {s} not recorded: {m:?}"),
                Err(e) => assert!(attempts < 50, "stuck: {e}"),
            }
        }
    }
    assert!(faulty.injected() > 0, "faults were injected");
    let m = loop {
        if let Ok(Some(m)) = strata_tier::manifest::load(&*store, &pk).await {
            break m;
        }
    };
    assert_eq!((m.start_offset(), m.end_offset()), (Some(0), Some(500)));
    let reader = RemoteReader::new(
        store.clone(),
        CacheConfig {
            chunk_bytes: 256,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut offset = 0;
    while offset < 500 {
        match reader.read(&m, offset, 10_000, true).await {
            Ok(b) => {
                offset += (b.len() / 111) as i64 * 10;
                got.extend_from_slice(&b.to_bytes());
            }
            Err(e) => eprintln!("read at {offset} failed (retrying): {e}"),
        }
    }
    assert_eq!(got, logs.concat(), "every byte read back despite faults");
    // Heal the store: orphans from failed attempts are swept, nothing live is touched.
    faulty.set(Faults::default());
    copier::sweep_orphans(&*store, &pk, Duration::ZERO)
        .await
        .unwrap();
    let m2 = strata_tier::manifest::load(&*store, &pk)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m2.segments, m.segments);
    for s in &m2.segments {
        let key = pk.segment(s.base_offset, s.id, strata_tier::layout::SegmentFile::Log);
        assert!(
            object_store::ObjectStoreExt::head(&*store, &key)
                .await
                .is_ok(),
            "live object {key} kept"
        );
    }
}
