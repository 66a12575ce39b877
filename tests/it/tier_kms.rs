//! The remote tier encrypted with data keys from AWS KMS, end to end: the real broker
//! with `remote.storage.encryption.kms.key.id` against moto (S3 and KMS on one port),
//! librdkafka clients. Needs `S3_TEST_ENDPOINT` (moto); skipped without it outside CI.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use strata_tier::encryption::keys::new_key_line;
use strata_tier::layout::SegmentFile;
use strata_tier::object_store::{ObjectStore, ObjectStoreExt};
use strata_tier::{kms_client, EncryptedStore, Keyring, KmsClient, KmsKeys, MasterKeys, S3Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kafka::create_topic;
use crate::tier::{
    consume_all_and_check, produce_values, remote_s3, start, value, wait_local_trimmed,
    wait_tiered, TOPIC_CONFIGS,
};

fn moto_endpoint() -> Option<String> {
    match std::env::var("S3_TEST_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto"
            );
            eprintln!("skipping: KMS needs moto (S3_TEST_ENDPOINT)");
            None
        }
    }
}

fn kms(endpoint: &str) -> KmsClient {
    let opts = S3Options {
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..Default::default()
    };
    kms_client(&opts, Some(endpoint)).expect("kms client")
}

async fn create_key(kms: &KmsClient) -> String {
    let v = kms
        .call("CreateKey", serde_json::json!({"Description": "strata it"}))
        .await
        .expect("CreateKey");
    v["KeyMetadata"]["Arn"].as_str().expect("arn").to_string()
}

fn write_keys(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A broker writes a key-file-encrypted tier, restarts with a KMS key (the key file
/// kept), writes more: the bucket holds version 1 and version 2 ciphertext, and a
/// consumer reads every record from offset 0 once the local segments are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_encrypted_tier_reads_back_from_zero_after_switching_from_a_key_file() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let r = remote_s3("kms").expect("moto");
    let client = kms(&endpoint);
    let arn = create_key(&client).await;
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("master.keys");
    write_keys(&key_file, &new_key_line("k1").expect("k1"));
    let key_path = key_file.display().to_string();
    let mut broker = start(
        &r,
        &[
            ("remote.storage.encryption.enable", "true"),
            ("remote.storage.encryption.key.file", key_path.as_str()),
        ],
        &[],
    );
    create_topic(&broker.addr, "kms", 1, TOPIC_CONFIGS).await;
    let n = 2000;
    produce_values(&broker.addr, "kms", 0, n).await;
    let view: Arc<dyn ObjectStore> = Arc::new(EncryptedStore::new(
        r.store.clone(),
        Keyring::new(
            Some(MasterKeys::load(&key_file, None).expect("keys")),
            Some(KmsKeys {
                client: client.clone(),
                key_id: arn.clone(),
            }),
        ),
    ));
    wait_tiered(&view, "kms", (n as i64) * 3 / 4, &broker).await;

    broker.stop();
    broker.set("remote.storage.encryption.kms.key.id", &arn);
    broker.set("remote.storage.encryption.kms.endpoint", &endpoint);
    broker.start_again();
    let more = 2000;
    produce_values(&broker.addr, "kms", n, more).await;
    let m = wait_tiered(&view, "kms", ((n + more) as i64) * 3 / 4, &broker).await;
    wait_local_trimmed(&broker, "kms", 4).await;
    let mut versions = Vec::new();
    for s in &m.segments {
        let key = m.partition.segment(s.base_offset, s.id, SegmentFile::Log);
        let stored = r
            .store
            .get(&key)
            .await
            .expect("raw")
            .bytes()
            .await
            .expect("body");
        assert_eq!(&stored[..6], b"STRENC", "{key}");
        assert!(!holds(&stored, b"value-0"), "{key} holds plaintext");
        if stored[6] == 2 {
            assert!(
                holds(&stored[..1024], arn.as_bytes()),
                "{key} names the KMS key"
            );
        }
        versions.push(stored[6]);
    }
    assert_eq!(versions.first(), Some(&1), "{versions:?}");
    assert_eq!(versions.last(), Some(&2), "{versions:?}");
    let _ = consume_all_and_check(&broker.addr, "kms", n + more);
}

/// A stub KMS answering every call with AWS's error for a disabled key.
async fn disabled_kms() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..256 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
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
                let body = r#"{"__type":"DisabledException","message":"the key is disabled."}"#;
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

/// The KMS key becomes unusable (disabled) after the tier was written: a consumer
/// from the beginning gets no remote record and no garbage, and the broker log names
/// the object, the key and KMS's DisabledException. The partition manifest is itself
/// a KMS-encrypted object, so the restarted broker cannot load it and the partition
/// starts at its local log (the existing behaviour for an unreadable manifest: it
/// retries and warns). moto 5.2 still decrypts with a disabled key, so the restarted
/// broker's KMS is a stub answering as AWS does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_kms_key_serves_no_remote_data() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let r = remote_s3("kms-disabled").expect("moto");
    let client = kms(&endpoint);
    let arn = create_key(&client).await;
    let mut broker = start(
        &r,
        &[
            ("remote.storage.encryption.enable", "true"),
            ("remote.storage.encryption.kms.key.id", arn.as_str()),
            ("remote.storage.encryption.kms.endpoint", endpoint.as_str()),
            ("remote.cache.disk.size.bytes", "0"),
        ],
        &[],
    );
    create_topic(&broker.addr, "kms-off", 1, TOPIC_CONFIGS).await;
    let n = 2000;
    produce_values(&broker.addr, "kms-off", 0, n).await;
    let view: Arc<dyn ObjectStore> = Arc::new(EncryptedStore::new(
        r.store.clone(),
        Keyring::new(
            None,
            Some(KmsKeys {
                client: client.clone(),
                key_id: arn.clone(),
            }),
        ),
    ));
    let m = wait_tiered(&view, "kms-off", (n as i64) * 3 / 4, &broker).await;
    wait_local_trimmed(&broker, "kms-off", 4).await;
    let first = &m.segments[0];
    broker.stop();
    let stub = disabled_kms().await;
    broker.set("remote.storage.encryption.kms.endpoint", &stub);
    broker.start_again();

    let c: BaseConsumer = crate::kafka::consumer(&broker.addr);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("kms-off", 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let (mut got, mut errors) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                // Only local records could come, never remote ones or garbage.
                assert!(
                    msg.offset() >= first.next_offset,
                    "remote offset {} served",
                    msg.offset()
                );
                assert_eq!(msg.payload(), Some(value(msg.offset() as usize).as_bytes()));
                got += 1;
            }
            Some(Err(_)) => errors += 1,
            None => {}
        }
    }
    let log = broker.log();
    let objects = m.partition.dir().to_string();
    assert!(
        log.contains(&format!("object {objects}/")) && log.contains(&arn) && log.contains("DisabledException"),
        "the broker log names the object, the key and the failure ({got} records, {errors} client errors):\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
}
