//! The chunk cache of remote reads: a `foyer` hybrid cache (memory, then a disk
//! directory under the data dir) of fixed-size chunks of remote objects, keyed by
//! `<object key>#<chunk index>`. Entries are immutable because objects are: a
//! segment re-uploaded gets a new uuid, hence a new key.
//!
//! Admission: chunks a sequential reader's stream brings in (a catch-up scan) enter the
//! memory tier's low-priority pool and stay out of the disk tier ([`scan_properties`]);
//! chunks read at a random position (seeks, a consumer's first fetch, indexes) enter the
//! protected pool, which may fill up to [`PROTECTED_RATIO`] of the memory tier. The LRU
//! evicts from the low-priority pool first, so a scan of any length replaces other scan
//! chunks, not the working set of other readers; the rest of the memory tier is room for
//! read-ahead, which is budgeted at half of it.

use std::path::PathBuf;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, Hint, HybridCache, HybridCacheBuilder,
    HybridCacheProperties, Location, LruConfig,
};

use crate::error::{Result, TierError};

/// Sizes of the chunk cache (`remote.cache.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Size of one ranged GET and cache entry (`remote.fetch.chunk.bytes`).
    pub chunk_bytes: usize,
    /// `remote.cache.size.bytes`: memory tier.
    pub memory_bytes: usize,
    /// `remote.cache.disk.size.bytes`: disk tier; 0 disables it.
    pub disk_bytes: usize,
    /// Directory of the disk tier (`<first log dir>/remote-cache`).
    pub disk_dir: Option<PathBuf>,
    /// Chunks fetched ahead of a sequential reader.
    pub read_ahead_chunks: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            chunk_bytes: 1 << 20,
            memory_bytes: 256 << 20,
            disk_bytes: 0,
            disk_dir: None,
            read_ahead_chunks: 16,
        }
    }
}

pub type ChunkCache = HybridCache<String, Bytes>;

/// Share of the memory tier that chunks read at random positions may hold.
pub const PROTECTED_RATIO: f64 = 0.5;

/// How a scan's chunks are admitted: low priority, memory only.
pub fn scan_properties() -> HybridCacheProperties {
    HybridCacheProperties::default()
        .with_hint(Hint::Low)
        .with_location(Location::InMem)
}

/// Memory shards: as many as keep at least 64 chunks in each, at most 8.
fn shards(cfg: &CacheConfig) -> usize {
    (cfg.memory_bytes / cfg.chunk_bytes.max(1) / 64).clamp(1, 8)
}

/// Builds the cache. Without a disk dir (or with `disk_bytes == 0`) the disk tier is
/// a no-op device and only memory is used.
pub async fn build(cfg: &CacheConfig) -> Result<ChunkCache> {
    let err = |e: foyer::Error| TierError::Cache {
        reason: e.to_string(),
    };
    let builder = HybridCacheBuilder::new()
        .with_name("strata-remote-chunks")
        .with_flush_on_close(false)
        .memory(cfg.memory_bytes.max(1 << 20))
        // Each shard evicts on its own: a shard must hold many chunks, or a read-ahead
        // window hashed over the shards evicts its own chunks before they are read.
        .with_shards(shards(cfg))
        .with_eviction_config(LruConfig {
            high_priority_pool_ratio: PROTECTED_RATIO,
        })
        .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
        .storage();
    match (&cfg.disk_dir, cfg.disk_bytes) {
        (Some(dir), n) if n > 0 => {
            std::fs::create_dir_all(dir).map_err(|e| TierError::Cache {
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(n)
                .build()
                .map_err(err)?;
            builder
                .with_engine_config(
                    BlockEngineConfig::new(device)
                        .with_block_size(cfg.chunk_bytes.max(1 << 20) * 4),
                )
                .build()
                .await
                .map_err(err)
        }
        _ => builder.build().await.map_err(err),
    }
}
