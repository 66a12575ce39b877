//! Where data keys come from and how they are opened: the key file's master keys
//! (format version 1) and AWS KMS (version 2). A broker writes with one of them (KMS
//! when `remote.storage.encryption.kms.key.id` is set) and reads objects of both, so
//! switching from a key file to KMS needs no rewrite: keep the key file while old
//! objects use it.
//!
//! Data keys KMS opened are kept in memory, bounded, keyed by the object path and its
//! blob (the path too: the blob is only valid for its object, and a cache keyed by
//! blob alone would open a header copied onto another object without asking KMS). The
//! concurrent ranged GETs of one cold segment wait for a single `Decrypt`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use zeroize::Zeroizing;

use super::format::{self, DataKey, Layout, Wrapped};
use super::keys::MasterKeys;
use super::kms::{KmsClient, KmsError};
use crate::error::TierError;

/// KMS-opened data keys kept: one per segment being read; 32 bytes each.
const KMS_CACHE_ENTRIES: usize = 16 * 1024;

/// KMS wrapping: the client and the key (id, ARN or alias) new objects use.
pub struct KmsKeys {
    pub client: KmsClient,
    pub key_id: String,
}

type RawKey = Arc<Zeroizing<[u8; 32]>>;

/// The master keys of a broker: a key file, KMS, or both (see the module docs).
pub struct Keyring {
    file: Option<MasterKeys>,
    kms: Option<KmsKeys>,
    opened: foyer::Cache<Vec<u8>, RawKey>,
    /// One lock per data key being opened, so that concurrent reads call KMS once.
    opening: parking_lot::Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    decrypt_calls: AtomicU64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("file", &self.file)
            .field("kms", &self.kms.as_ref().map(|k| (&k.key_id, &k.client)))
            .finish()
    }
}

impl From<MasterKeys> for Keyring {
    fn from(keys: MasterKeys) -> Keyring {
        Keyring::new(Some(keys), None)
    }
}

impl Keyring {
    /// With `kms`, new objects get KMS data keys; the key file (if any) still opens
    /// the objects it wrapped.
    pub fn new(file: Option<MasterKeys>, kms: Option<KmsKeys>) -> Keyring {
        assert!(
            file.is_some() || kms.is_some(),
            "a keyring needs a key file or KMS"
        );
        Keyring {
            file,
            kms,
            opened: foyer::CacheBuilder::new(KMS_CACHE_ENTRIES).build(),
            opening: parking_lot::Mutex::new(HashMap::new()),
            decrypt_calls: AtomicU64::new(0),
        }
    }

    pub fn file_keys(&self) -> Option<&MasterKeys> {
        self.file.as_ref()
    }

    /// The key that wraps new objects' data keys: the KMS key id, or the key file's
    /// active id.
    pub fn active_id(&self) -> &str {
        match (&self.kms, &self.file) {
            (Some(k), _) => &k.key_id,
            (None, Some(f)) => f.active_id(),
            (None, None) => unreachable!("checked in Keyring::new"),
        }
    }

