//! Client-side encryption with data keys from AWS KMS, against moto (which serves KMS
//! on the S3 port): objects are ciphertext in format version 2, a cold read from
//! offset 0 returns the original bytes, key-file objects and KMS objects both read
//! after switching, one segment read in many ranged GETs calls KMS `Decrypt` once,
//! and KMS failures (a blob moved to another object, a disabled key, no KMS
//! configured) are errors naming the object and the key, never data.
//!
//! moto 5.2 does not refuse `Decrypt` or `GenerateDataKey` with a disabled key (it
//! keeps the state for DescribeKey only), so the disabled-key case answers with AWS's
//! documented `DisabledException` from a stub HTTP server instead.
//!
//! The moto cases need `S3_TEST_ENDPOINT` (scripts/test.sh starts moto and sets it).

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use strata_tier::conformance::{self, write_fake_segment};
use strata_tier::copier::{self, Throttle, TopicInfo};
use strata_tier::encryption::keys::new_key_line;
use strata_tier::layout::SegmentFile;
use strata_tier::{
    kms_client, open_store, CacheConfig, EncryptedStore, Keyring, KmsClient, KmsKeys, MasterKeys,
    PartitionKey, RemoteReader, S3Options, Sse, TierError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn moto() -> Option<(String, String)> {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto");
        }
        eprintln!("skipping: S3_TEST_ENDPOINT is not set");
        return None;
    };
    let bucket = std::env::var("S3_TEST_BUCKET").unwrap_or_else(|_| "strata-test".into());
    Some((endpoint, bucket))
}

fn s3_options(endpoint: &str) -> S3Options {
    S3Options {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        sse: Sse::None,
    }
}

fn client(endpoint: &str) -> KmsClient {
    kms_client(&s3_options(endpoint), Some(endpoint)).expect("kms client")
}

