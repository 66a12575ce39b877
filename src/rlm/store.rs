//! The remote tier's object store as `remote.storage.*` describes it: the backend at
//! `remote.storage.url` with its S3 settings (server-side encryption included), inside
//! strata-tier's `EncryptedStore` when `remote.storage.encryption.enable` is on.
//!
//! Master keys are read once, here: adding a key (rotation) takes a restart. A key file
//! that cannot be read or parsed stops the broker at startup, naming the file and line.
//! With `remote.storage.encryption.kms.key.id`, new objects' data keys come from AWS
//! KMS (region and credentials of the S3 backend); the key file, if set, still opens
//! the objects it wrapped. KMS is not called at startup: a missing or disabled key
//! shows on the first upload or read, as an error naming the object and the key.

use std::sync::Arc;

use strata_config::{RemoteStorageConfig, S3Sse};
use strata_tier::object_store::ObjectStore;
use strata_tier::{
    kms_client, EncryptedStore, Keyring, KmsKeys, MasterKeys, S3Options, Sse, TierError,
};

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
    let file = match &enc.key_file {
        Some(path) => Some(MasterKeys::load(path, enc.key_id.as_deref())?),
        None => None,
    };
    let kms = match &enc.kms_key_id {
        Some(key_id) => Some(KmsKeys {
            client: kms_client(&s3_options(cfg), enc.kms_endpoint.as_deref())?,
            key_id: key_id.clone(),
        }),
        None => None,
    };
    tracing::info!(
        key_file = ?enc.key_file,
        file_keys = ?file.as_ref().map(|k| k.ids()),
        kms_key = ?enc.kms_key_id,
        kms_endpoint = ?kms.as_ref().map(|k| k.client.endpoint().to_string()),
        "remote tier client-side encryption on"
    );
    let keyring = Keyring::new(file, kms);
    tracing::info!(
        active = keyring.active_id(),
        "new objects' data keys are wrapped by this key"
    );
    Ok(Arc::new(EncryptedStore::new(store, keyring)))
}
