//! The RemoteLogManager: uploads closed segments of tiered partitions, expires remote data by
//! retention, trims the local logs to `local.retention.*`, compacts the remote segments of
//! compacted topics (`compact.rs`), deletes objects no manifest needs (`sweep.rs`), and keeps
//! `topic.json` in the bucket.
//!
//! Decisions come from `strata_tier::rlm::Scheduler` (pure); this module gathers partition
//! views from the replica manager, performs the actions with `strata_tier::copier`
//! (`upload.rs`), and reports back. It never blocks a local read or produce: uploads run on
//! their own tasks, and the only shared state is the partition's manifest pointer and the
//! log's own locks. Remote *reads* are not here: the replica manager serves them.
//!
//! Dependencies point down: this module uses the replica manager and the metadata cache;
//! neither knows it exists.

mod compact;
mod compact_pass;
#[cfg(test)]
mod compact_tests;
mod packing;
mod store;
mod sweep;
mod table_maintain;
mod tables;
mod topics;
mod upload;

pub use compact::RemoteCompactionInfo;
pub use compact_pass::CompactError;
pub use compact_pass::PassReport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_config::{RemoteStorageConfig, TopicConfig};
use strata_tier::copier::Throttle;
use strata_tier::object_store::ObjectStore;
use strata_tier::rlm::{
    CompactionPolicy, Event, LocalSegment, PartitionView, Policy, RemoteSpan, Scheduler,
};
use strata_tier::{manifest, CacheConfig, PartitionKey, RemoteReader, TierError};
use tokio::sync::{watch, Notify};

use crate::metadata::{MetadataCache, TopicState};
use crate::now_ms;
use crate::replica::{Partition, RemoteTier, ReplicaManager};
pub use store::{s3_options, with_encryption};

