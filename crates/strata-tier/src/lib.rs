//! Strata's remote tier: closed log segments in object storage.
//!
//! Independent of `strata-log` and of Kafka types: the broker hands it file paths,
//! offsets and settings, and maps its [`TierError`] to Kafka error codes.
//!
//! ```text
//! rlm         pure scheduler: (state, event, now) -> actions          (rlm.rs)
//! copier      performs uploads, expiry, deletion, orphan sweeping     (copier.rs)
//! compaction  remote compaction's swap and retired-object deletion    (compaction.rs)
//! reader      remote reads through the chunk cache                    (reader.rs)
//!  |-- chunks coalesced streamed GETs, in-flight chunks, read-ahead    (chunks.rs)
//!  |-- cache  foyer hybrid cache of object chunks                     (cache.rs)
//!  |-- pieces a read's bytes as slices of chunks, not joined          (pieces.rs)
//! manifest    segment manifests, partition manifest chain (CAS)       (manifest.rs)
//! topics      topic metadata object, listing, discovery for recovery  (topics.rs)
//! retry       short retries of one idempotent store call            (retry.rs)
//! throttle    byte-rate limits of uploads and of remote reads        (throttle.rs)
//! layout      object keys                                             (layout.rs)
//! backend     object_store from a URL: file://, memory://, s3://     (backend.rs)
//! encryption  EncryptedStore: client-side AES-256-GCM, master keys   (encryption/)
//! counting    CountingStore: requests and bytes by kind and topic     (counting.rs)
//! faulty      FaultyStore: fault injection for tests                  (faulty.rs)
//! conformance checks every backend must pass                          (conformance.rs)
//! ```
//!
//! `faulty` and `conformance` are test code, compiled only with the `test-utils`
//! feature: this crate's tests enable it through a dev-dependency on itself, the
//! broker's `fault-injection` feature enables it for `STRATA_TIER_FAULTS`.
//!
//! # Invariants
//! - A segment belongs to the remote tier iff the latest partition manifest lists
//!   it; its objects exist before that and are deleted only after a version
//!   without it was published (a segment replaced by remote compaction: a
//!   grace period after that). Remote segments are contiguous in offsets.
//! - Nothing here deletes local data; the broker may let local retention remove a
//!   segment only once a manifest lists it ([`rlm::Action::EnforceLocalRetention`]).

// `TierError` carries `object_store::Error` (large) by value so that sources are
// kept; errors are the cold path of network I/O, so their size does not matter.
#![allow(clippy::result_large_err)]

mod backend;
mod body;
pub mod cache;
mod chunks;
pub mod compaction;
#[cfg(feature = "test-utils")]
pub mod conformance;
pub mod copier;
pub mod counting;
pub mod encryption;
mod error;
#[cfg(feature = "test-utils")]
pub mod faulty;
pub mod layout;
pub mod manifest;
mod pieces;
pub mod reader;
mod retry;
pub mod rlm;
pub mod throttle;
pub mod topics;

pub use backend::{kms_client, open_store, S3Options, Sse};
pub use cache::CacheConfig;
pub use counting::CountingStore;
pub use encryption::{EncryptedStore, Keyring, KmsClient, KmsKeys, MasterKeys};
pub use error::TierError;
pub use layout::PartitionKey;
pub use manifest::{PartitionManifest, RemoteSegment};
/// The `object_store` version this crate speaks, for callers naming its types.
pub use object_store;
pub use pieces::Pieces;
pub use reader::RemoteReader;
pub use throttle::Throttle;
