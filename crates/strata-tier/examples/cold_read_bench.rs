//! Cold remote read throughput vs raw `object_store` GETs of the same objects.
//!
//! ```text
//! S3_TEST_ENDPOINT=http://127.0.0.1:PORT cargo run --release -p strata-tier \
//!     --example cold_read_bench -- [segments] [segment MiB] [chunk KiB] [read-ahead] [rounds] \
//!     [--encrypted] [--kms]
//! ```
//! Uploads `segments` segments of fake 16 KiB batches to `s3://strata-test/bench-*`
//! (or `memory://` without the variable), then, in the same run, `rounds` times
//! (default 3): (1) raw GETs of every `.log` object, one after another, (2) a
//! sequential read of the whole partition through a new `RemoteReader` (cold cache),
//! 1 MiB per read as a consumer's fetch would. Prints MiB/s of both per round and the
//! median ratio; alternating rounds keep a shared machine's load swings from
//! favouring one side.
//!
//! With `--encrypted` the same segments are also uploaded through an `EncryptedStore`
//! (client-side AES-256-GCM, a fresh master key) under a second prefix, and each
//! round adds (3) the same cold sequential read through it, (2) and (3) in
//! alternating order; it prints the median ratio of encrypted to plain cold reads.
//!
//! With `--kms` (needs `S3_TEST_ENDPOINT`: moto serves KMS on the S3 port; implies
//! `--encrypted`) a third copy is uploaded with data keys from KMS (a key made with
//! `CreateKey`) under a third prefix, and each round reads all three, the order
//! rotating. Each encrypted read goes through a new `EncryptedStore` (no opened
//! header or data key cached: a restarted broker), so the KMS read includes one
//! `Decrypt` per object it opens; the count is printed.

use std::sync::Arc;
use std::time::Instant;

use strata_tier::conformance::write_fake_segment;
use strata_tier::copier::{self, Throttle, TopicInfo};
use strata_tier::encryption::keys::new_key_line;
use strata_tier::layout::SegmentFile;
use strata_tier::manifest::PartitionManifest;
use strata_tier::object_store::prefix::PrefixStore;
use strata_tier::object_store::{ObjectStore, ObjectStoreExt};
use strata_tier::{
    kms_client, open_store, CacheConfig, EncryptedStore, Keyring, KmsKeys, MasterKeys,
    PartitionKey, RemoteReader, S3Options,
};

