//! Opening the remote store from `remote.storage.url`.
//!
//! - `file:///path`: a directory (created if missing); the embedded default.
//! - `memory://`: in-process, for tests.
//! - `s3://bucket/prefix`: AWS S3 or any S3-compatible server (MinIO, LocalStack,
//!   moto). Credentials, region and endpoint come from the standard AWS environment
//!   (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ...) and instance
//!   profile, overridden by [`S3Options`] from the broker config, which also
//!   chooses server-side encryption ([`Sse`]).
//!
//! The result is always an `Arc<dyn ObjectStore>` rooted at the URL's prefix, so
//! callers use the keys of [`crate::layout`] unchanged.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

use crate::encryption::KmsClient;
use crate::error::{Result, TierError};

/// S3 settings from the broker config; `None` keeps what the environment says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), needed by moto and MinIO.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Server-side encryption asked of S3 for every object (`remote.storage.s3.sse`).
    pub sse: Sse,
}

/// S3 server-side encryption (`remote.storage.s3.sse`): a header on every PUT and
/// multipart upload; S3 encrypts and decrypts, so reads need nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sse {
    /// No header: the bucket's default encryption applies (on AWS, SSE-S3 for every
    /// bucket since January 2023).
    #[default]
    None,
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`): keys managed by S3.
    S3,
    /// SSE-KMS (`aws:kms`): keys in AWS KMS. `key_id` unset means the account's
    /// `aws/s3` key; `bucket_key` unset means the bucket's setting.
    Kms {
        key_id: Option<String>,
        bucket_key: Option<bool>,
    },
}

/// Adds the server-side encryption headers of `sse` to every upload of `b`.
fn with_sse(b: AmazonS3Builder, sse: &Sse) -> object_store::Result<AmazonS3Builder> {
    // The builder names these keys only as strings (`S3EncryptionConfigKey` is not
    // exported); they are parsed so that a typo fails here, not in the header.
    let key = |name: &str| name.parse::<AmazonS3ConfigKey>();
    Ok(match sse {
        Sse::None => b,
        Sse::S3 => b.with_config(key("aws_server_side_encryption")?, "AES256"),
        Sse::Kms { key_id, bucket_key } => {
            let mut b = b.with_config(key("aws_server_side_encryption")?, "aws:kms");
            if let Some(id) = key_id {
                b = b.with_config(key("aws_sse_kms_key_id")?, id);
            }
            if let Some(enabled) = bucket_key {
                b = b.with_bucket_key(*enabled);
            }
            b
        }
    })
}

/// The S3 client builder of `s3` (without a bucket): the environment, overridden by
/// the broker's settings.
fn s3_builder(s3: &S3Options) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env();
    if let Some(endpoint) = &s3.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    } else if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| e.starts_with("http://")) {
        b = b.with_allow_http(true);
    }
    if let Some(region) = &s3.region {
        b = b.with_region(region);
    }
    if let Some(path_style) = s3.path_style {
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(key) = &s3.access_key_id {
        b = b.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        b = b.with_secret_access_key(secret);
    }
    b
}

/// A client of AWS KMS with the S3 backend's region and credentials (the broker's
/// `remote.storage.s3.*` keys, else the environment, web identity, ECS or the EC2
/// instance profile). The endpoint is `endpoint`
/// (`remote.storage.encryption.kms.endpoint`), else `AWS_ENDPOINT_URL_KMS`, else
/// `AWS_ENDPOINT_URL` (the AWS SDKs' order), else `https://kms.<region>.amazonaws.com`.
/// The S3 endpoint is not used for KMS: MinIO serves no KMS API.
pub fn kms_client(s3: &S3Options, endpoint: Option<&str>) -> Result<KmsClient> {
    let open_err = |source| TierError::Open {
        url: "AWS KMS".into(),
        source,
    };
    // The builder resolves credentials and region exactly as for the bucket; the
    // bucket name is only there because `build` wants one.
    let b = s3_builder(s3).with_bucket_name("strata-kms-credentials");
    let region = b
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".into());
    let credentials = b.build().map_err(open_err)?.credentials().clone();
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let endpoint = endpoint
        .map(str::to_string)
        .or_else(|| env("AWS_ENDPOINT_URL_KMS"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com"));
    KmsClient::new(endpoint, region, credentials).map_err(open_err)
}

/// Opens the store named by `url`.
pub fn open_store(url: &str, s3: &S3Options) -> Result<Arc<dyn ObjectStore>> {
    let invalid = |reason: &str| TierError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    let open_err = |source| TierError::Open {
        url: url.to_string(),
        source,
    };
    match parsed.scheme() {
        "memory" => Ok(Arc::new(InMemory::new())),
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| invalid("not an absolute file path"))?;
            std::fs::create_dir_all(&path).map_err(|e| {
                invalid(&format!("cannot create directory {}: {e}", path.display()))
            })?;
            let fs = LocalFileSystem::new_with_prefix(&path)
                .map_err(open_err)?
                .with_automatic_cleanup(true);
            Ok(Arc::new(fs))
        }
        "s3" | "s3a" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| invalid("no bucket name"))?;
            // UNSIGNED-PAYLOAD: SigV4 would otherwise SHA-256 every uploaded body on a
            // runtime worker (~3 ms per 4 MiB segment, which produce requests queue behind).
            // Bodies are protected by TLS in transit and by each batch's CRC32C, which
            // consumers check; the manifest records each object's CRC32C as well.
            let b = s3_builder(s3)
                .with_bucket_name(bucket)
                .with_unsigned_payload(true);
            let s3 = with_sse(b, &s3.sse)
                .and_then(AmazonS3Builder::build)
                .map_err(open_err)?;
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Ok(Arc::new(s3))
            } else {
                Ok(Arc::new(PrefixStore::new(s3, prefix)))
            }
        }
        other => Err(invalid(&format!(
            "unsupported scheme '{other}' (use file://, memory:// or s3://)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(open_store("memory://", &S3Options::default()).is_ok());
        assert!(open_store("ftp://x", &S3Options::default()).is_err());
        assert!(open_store("not a url", &S3Options::default()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/remote", dir.path().display());
        assert!(open_store(&url, &S3Options::default()).is_ok());
        assert!(dir.path().join("remote").is_dir());
    }

    #[test]
    fn sse_settings_build_an_s3_store() {
        for sse in [
            Sse::None,
            Sse::S3,
            Sse::Kms {
                key_id: None,
                bucket_key: None,
            },
            Sse::Kms {
                key_id: Some("arn:aws:kms:us-east-1:111122223333:key/x".into()),
                bucket_key: Some(true),
            },
        ] {
            let opts = S3Options {
                region: Some("us-east-1".into()),
                sse: sse.clone(),
                ..Default::default()
            };
            assert!(open_store("s3://b/p", &opts).is_ok(), "{sse:?}");
        }
    }
}