/// Why [`open_remote`] failed; `serve` and `recover` report it as it is.
#[derive(Debug, thiserror::Error)]
pub enum TierOpenError {
    #[error("cannot open the remote tier: {0}; check remote.storage.url, remote.storage.s3.* and remote.storage.encryption.*")]
    Tier(#[from] TierError),
    #[error(transparent)]
    FaultInjection(#[from] FaultInjectionUnavailable),
    #[error(transparent)]
    ReaderPool(#[from] crate::replica::reader_pool::ReaderPoolError),
}

/// `STRATA_TIER_FAULTS` is set in a binary built without the `fault-injection` feature.
#[derive(Debug, thiserror::Error)]
#[error("STRATA_TIER_FAULTS is set but this strata binary was built without the fault-injection feature; unset it, or build with `--features fault-injection`")]
pub struct FaultInjectionUnavailable;

/// Opens the object store at `remote.storage.url` and the remote reader over it (chunk cache
/// under `cache_dir`): what the replica manager reads with and this module uploads to.
pub async fn open_remote(
    cfg: &RemoteStorageConfig,
    cache_dir: PathBuf,
) -> Result<RemoteTier, TierOpenError> {
    // Faults are injected below the decryption, where a failing network would be; requests
    // are counted below the faults, on the wire (an injected fault is not a request).
    let raw = with_faults(counted(
        strata_tier::open_store(&cfg.url, &s3_options(cfg))?,
        &cfg.url,
    ))?;
    let store = with_encryption(cfg, raw.clone())?;
    let cache = CacheConfig {
        chunk_bytes: cfg.fetch_chunk_bytes.max(4096) as usize,
        memory_bytes: cfg.cache_size_bytes.max(1 << 20) as usize,
        disk_bytes: cfg.cache_disk_size_bytes.max(0) as usize,
        disk_dir: Some(cache_dir),
        read_ahead_chunks: cfg.read_ahead_chunks.max(0) as usize,
    };
    let reader = RemoteReader::new(store.clone(), cache)
        .await?
        .with_fetch_throttle(Arc::new(Throttle::from_setting(
            cfg.fetch_max_bytes_per_second,
        )))
        .with_lookup_hook(Arc::new(|pk: &PartitionKey, hit: bool| {
            crate::metrics::tier::cache_lookup(&pk.topic, pk.partition, hit)
        }));
    let pool = crate::replica::reader_pool::ReaderPool::new(
        cfg.reader_threads.max(1) as usize,
        cfg.reader_max_pending_tasks.max(0) as usize,
    )?;
    tracing::info!(url = %cfg.url, "remote tier ready");
    Ok(RemoteTier {
        reader,
        store,
        table_store: raw,
        fetch_max_wait: Duration::from_millis(cfg.fetch_max_wait_ms.max(1) as u64),
        pool: Arc::new(pool),
    })
}

/// `store` inside a `CountingStore` that feeds `strata_tier_store_{requests,bytes}_total`.
/// On S3 a delete is a bulk DeleteObjects request of up to 1000 keys.
fn counted(store: Arc<dyn ObjectStore>, url: &str) -> Arc<dyn ObjectStore> {
    let bulk = if url.starts_with("s3") {
        strata_tier::counting::S3_PAGE
    } else {
        0
    };
    Arc::new(
        strata_tier::CountingStore::new(store, bulk).with_hook(Arc::new(
            |topic: &str, kind: strata_tier::counting::Request, requests: u64, bytes: u64| {
                crate::metrics::tier::store_request(topic, kind.as_str(), requests, bytes)
            },
        )),
    )
}

/// Testing aid: `STRATA_TIER_FAULTS="fail_every=7,truncate_every=5,delay_ms=2"` wraps
/// the store in a `FaultyStore`, so end-to-end tests can run the real broker against
/// a failing object store. Unset means no wrapper. Only in binaries built with the
/// `fault-injection` feature (scripts/test.sh builds them so): `FaultyStore` is
/// test code of strata-tier, not part of a production build. Never fails here; the
/// error is the build without the feature's.
#[cfg(feature = "fault-injection")]
fn with_faults(
    store: Arc<dyn ObjectStore>,
) -> Result<Arc<dyn ObjectStore>, FaultInjectionUnavailable> {
    let Ok(spec) = std::env::var("STRATA_TIER_FAULTS") else {
        return Ok(store);
    };
    let mut f = strata_tier::faulty::Faults::default();
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let n: u64 = v.trim().parse().unwrap_or(0);
        match k.trim() {
            "fail_every" => f.fail_every = n,
            "truncate_every" => f.truncate_every = n,
            "delay_ms" => f.delay = Duration::from_millis(n),
            other => tracing::warn!(
                setting = other,
                "unknown STRATA_TIER_FAULTS setting ignored"
            ),
        }
    }
    tracing::warn!(faults = ?f, "STRATA_TIER_FAULTS set: injecting object store faults");
    Ok(strata_tier::faulty::FaultyStore::new(store, f))
}

/// Without the `fault-injection` feature there is no `FaultyStore`. A set
/// `STRATA_TIER_FAULTS` is refused rather than ignored, so that a test or benchmark
/// run against this binary cannot pass believing it injected faults.
#[cfg(not(feature = "fault-injection"))]
fn with_faults(
    store: Arc<dyn ObjectStore>,
) -> Result<Arc<dyn ObjectStore>, FaultInjectionUnavailable> {
    match std::env::var_os("STRATA_TIER_FAULTS") {
        Some(_) => Err(FaultInjectionUnavailable),
        None => Ok(store),
    }
}

pub struct RemoteLogManager {
    metadata: Arc<MetadataCache>,
    replicas: Arc<ReplicaManager>,
    store: Arc<dyn ObjectStore>,
    url: String,
    scheduler: Mutex<Scheduler>,
    throttle: Throttle,
    interval: Duration,
    wake: Notify,
    /// Orders writes of `topic.json` objects: each change gets a sequence number
    /// when applied; a write runs under this lock and is skipped when a later
    /// change of the same topic was already written (topic id -> last sequence).
    topic_meta_written: tokio::sync::Mutex<HashMap<uuid::Uuid, u64>>,
    topic_meta_seq: std::sync::atomic::AtomicU64,
    /// When followers last synced their tiered partitions with the bucket.
    follower_sync: Mutex<Option<Instant>>,
    /// Remote compaction: scratch space, throttle, one pass at a time, what passes did.
    compactor: compact::Compactor,
    /// Orphan and retired-object sweeps per partition.
    sweeps: sweep::Sweeps,
    /// Iceberg tables of `iceberg.enable` topics (`tables.rs`).
    tables: Option<tables::Tables>,
}

/// Kafka's -2: local retention falls back to `retention.*` as configured. Total retention
/// (remote expiry) applies only when `cleanup.policy` includes `delete`: a compacted topic's
/// remote segments are never expired by time or size. Local retention still applies to it,
/// since it only drops local copies of segments the remote tier holds.
fn policy(c: &TopicConfig) -> Policy {
    let pick = |local: i64, total: i64| if local == -2 { total } else { local };
    let (retention_ms, retention_bytes) = if c.deletes() {
        (c.retention_ms, c.retention_bytes)
    } else {
        (-1, -1)
    };
    Policy {
        retention_ms,
        retention_bytes,
        local_retention_ms: pick(c.local_retention_ms, c.retention_ms),
        local_retention_bytes: pick(c.local_retention_bytes, c.retention_bytes),
        copy_disabled: c.remote_log_copy_disable,
    }
}

/// Bytes of closed local segments not yet in the remote tier (the active segment is
/// never uploaded, so it does not count).
fn upload_lag(local: &[LocalSegment], remote: &[RemoteSpan]) -> u64 {
    let remote_end = remote.last().map_or(i64::MIN, |r| r.next_offset);
    let closed = local.len().saturating_sub(1);
    local[..closed]
        .iter()
        .filter(|s| s.next_offset > remote_end)
        .map(|s| s.size_bytes)
        .sum()
}

/// The partitions of one tick that this node leads, with their topics, by remote key.
type Leaders = HashMap<PartitionKey, (Arc<Partition>, Arc<TopicState>)>;

impl RemoteLogManager {
    /// The RemoteLogManager over the replica manager's remote tier; `None` when the node has
    /// no remote tier.
    pub fn new(
        cfg: &RemoteStorageConfig,
        metadata: Arc<MetadataCache>,
        replicas: Arc<ReplicaManager>,
    ) -> Option<Arc<RemoteLogManager>> {
        let store = replicas.remote()?.store.clone();
        let tables = tables::Tables::new(cfg, replicas.remote()?.table_store.clone());
        let scratch = metadata.config().log_dirs.first().map_or_else(
            || PathBuf::from("remote-compaction"),
            |d| d.join("remote-compaction"),
        );
        Some(Arc::new(RemoteLogManager {
            metadata,
            replicas,
            store,
            url: cfg.url.clone(),
            scheduler: Mutex::new(Scheduler::new()),
            throttle: Throttle::from_setting(cfg.copy_max_bytes_per_second),
            interval: Duration::from_millis(cfg.task_interval_ms.max(10) as u64),
            wake: Notify::new(),
            topic_meta_written: tokio::sync::Mutex::new(HashMap::new()),
            topic_meta_seq: std::sync::atomic::AtomicU64::new(0),
            follower_sync: Mutex::new(None),
            compactor: compact::Compactor::new(scratch, cfg.compaction_max_bytes_per_second),
            sweeps: Default::default(),
            tables,
        }))
    }

    /// The object store (for recovery from the bucket).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `remote.storage.url`, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pending upload state of a partition (for `tier status`).
    pub fn upload_state(&self, key: &PartitionKey) -> Option<strata_tier::rlm::UploadState> {
        self.scheduler.lock().state(key).cloned()
    }

    /// Spawns the loop: a tick at start (which also loads the manifests of tiered
    /// partitions), then every `remote.log.manager.task.interval.ms` or as soon as an upload
    /// finishes.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let rlm = self.clone();
        let mut s = shutdown;
        tokio::spawn(async move {
            loop {
                rlm.tick().await;
                tokio::select! {
                    _ = tokio::time::sleep(rlm.interval) => {}
                    _ = rlm.wake.notified() => {}
                    _ = s.changed() => return,
                }
                if *s.borrow() {
                    return;
                }
            }
        });
    }

    async fn tick(self: &Arc<Self>) {
        let now = now_ms();
        let cleaner = self.metadata.config().cleaner.clone();
        let mut views = Vec::new();
        let mut leaders = Leaders::new();
        let mut followers = Vec::new();
        for name in self.metadata.topic_names() {
            let Some(topic) = self.metadata.topic(&name) else {
                continue;
            };
            if !topic.config.remote_storage_enable {
                continue;
            }
            for p in self.replicas.topic_partitions(&name) {
                // Only the leader uploads; followers trim what is tiered (`follow_tier`).
                if !p.is_leader() {
                    followers.push((p, topic.clone()));
                    continue;
                }
                let stale = p.take_manifest_stale() || p.remote_manifest().is_none();
                if stale && !self.load_manifest(&p).await {
                    continue;
                }
                let view = partition_view(&p, &topic.config, &cleaner);
                leaders.insert(view.key.clone(), (p, topic.clone()));
                views.push(view);
            }
        }
        let actions = self.scheduler.lock().on_event(
            Instant::now(),
            Event::Tick {
                now_ms: now,
                partitions: views,
            },
        );
        for action in actions {
            self.perform(&leaders, action, now).await;
        }
        self.sweep(&leaders, now);
        self.write_tables(&leaders);
        self.follow_tier(followers, now).await;
    }

    /// Loads the manifests of every tiered partition (at startup, before serving,
    /// so that the first ListOffsets and Fetch already see the remote tier).
    pub async fn load_manifests(self: &Arc<Self>) {
        for name in self.metadata.topic_names() {
            if self.replicas.is_tiered(&name) {
                for p in self.replicas.topic_partitions(&name) {
                    self.load_manifest(&p).await;
                }
            }
        }
    }

    /// Loads the latest manifest of `p` and sweeps orphans once. False on error.
    async fn load_manifest(self: &Arc<Self>, p: &Arc<Partition>) -> bool {
        if !self.read_manifest(p).await {
            return false;
        }
        if let Some(m) = p.remote_manifest() {
            tracing::info!(tp = %p.tp, remote_start = ?m.start_offset(), remote_end = ?m.end_offset(), version = m.version, "loaded remote manifest");
        }
        self.sweep_after_load(p.tier_key());
        true
    }

    /// Reads the latest manifest of `p` into it. False on error.
    async fn read_manifest(&self, p: &Arc<Partition>) -> bool {
        let key = p.tier_key();
        match manifest::load(&*self.store, &key).await {
            Ok(m) => {
                p.set_remote_manifest(m.unwrap_or_else(|| manifest::PartitionManifest::empty(key)));
                true
            }
            Err(e) => {
                tracing::warn!(tp = %p.tp, error = %e, "cannot load the remote manifest; will retry");
                *p.last_tier_error.lock() = Some((e.to_string(), now_ms()));
                false
            }
        }
    }
}

/// What the scheduler sees of a partition this node leads; also records its upload lag. A
/// compacted topic uploads only what local cleaning covered, and its remote segments are
/// compacted (both while `log.cleaner.enable`).
fn partition_view(
    p: &Partition,
    config: &TopicConfig,
    cleaner: &strata_config::CleanerConfig,
) -> PartitionView {
    let manifest = p.remote_manifest();
    let remote: Vec<RemoteSpan> = manifest
        .as_ref()
        .map(|m| {
            m.segments
                .iter()
                .map(|s| RemoteSpan {
                    base_offset: s.base_offset,
                    next_offset: s.next_offset,
                    size_bytes: s.size_bytes,
                    max_timestamp: s.max_timestamp,
                })
                .collect()
        })
        .unwrap_or_default();
    let local: Vec<LocalSegment> = p
        .log
        .segments()
        .iter()
        .map(|s| LocalSegment {
            base_offset: s.base_offset,
            next_offset: s.next_offset,
            size_bytes: s.size_bytes,
            max_timestamp: s.max_timestamp.unwrap_or(-1),
        })
        .collect();
    crate::metrics::tier::upload_lag(&p.tp.topic, p.tp.partition, upload_lag(&local, &remote));
    let compacts = config.compacts();
    let compaction = (compacts && cleaner.enable).then(|| CompactionPolicy {
        min_dirty_ratio: config.min_cleanable_dirty_ratio,
        backoff: Duration::from_millis(cleaner.backoff_ms.max(0) as u64),
        dirty_from: manifest.as_ref().map_or(0, |m| m.dirty_start()),
        tombstone_horizon_ms: manifest.as_ref().and_then(|m| m.tombstone_horizon_ms),
    });
    PartitionView {
        key: p.tier_key(),
        local,
        // Uploads stop at the last stable offset, not just the high watermark: a remote
        // segment never holds a transaction still open, so remote data needs no LSO bound
        // and its `.txnindex` is final when uploaded.
        high_watermark: p.last_stable_offset(),
        // Without a cleaner nothing would ever be cleaned: segments are uploaded as they are.
        clean_end: (compacts && cleaner.enable).then(|| p.log.first_dirty_offset()),
        remote,
        policy: policy(config),
        compaction,
    }
}