    /// The layout of the objects this keyring writes: reads assume it until an
    /// object's header says otherwise.
    pub fn layout(&self) -> Layout {
        if self.kms.is_some() {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// KMS `Decrypt` calls made so far (tests, and the cache's effect).
    pub fn kms_decrypt_calls(&self) -> u64 {
        self.decrypt_calls.load(Ordering::Relaxed)
    }

    /// A data key for a new object at `path`, and its header.
    pub async fn new_object(&self, path: &Path) -> Result<(DataKey, Bytes), TierError> {
        let Some(kms) = &self.kms else {
            let file = self.file.as_ref().expect("checked in Keyring::new");
            return format::new_object(file, path);
        };
        let object = path.to_string();
        let new = kms
            .client
            .generate_data_key(&kms.key_id, &object)
            .await
            .map_err(|e| kms_error(path, &kms.key_id, "GenerateDataKey", e))?;
        let header = format::kms_header(&new.arn, &new.blob).map_err(|message| TierError::Kms {
            key: object.clone(),
            kms_key: kms.key_id.clone(),
            op: "GenerateDataKey",
            code: "UnexpectedAnswer".into(),
            message,
        })?;
        let key = format::data_key(&new.plaintext[..], &new.arn).map_err(|_| TierError::Kms {
            key: object.clone(),
            kms_key: new.arn.clone(),
            op: "GenerateDataKey",
            code: "UnexpectedAnswer".into(),
            message: "the data key is not a usable AES-256 key".into(),
        })?;
        self.opened
            .insert(cache_key(path, &new.blob), Arc::new(new.plaintext));
        Ok((key, header))
    }

    /// Opens the data key of the header `h` of the object at `path`.
    pub async fn open(&self, path: &Path, h: &[u8]) -> Result<(Layout, DataKey), TierError> {
        match format::parse_header(path, h)? {
            (
                layout,
                Wrapped::File {
                    id,
                    nonce,
                    wrapped,
                    aad,
                },
            ) => {
                let Some(file) = &self.file else {
                    return Err(TierError::UnknownMasterKey {
                        key: path.to_string(),
                        key_id: id.to_string(),
                    });
                };
                let key = format::open_file_wrapped(file, path, id, nonce, &wrapped, &aad)?;
                Ok((layout, key))
            }
            (layout, Wrapped::Kms { arn, blob }) => {
                let raw = self.kms_decrypt(path, arn, blob).await?;
                let key = format::data_key(&raw[..], arn).map_err(|_| TierError::Kms {
                    key: path.to_string(),
                    kms_key: arn.to_string(),
                    op: "Decrypt",
                    code: "UnexpectedAnswer".into(),
                    message: "the data key is not a usable AES-256 key".into(),
                })?;
                Ok((layout, key))
            }
        }
    }

    /// The plaintext of `blob`, from the cache or from one KMS call however many
    /// readers ask at once.
    async fn kms_decrypt(&self, path: &Path, arn: &str, blob: &[u8]) -> Result<RawKey, TierError> {
        let Some(kms) = &self.kms else {
            return Err(TierError::KmsNotConfigured {
                key: path.to_string(),
                kms_key: arn.to_string(),
            });
        };
        let ck = cache_key(path, blob);
        if let Some(e) = self.opened.get(&ck) {
            return Ok(e.value().clone());
        }
        let lock = self.opening.lock().entry(ck.clone()).or_default().clone();
        let got = {
            let _turn = lock.lock().await;
            match self.opened.get(&ck) {
                Some(e) => Ok(e.value().clone()),
                None => {
                    self.decrypt_calls.fetch_add(1, Ordering::Relaxed);
                    match kms.client.decrypt(arn, blob, path.as_ref()).await {
                        Ok(raw) => {
                            let raw = Arc::new(raw);
                            self.opened.insert(ck.clone(), raw.clone());
                            Ok(raw)
                        }
                        Err(e) => Err(kms_error(path, arn, "Decrypt", e)),
                    }
                }
            }
        };
        // The last reader out removes the lock (the map's reference is then the only one).
        let mine = Arc::downgrade(&lock);
        drop(lock);
        let mut opening = self.opening.lock();
        if opening.get(&ck).is_some_and(|l| {
            std::ptr::eq(Arc::as_ptr(l), mine.as_ptr()) && Arc::strong_count(l) == 1
        }) {
            opening.remove(&ck);
        }
        got
    }
}

fn cache_key(path: &Path, blob: &[u8]) -> Vec<u8> {
    let p = path.as_ref().as_bytes();
    let mut k = Vec::with_capacity(p.len() + 1 + blob.len());
    k.extend_from_slice(p);
    k.push(0);
    k.extend_from_slice(blob);
    k
}

fn kms_error(path: &Path, kms_key: &str, op: &'static str, e: KmsError) -> TierError {
    TierError::Kms {
        key: path.to_string(),
        kms_key: kms_key.to_string(),
        op,
        code: e.code,
        message: e.message,
    }
}
