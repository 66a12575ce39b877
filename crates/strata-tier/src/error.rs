//! The tier's one error enum. Messages name the topic-partition, offset and object
//! key involved; the server maps variants to Kafka error codes, never this crate.

use crate::layout::PartitionKey;

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("invalid remote.storage.url '{url}': {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open the remote store at '{url}': {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("upload of segment {base_offset} of {partition} to {key} failed: {source}")]
    Upload {
        partition: PartitionKey,
        base_offset: i64,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("reading local file {path} of {partition} for upload failed: {source}")]
    LocalRead {
        partition: PartitionKey,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {key} of {partition}: {source}")]
    Store {
        partition: PartitionKey,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("manifest {key} of {partition} is not valid JSON ({source}); inspect or delete it")]
    BadManifest {
        partition: PartitionKey,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("partition manifest of {partition} kept changing under us after {attempts} attempts")]
    ManifestContention {
        partition: PartitionKey,
        attempts: u32,
    },
    #[error(
        "offset {offset} of {partition} is not in the remote tier (remote holds [{start}, {end}))"
    )]
    OffsetNotTiered {
        partition: PartitionKey,
        offset: i64,
        start: i64,
        end: i64,
    },
    #[error("remote segment {key} of {partition} is corrupt at byte {position}: {reason}")]
    CorruptSegment {
        partition: PartitionKey,
        key: String,
        position: u64,
        reason: String,
    },
    #[error("segment {base_offset} of {partition} not recorded: the remote tier ends at {remote_end} and the local log still holds offsets from {local_start}, so it would leave a hole")]
    WouldLeaveHole {
        partition: PartitionKey,
        base_offset: i64,
        remote_end: i64,
        local_start: i64,
    },
    #[error(
        "remote compaction of {partition} built an invalid swap: {reason}; nothing was published"
    )]
    BadSwap {
        partition: PartitionKey,
        reason: String,
    },
    #[error("chunk cache: {reason}")]
    Cache { reason: String },
    #[error("remote.storage.encryption.key.file {path}: {reason}")]
    KeyFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("object {key} is not encrypted by Strata ({reason}): it was written without remote.storage.encryption.enable or by another program, and is not served")]
    NotEncrypted { key: String, reason: String },
    #[error("object {key} uses an encryption format this broker does not read ({reason}); it was written by a newer Strata")]
    UnsupportedFormat { key: String, reason: String },
    #[error("object {key} is encrypted under master key '{key_id}', which remote.storage.encryption.key.file does not hold; put that key back in the file (a key must stay there while objects use it)")]
    UnknownMasterKey { key: String, key_id: String },
    #[error("object {key}: authentication of {what} failed: the object was changed after upload, or master key '{key_id}' is not the key it was written with; nothing of it is served")]
    Tampered {
        key: String,
        what: String,
        key_id: String,
    },
    #[error("object {key} has its data key wrapped by AWS KMS key '{kms_key}', but remote.storage.encryption.kms.key.id is not set, so this broker does not call KMS; set it to let the broker decrypt with KMS")]
    KmsNotConfigured { key: String, kms_key: String },
    #[error("object {key}: AWS KMS {op} with key '{kms_key}' failed: {code}: {message}; nothing of the object is served (check that the key exists, is enabled, and that the broker's role may call kms:{op} on it)")]
    Kms {
        key: String,
        kms_key: String,
        op: &'static str,
        code: String,
        message: String,
    },
    #[error("object {key} is truncated or corrupt: {reason}; nothing past the damage is served")]
    TruncatedObject { key: String, reason: String },
}

pub type Result<T, E = TierError> = std::result::Result<T, E>;
