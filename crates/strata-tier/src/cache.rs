//! The chunk cache of remote reads: a `foyer` hybrid cache (memory, then a disk
//! directory under the data dir) of fixed-size chunks of remote objects, keyed by
//! `<object key>#<chunk index>`. Entries are immutable because objects are: a
//! segment re-uploaded gets a new uuid, hence a new key.

use std::path::PathBuf;

use bytes::Bytes;
use foyer::{BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder};

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
            memory_bytes: 64 << 20,
            disk_bytes: 0,
            disk_dir: None,
            read_ahead_chunks: 16,
        }
    }
}

pub type ChunkCache = HybridCache<String, Bytes>;

/// Builds the cache. Without a disk dir (or with `disk_bytes == 0`) the disk tier is
/// a no-op device and only memory is used.
pub async fn build(cfg: &CacheConfig) -> Result<ChunkCache> {
    let err = |e: foyer::Error| TierError::Cache {
        reason: e.to_string(),
    };
    let builder = HybridCacheBuilder::new()
        .with_name("strata-remote-chunks")
        .memory(cfg.memory_bytes.max(1 << 20))
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
