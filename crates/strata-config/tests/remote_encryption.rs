//! `remote.storage.s3.sse*` and `remote.storage.encryption.*`: what is accepted, and
//! what is refused rather than ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strata_config::{ConfigError, Configs, RemoteEncryption, S3Sse};

fn broker(cli: &[(&str, &str)]) -> Result<strata_config::RemoteStorageConfig, ConfigError> {
    let cli: Vec<(String, String)> = cli
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let configs = Configs::load(None, &[], &cli)?;
    configs.broker(&BTreeMap::new()).map(|b| b.remote)
}

fn refused(cli: &[(&str, &str)], name: &str, reason: &str) {
    let err = broker(cli).expect_err("refused");
    assert_eq!(err.config_name(), Some(name), "{err}");
    assert!(err.to_string().contains(reason), "{err}");
}

#[test]
fn defaults_are_off() {
    let r = broker(&[]).expect("defaults");
    assert_eq!(r.s3_sse, S3Sse::None);
    assert_eq!(r.encryption, None);
}

#[test]
fn sse_modes_and_kms_settings() {
    let r = broker(&[("remote.storage.s3.sse", "SSE-S3")]).expect("sse-s3");
    assert_eq!(r.s3_sse, S3Sse::S3);
    let r = broker(&[("remote.storage.s3.sse", "SSE-KMS")]).expect("sse-kms");
    assert_eq!(
        r.s3_sse,
        S3Sse::Kms {
            key_id: None,
            bucket_key: None
        }
    );
    let r = broker(&[
        ("remote.storage.s3.sse", "SSE-KMS"),
        ("remote.storage.s3.sse.kms.key.id", "alias/strata"),
        ("remote.storage.s3.sse.bucket.key.enable", "true"),
    ])
    .expect("sse-kms with key");
    assert_eq!(
        r.s3_sse,
        S3Sse::Kms {
            key_id: Some("alias/strata".into()),
            bucket_key: Some(true)
        }
    );
    refused(
        &[("remote.storage.s3.sse", "aws:kms")],
        "remote.storage.s3.sse",
        "aws:kms",
    );
    refused(
        &[("remote.storage.s3.sse.kms.key.id", "k")],
        "remote.storage.s3.sse.kms.key.id",
        "only meaningful with remote.storage.s3.sse=SSE-KMS",
    );
    refused(
        &[
            ("remote.storage.s3.sse", "SSE-S3"),
            ("remote.storage.s3.sse.bucket.key.enable", "false"),
        ],
        "remote.storage.s3.sse.bucket.key.enable",
        "(it is SSE-S3)",
    );
}

#[test]
fn client_side_encryption_needs_a_key_file_or_a_kms_key() {
    let r = broker(&[
        ("remote.storage.encryption.enable", "true"),
        ("remote.storage.encryption.key.file", "/etc/strata/keys"),
    ])
    .expect("on");
    assert_eq!(
        r.encryption,
        Some(RemoteEncryption {
            key_file: Some(PathBuf::from("/etc/strata/keys")),
            key_id: None,
            kms_key_id: None,
            kms_endpoint: None,
        })
    );
    let r = broker(&[
        ("remote.storage.encryption.enable", "true"),
        ("remote.storage.encryption.key.file", "/k"),
        ("remote.storage.encryption.key.id", "k2"),
    ])
    .expect("with id");
    assert_eq!(r.encryption.and_then(|e| e.key_id), Some("k2".into()));
    let r = broker(&[
        ("remote.storage.encryption.enable", "true"),
        ("remote.storage.encryption.kms.key.id", "alias/strata"),
        (
            "remote.storage.encryption.kms.endpoint",
            "http://127.0.0.1:5000",
        ),
    ])
    .expect("KMS alone");
    assert_eq!(
        r.encryption,
        Some(RemoteEncryption {
            key_file: None,
            key_id: None,
            kms_key_id: Some("alias/strata".into()),
            kms_endpoint: Some("http://127.0.0.1:5000".into()),
        })
    );
    let r = broker(&[
        ("remote.storage.encryption.enable", "true"),
        ("remote.storage.encryption.key.file", "/k"),
        ("remote.storage.encryption.kms.key.id", "alias/x"),
    ])
    .expect("KMS writes, the key file still reads");
    let e = r.encryption.expect("on");
    assert_eq!(
        (e.key_file, e.kms_key_id),
        (Some(PathBuf::from("/k")), Some("alias/x".into()))
    );
    refused(
        &[("remote.storage.encryption.enable", "true")],
        "remote.storage.encryption.enable",
        "needs remote.storage.encryption.key.file",
    );
    refused(
        &[("remote.storage.encryption.key.file", "/k")],
        "remote.storage.encryption.key.file",
        "remote.storage.encryption.enable is false",
    );
    refused(
        &[("remote.storage.encryption.kms.key.id", "alias/x")],
        "remote.storage.encryption.kms.key.id",
        "remote.storage.encryption.enable is false",
    );
    refused(
        &[
            ("remote.storage.encryption.enable", "true"),
            ("remote.storage.encryption.kms.key.id", "alias/x"),
            ("remote.storage.encryption.key.id", "k1"),
        ],
        "remote.storage.encryption.key.id",
        "remote.storage.encryption.key.file, which is not set",
    );
    refused(
        &[
            ("remote.storage.encryption.enable", "true"),
            ("remote.storage.encryption.key.file", "/k"),
            ("remote.storage.encryption.kms.endpoint", "http://x"),
        ],
        "remote.storage.encryption.kms.endpoint",
        "remote.storage.encryption.kms.key.id is not",
    );
}
