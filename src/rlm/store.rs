//! The remote tier's object store as `remote.storage.*` describes it: the backend at
//! `remote.storage.url` with its S3 settings (server-side encryption included), inside
//! strata-tier's `EncryptedStore` when `remote.storage.encryption.enable` is on.
//!
//! Master keys are read once, here: adding a key (rotation) takes a restart. A key file
//! that cannot be read or parsed stops the broker at startup, naming the file and line.

use std::sync::Arc;

use strata_config::{RemoteStorageConfig, S3Sse};
use strata_tier::object_store::ObjectStore;
use strata_tier::{EncryptedStore, MasterKeys, S3Options, Sse, TierError};

/// The options of `strata_tier::open_store` from the broker's settings.
pub fn s3_options(cfg: &RemoteStorageConfig) -> S3Options {
    S3Options {
        endpoint: cfg.s3_endpoint.clone(),
        region: cfg.s3_region.clone(),
        path_style: cfg.s3_path_style,
        access_key_id: cfg.s3_access_key_id.clone(),
        secret_access_key: cfg.s3_secret_access_key.clone(),
        sse: match &cfg.s3_sse {
            S3Sse::None => Sse::None,
            S3Sse::S3 => Sse::S3,
            S3Sse::Kms { key_id, bucket_key } => Sse::Kms {
                key_id: key_id.clone(),
                bucket_key: *bucket_key,
            },
        },
    }
}

/// `store` inside an `EncryptedStore` when client-side encryption is on. Everything
/// above it (uploads, manifests, reads, the chunk cache) sees plaintext.
// `TierError` is large (it keeps `object_store::Error` sources by value, see
// strata-tier's lib.rs); this runs once at startup.
#[allow(clippy::result_large_err)]
pub fn with_encryption(
    cfg: &RemoteStorageConfig,
    store: Arc<dyn ObjectStore>,
) -> Result<Arc<dyn ObjectStore>, TierError> {
    let Some(enc) = &cfg.encryption else {
        return Ok(store);
    };
    let keys = MasterKeys::load(&enc.key_file, enc.key_id.as_deref())?;
    tracing::info!(
        key_file = %enc.key_file.display(),
        keys = ?keys.ids(),
        active = keys.active_id(),
        "remote tier client-side encryption on"
    );
    Ok(Arc::new(EncryptedStore::new(store, keys)))
}