/// A new symmetric key in moto's KMS; its ARN.
async fn create_key(kms: &KmsClient) -> String {
    let v = kms
        .call(
            "CreateKey",
            serde_json::json!({"Description": "strata test", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT"}),
        )
        .await
        .expect("CreateKey");
    v["KeyMetadata"]["Arn"].as_str().expect("arn").to_string()
}

fn store(
    raw: &Arc<dyn ObjectStore>,
    keyring: Keyring,
) -> Arc<EncryptedStore<Arc<dyn ObjectStore>>> {
    Arc::new(EncryptedStore::new(raw.clone(), keyring))
}

fn pk() -> PartitionKey {
    PartitionKey {
        topic: "secret".into(),
        topic_id: uuid::Uuid::new_v4(),
        partition: 0,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn read_from_zero(store: Arc<dyn ObjectStore>, pk: &PartitionKey) -> Bytes {
    let m = strata_tier::manifest::load(&*store, pk)
        .await
        .expect("manifest")
        .expect("exists");
    let cfg = CacheConfig {
        chunk_bytes: 64 << 10,
        ..Default::default()
    };
    let reader = RemoteReader::new(store, cfg).await.expect("reader");
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < m.end_offset().unwrap_or(0) {
        let b = reader
            .read(&m, offset, 100_000, true)
            .await
            .expect("read")
            .to_bytes();
        assert!(!b.is_empty(), "no progress at {offset}");
        offset += (b.len() / 1061) as i64 * 10;
        out.extend_from_slice(&b);
    }
    out.into()
}

fn tier_error(e: &object_store::Error) -> Option<&TierError> {
    match e {
        object_store::Error::Generic { source, .. } => source.downcast_ref::<TierError>(),
        _ => None,
    }
}

#[tokio::test]
async fn kms_encrypted_backend_conforms() {
    let Some((endpoint, bucket)) = moto() else {
        return;
    };
    let kms = client(&endpoint);
    let arn = create_key(&kms).await;
    let url = format!("s3://{bucket}/kms-conformance-{}", uuid::Uuid::new_v4());
    let raw = open_store(&url, &s3_options(&endpoint)).expect("s3");
    let keyring = Keyring::new(
        None,
        Some(KmsKeys {
            client: kms,
            key_id: arn,
        }),
    );
    conformance::run_all(Arc::new(EncryptedStore::new(raw, keyring))).await;
}

/// A key-file segment, then (after switching to KMS) a KMS segment: the KMS objects
/// are version 2 ciphertext, both segments read from offset 0, a segment read in
/// many concurrent ranged GETs calls Decrypt once, and a broker without KMS names
/// the KMS key it would need.
#[tokio::test]
async fn moto_kms_objects_are_ciphertext_and_read_with_key_file_objects() {
    let Some((endpoint, bucket)) = moto() else {
        return;
    };
    let kms = client(&endpoint);
    let arn = create_key(&kms).await;
    let url = format!("s3://{bucket}/kms-switch-{}", uuid::Uuid::new_v4());
    let raw = open_store(&url, &s3_options(&endpoint)).expect("s3");
    let file_text = new_key_line("k1").expect("k1");
    let file = || MasterKeys::parse(&file_text, std::path::Path::new("t"), None).expect("keys");
    let with_kms = || {
        Keyring::new(
            Some(file()),
            Some(KmsKeys {
                client: kms.clone(),
                // An alias would do as well; the header keeps the ARN KMS answers.
                key_id: arn.clone(),
            }),
        )
    };
    let dir = tempfile::tempdir().expect("tmp");
    let pk = pk();
    let info = TopicInfo {
        partition_count: 1,
        ..Default::default()
    };
    let before = store(&raw, Keyring::from(file()));
    let (s0, log0) = write_fake_segment(dir.path(), 0, 700, 1000);
    copier::copy_segment(&*before, &pk, &s0, &info, &Throttle::new(0))
        .await
        .expect("copy under the key file");
    let after = store(&raw, with_kms());
    let (s1, log1) = write_fake_segment(dir.path(), 7000, 700, 1000);
    let m = copier::copy_segment(&*after, &pk, &s1, &info, &Throttle::new(0))
        .await
        .expect("copy under KMS");
    for (seg, version) in m.segments.iter().zip([1u8, 2]) {
        for file in [SegmentFile::Log, SegmentFile::Index, SegmentFile::Manifest] {
            let key = pk.segment(seg.base_offset, seg.id, file);
            let stored = raw
                .get(&key)
                .await
                .expect("raw")
                .bytes()
                .await
                .expect("body");
            let plain = after
                .get(&key)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            assert_eq!(&stored[..6], b"STRENC", "{key}");
            assert_eq!(stored[6], version, "{key}: format version");
            if version == 2 {
                assert!(
                    contains(&stored[..1024], arn.as_bytes()),
                    "{key} names its KMS key"
                );
            }
            assert!(!contains(&stored, &plain[..32]), "{key} holds plaintext");
            let body = &stored[if version == 2 { 1024 } else { 137 }..];
            assert!(!contains(body, &[0u8; 64]), "{key} holds the zero padding");
        }
    }
    // A fresh broker (cold caches) reads both segments from offset 0.
    let fresh = store(&raw, with_kms());
    let want = [&log0[..], &log1[..]].concat();
    assert!(
        read_from_zero(fresh.clone(), &pk).await == want,
        "the key-file and the KMS segment both read"
    );
    // A far ranged read of the key-file segment through a fresh KMS broker: the data
    // GET first assumes the KMS header length, finds a version 1 header, and asks again.
    let far = store(&raw, with_kms());
    let old_log = pk.segment(0, m.segments[0].id, SegmentFile::Log);
    let r = GetOptions {
        range: Some(GetRange::Bounded(300_000..300_100)),
        ..Default::default()
    };
    let got = far
        .get_opts(&old_log, r)
        .await
        .expect("far read")
        .bytes()
        .await
        .expect("body");
    assert_eq!(got, log0[300_000..300_100]);
    // With its header cached, `head` reports the exact plaintext size of either format.
    let size = far.head(&old_log).await.expect("head").size;
    assert_eq!(size, log0.len() as u64);
    // Another fresh broker reads the KMS segment's log in 16 concurrent ranged GETs:
    // one Decrypt.
    let cold = store(&raw, with_kms());
    let log = pk.segment(7000, m.segments[1].id, SegmentFile::Log);
    let size = log1.len() as u64;
    let step = size / 16;
    let gets = (0..16u64).map(|i| {
        let cold = cold.clone();
        let log = log.clone();
        async move {
            let r = GetOptions {
                range: Some(GetRange::Bounded(i * step..((i + 1) * step).min(size))),
                ..Default::default()
            };
            cold.get_opts(&log, r).await?.bytes().await
        }
    });
    let parts = futures::future::try_join_all(gets)
        .await
        .expect("ranged reads");
    assert_eq!(parts.concat(), log1[..(16 * step) as usize]);
    assert_eq!(
        cold.keys().kms_decrypt_calls(),
        1,
        "one Decrypt for 16 GETs"
    );
    // Switching back to the key file alone: KMS objects name the KMS key they need.
    let file_only = store(&raw, Keyring::from(file()));
    let err = file_only.get(&log).await.expect_err("no KMS");
    assert!(
        matches!(tier_error(&err), Some(TierError::KmsNotConfigured { key, kms_key }) if key == log.as_ref() && *kms_key == arn),
        "{err}"
    );
    // A KMS-only broker names the key file key that key-file objects need.
    let kms_only = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: kms.clone(),
                key_id: arn.clone(),
            }),
        ),
    );
    let old = pk.segment(0, m.segments[0].id, SegmentFile::Log);
    let err = kms_only.get(&old).await.expect_err("no key file");
    assert!(err.to_string().contains("'k1'"), "{err}");
    copier::delete_partition(&*after, &pk)
        .await
        .expect("cleanup");
}