/// The KMS-encrypted copy, typed so that its keyring's `Decrypt` count can be read.
type KmsStore = EncryptedStore<PrefixStore<Arc<dyn ObjectStore>>>;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let segments = args.first().copied().unwrap_or(8);
    let seg_mib = args.get(1).copied().unwrap_or(16);
    let kms_on = std::env::args().any(|a| a == "--kms");
    let mut kms = None;
    let store: Arc<dyn ObjectStore> = match std::env::var("S3_TEST_ENDPOINT") {
        Ok(endpoint) => {
            let opts = S3Options {
                endpoint: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
                path_style: Some(true),
                access_key_id: Some("test".into()),
                secret_access_key: Some("test".into()),
                ..Default::default()
            };
            let url = format!("s3://strata-test/bench-{}", uuid::Uuid::new_v4());
            if kms_on {
                let client = kms_client(&opts, Some(&endpoint)).expect("kms");
                let v = client
                    .call("CreateKey", serde_json::json!({"Description": "bench"}))
                    .await
                    .expect("CreateKey");
                let arn = v["KeyMetadata"]["Arn"].as_str().expect("arn").to_string();
                kms = Some(KmsKeys {
                    client,
                    key_id: arn,
                });
            }
            open_store(&url, &opts).expect("s3")
        }
        Err(_) => {
            assert!(!kms_on, "--kms needs S3_TEST_ENDPOINT (moto)");
            open_store("memory://", &S3Options::default()).expect("memory")
        }
    };
    let encrypted = kms_on || std::env::args().any(|a| a == "--encrypted");
    let pk = PartitionKey {
        topic: "bench".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let pad = 16 * 1024 - 61;
    let batches_per_seg = (seg_mib * 1024 * 1024 / (pad + 61)) as i64;
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let throttle = Throttle::new(0);
    // The encrypted copy lives under its own prefix of the same bucket, with a fresh key.
    let line = new_key_line("bench").expect("key");
    let fresh_file = || -> Arc<dyn ObjectStore> {
        let keys = MasterKeys::parse(&line, std::path::Path::new("bench"), None).expect("keys");
        let inner = Arc::new(PrefixStore::new(store.clone(), "encrypted"));
        Arc::new(EncryptedStore::new(inner, keys))
    };
    let fresh_kms = || -> Option<Arc<KmsStore>> {
        let k = kms.as_ref()?;
        let keyring = Keyring::new(
            None,
            Some(KmsKeys {
                client: k.client.clone(),
                key_id: k.key_id.clone(),
            }),
        );
        Some(Arc::new(EncryptedStore::new(
            PrefixStore::new(store.clone(), "kms"),
            keyring,
        )))
    };
    let sealed: Option<Arc<dyn ObjectStore>> = encrypted.then(fresh_file);
    let sealed_kms = fresh_kms();
    let mut m = None;
    let mut m_enc = None;
    let mut m_kms = None;
    for s in 0..segments as i64 {
        let base = s * batches_per_seg * 10;
        let (files, _) = write_fake_segment(dir.path(), base, batches_per_seg, pad);
        m = Some(
            copier::copy_segment(&*store, &pk, &files, &info, &throttle)
                .await
                .expect("upload"),
        );
        if let Some(sealed) = &sealed {
            m_enc = Some(
                copier::copy_segment(&**sealed, &pk, &files, &info, &throttle)
                    .await
                    .expect("encrypted upload"),
            );
        }
        if let Some(sealed) = &sealed_kms {
            m_kms = Some(
                copier::copy_segment(&**sealed, &pk, &files, &info, &throttle)
                    .await
                    .expect("KMS upload"),
            );
        }
    }
    let m = m.expect("at least one segment");
    let total: u64 = m.size_bytes();
    let mib = total as f64 / (1024.0 * 1024.0);

    let chunk_kib = args.get(2).copied().unwrap_or(1024);
    let ahead = args.get(3).copied().unwrap_or(16);
    let rounds = args.get(4).copied().unwrap_or(3).max(1);
    let cfg = CacheConfig {
        chunk_bytes: chunk_kib * 1024,
        read_ahead_chunks: ahead,
        memory_bytes: 512 << 20,
        ..Default::default()
    };
    println!("data: {segments} segments x {seg_mib} MiB = {mib:.0} MiB, store {store}");
    println!("RemoteReader: fetch max_bytes 1 MiB, chunk {chunk_kib} KiB, read-ahead {ahead}");
    let mut ratios = Vec::new();
    let mut enc_ratios = Vec::new();
    let mut kms_ratios = Vec::new();
    let mut kms_file_ratios = Vec::new();
    for round in 1..=rounds {
        let cpu0 = cpu_secs();
        let t = Instant::now();
        for s in &m.segments {
            let key = pk.segment(s.base_offset, s.id, SegmentFile::Log);
            let b = store
                .get(&key)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            assert_eq!(b.len() as u64, s.size_bytes);
        }
        let raw = t.elapsed().as_secs_f64();
        let cpu1 = cpu_secs();
        // The order of the reads rotates between rounds (plain, key file, KMS).
        let mut order = vec![0, 1, 2];
        order.rotate_left(round % 3);
        let (mut tier, mut tier_cpu, mut enc, mut kms_read) = (0.0, 0.0, None, None);
        for which in order {
            match which {
                0 => {
                    (tier, tier_cpu) = cold_read(
                        Some(store.clone()),
                        &Some(m.clone()),
                        cfg.clone(),
                        total,
                        pad,
                    )
                    .await
                    .expect("plain read");
                }
                1 if sealed.is_some() => {
                    enc = cold_read(Some(fresh_file()), &m_enc, cfg.clone(), total, pad).await;
                }
                2 => {
                    if let Some(s) = fresh_kms() {
                        let r = cold_read(
                            Some(s.clone() as Arc<dyn ObjectStore>),
                            &m_kms,
                            cfg.clone(),
                            total,
                            pad,
                        )
                        .await;
                        kms_read = r.map(|r| (r, s.keys().kms_decrypt_calls()));
                    }
                }
                _ => {}
            }
        }
        ratios.push(raw / tier);
        println!(
            "round {round}: raw GETs {:7.1} MiB/s ({raw:.2} s, client CPU {:.2} s), RemoteReader cold {:7.1} MiB/s ({tier:.2} s, client CPU {tier_cpu:.2} s), ratio {:3.0}%",
            mib / raw,
            cpu1 - cpu0,
            mib / tier,
            100.0 * raw / tier
        );
        if let Some((secs, cpu)) = enc {
            enc_ratios.push(tier / secs);
            println!(
                "         key-file encrypted cold {:7.1} MiB/s ({secs:.2} s, client CPU {cpu:.2} s), key file/plain {:3.0}%",
                mib / secs,
                100.0 * tier / secs,
            );
        }
        if let Some(((secs, cpu), calls)) = kms_read {
            kms_ratios.push(tier / secs);
            if let Some((file_secs, _)) = enc {
                kms_file_ratios.push(file_secs / secs);
            }
            println!(
                "         KMS encrypted cold      {:7.1} MiB/s ({secs:.2} s, client CPU {cpu:.2} s), KMS/plain {:3.0}%, KMS/key file {:3.0}%, {calls} KMS Decrypt calls",
                mib / secs,
                100.0 * tier / secs,
                enc.map_or(0.0, |(f, _)| 100.0 * f / secs),
            );
        }
    }
    println!("median ratio tier/raw: {:.0}%", 100.0 * median(&mut ratios));
    if !enc_ratios.is_empty() {
        println!(
            "median ratio encrypted/plain cold read: {:.0}% ({} rounds)",
            100.0 * median(&mut enc_ratios),
            enc_ratios.len()
        );
    }
    if !kms_ratios.is_empty() {
        println!(
            "median ratio KMS/plain cold read: {:.0}%, KMS/key file: {:.0}% ({} rounds)",
            100.0 * median(&mut kms_ratios),
            100.0 * median(&mut kms_file_ratios),
            kms_ratios.len()
        );
    }
    copier::delete_partition(&*store, &pk)
        .await
        .expect("cleanup");
    if let Some(sealed) = &sealed_kms {
        copier::delete_partition(&**sealed, &pk)
            .await
            .expect("cleanup");
    }
    if let Some(sealed) = &sealed {
        copier::delete_partition(&**sealed, &pk)
            .await
            .expect("cleanup");
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Reads the whole partition of `m` sequentially through a new (cold) reader over
/// `store`, 1 MiB per read; (seconds, client CPU seconds). `None` without a store.
async fn cold_read(
    store: Option<Arc<dyn ObjectStore>>,
    m: &Option<PartitionManifest>,
    cfg: CacheConfig,
    total: u64,
    pad: usize,
) -> Option<(f64, f64)> {
    let (store, m) = (store?, m.as_ref()?);
    let reader = RemoteReader::new(store, cfg).await.expect("reader");
    let cpu = cpu_secs();
    let t = Instant::now();
    let mut offset = 0;
    let mut got = 0u64;
    let end = m.end_offset().unwrap_or(0);
    while offset < end {
        let b = reader.read(m, offset, 1 << 20, true).await.expect("read");
        got += b.len() as u64;
        offset += (b.len() / (pad + 61)) as i64 * 10;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(got, total);
    Some((secs, cpu_secs() - cpu))
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the ")"; 100 Hz.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}