/// A KMS header copied onto another object does not open there (the encryption
/// context names the object), and a broker with another KMS key still reads objects
/// by the key their header names.
#[tokio::test]
async fn a_kms_blob_moved_to_another_object_is_refused_by_kms() {
    let Some((endpoint, bucket)) = moto() else {
        return;
    };
    let kms = client(&endpoint);
    let arn = create_key(&kms).await;
    let url = format!("s3://{bucket}/kms-moved-{}", uuid::Uuid::new_v4());
    let raw = open_store(&url, &s3_options(&endpoint)).expect("s3");
    let s = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: kms.clone(),
                key_id: arn.clone(),
            }),
        ),
    );
    let a = Path::from("t/0/a.log");
    let body = Bytes::from(vec![7u8; 100_000]);
    s.put(&a, body.clone().into()).await.expect("put");
    let stored = raw.get(&a).await.expect("raw").bytes().await.expect("body");
    let b = Path::from("t/0/b.log");
    raw.put(&b, stored.into())
        .await
        .expect("copy the raw bytes");
    let fresh = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: kms.clone(),
                key_id: arn.clone(),
            }),
        ),
    );
    let err = fresh.get(&b).await.expect_err("moved");
    match tier_error(&err) {
        Some(TierError::Kms {
            key,
            kms_key,
            op,
            code,
            ..
        }) => {
            assert_eq!(
                (key.as_str(), kms_key.as_str(), *op),
                (b.as_ref(), arn.as_str(), "Decrypt")
            );
            assert_eq!(code, "InvalidCiphertextException");
        }
        other => panic!("{other:?}: {err}"),
    }
    // The original still reads, also through a broker whose new objects use another key.
    let other_key = create_key(&kms).await;
    let other = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: kms.clone(),
                key_id: other_key,
            }),
        ),
    );
    assert_eq!(
        other
            .get(&a)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body"),
        body
    );
}

/// A stub KMS that answers every request with HTTP 400 and AWS's error body for a
/// disabled key; its endpoint.
async fn disabled_kms() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                // One request: headers and a small JSON body arrive in a read or two.
                let mut got = 0;
                while got < buf.len() {
                    let Ok(n) = conn.read(&mut buf[got..]).await else {
                        return;
                    };
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]);
                    if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
                        break;
                    }
                }
                let body = r#"{"__type":"DisabledException","message":"arn:aws:kms:us-east-1:123456789012:key/x is disabled."}"#;
                let resp = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// A disabled KMS key: reads and uploads fail with KMS's DisabledException in an
/// error naming the object and the key, and no byte of the object is served.
#[tokio::test]
async fn a_disabled_kms_key_is_an_error_naming_object_and_key() {
    let Some((endpoint, _)) = moto() else {
        return;
    };
    let kms = client(&endpoint);
    let arn = create_key(&kms).await;
    let raw: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let s = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: kms.clone(),
                key_id: arn.clone(),
            }),
        ),
    );
    let a = Path::from("t/0/a.log");
    s.put(&a, Bytes::from(vec![7u8; 100_000]).into())
        .await
        .expect("put");
    let stub = disabled_kms().await;
    let disabled = store(
        &raw,
        Keyring::new(
            None,
            Some(KmsKeys {
                client: client(&stub),
                key_id: arn.clone(),
            }),
        ),
    );
    let err = disabled.get(&a).await.expect_err("disabled");
    let text = err.to_string();
    match tier_error(&err) {
        Some(TierError::Kms {
            key,
            kms_key,
            op,
            code,
            ..
        }) => {
            assert_eq!(
                (key.as_str(), kms_key.as_str(), *op),
                (a.as_ref(), arn.as_str(), "Decrypt")
            );
            assert_eq!(code, "DisabledException");
        }
        other => panic!("{other:?}: {text}"),
    }
    assert!(text.contains("t/0/a.log") && text.contains(&arn), "{text}");
    let err = disabled
        .put(&Path::from("t/0/b.log"), Bytes::from_static(b"x").into())
        .await
        .expect_err("no data key");
    assert!(
        matches!(tier_error(&err), Some(TierError::Kms { op: "GenerateDataKey", code, .. }) if code == "DisabledException"),
        "{err}"
    );
    assert!(
        raw.head(&Path::from("t/0/b.log")).await.is_err(),
        "nothing uploaded"
    );
}
