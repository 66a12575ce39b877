//! The broker side of tiered storage: the RemoteLogManager's driver and remote
//! reads for Fetch. Decisions come from `strata_tier::rlm::Scheduler` (pure); this
//! module gathers partition views, performs the actions with `strata_tier::copier`,
//! and reports back. It never blocks a local read or produce: uploads and remote
//! reads run on their own tasks, and the only shared state is the partition's
//! manifest pointer and the log's own locks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strata_config::{RemoteStorageConfig, TopicConfig};
use strata_tier::copier::{self, LocalSegmentFiles, Throttle, TopicInfo};
use strata_tier::object_store::ObjectStore;
use strata_tier::rlm::{Action, Event, LocalSegment, PartitionView, Policy, RemoteSpan, Scheduler};
use strata_tier::{
    manifest, topics, CacheConfig, PartitionKey, RemoteReader, S3Options, TierError,
};
use tokio::sync::{watch, Notify};

use super::tasks::off_worker;
use super::{now_ms, Broker, Partition, TopicState};
use crate::protocol::tier_state::PartitionTierState;

/// Local retention of a tiered partition ([`strata_log::Log::enforce_local_retention`]) on
/// the blocking pool, logged with the `role` (leader or follower) that ran it.
async fn trim_local(
    p: &Arc<Partition>,
    now: i64,
    tiered_end: i64,
    local_ms: i64,
    local_bytes: i64,
    role: &'static str,
) {
    let part = p.clone();
    let done = off_worker(move || {
        part.log
            .enforce_local_retention(now, tiered_end, local_ms, local_bytes)
    });
    match done.await {
        None | Some(Ok(0)) => {}
        Some(Ok(n)) => {
            tracing::info!(tp = %p.tp, role, segments = n, local_log_start_offset = p.log.log_start_offset(), "local retention deleted tiered segments")
        }
        Some(Err(e)) => {
            tracing::warn!(tp = %p.tp, role, error = %e, "local retention failed; will retry")
        }
    }
}

/// Objects younger than this are never swept as orphans (an upload may be writing them).
const ORPHAN_GRACE: Duration = Duration::from_secs(60);

pub struct Tier {
    pub store: Arc<dyn ObjectStore>,
    pub reader: RemoteReader,
    pub url: String,
    scheduler: Mutex<Scheduler>,
    throttle: Throttle,
    pub fetch_max_wait: Duration,
    interval: Duration,
    wake: Notify,
    /// Orders writes of `topic.json` objects: each change gets a sequence number
    /// when applied; a write runs under this lock and is skipped when a later
    /// change of the same topic was already written (topic id -> last sequence).
    topic_meta_written: tokio::sync::Mutex<HashMap<uuid::Uuid, u64>>,
    topic_meta_seq: std::sync::atomic::AtomicU64,
}

/// Why [`Tier::open`] failed; `serve` and `recover` report it as it is.
#[derive(Debug, thiserror::Error)]
pub enum TierOpenError {
    #[error("cannot open the remote tier: {0}; check remote.storage.url and remote.storage.s3.*")]
    Tier(#[from] TierError),
    #[error(transparent)]
    FaultInjection(#[from] FaultInjectionUnavailable),
}

/// `STRATA_TIER_FAULTS` is set in a binary built without the `fault-injection` feature.
#[derive(Debug, thiserror::Error)]
#[error("STRATA_TIER_FAULTS is set but this strata binary was built without the fault-injection feature; unset it, or build with `--features fault-injection`")]
pub struct FaultInjectionUnavailable;

impl Tier {
    pub async fn open(
        cfg: &RemoteStorageConfig,
        cache_dir: std::path::PathBuf,
    ) -> Result<Tier, TierOpenError> {
        let s3 = S3Options {
            endpoint: cfg.s3_endpoint.clone(),
            region: cfg.s3_region.clone(),
            path_style: cfg.s3_path_style,
            access_key_id: cfg.s3_access_key_id.clone(),
            secret_access_key: cfg.s3_secret_access_key.clone(),
        };
        let store = with_faults(strata_tier::open_store(&cfg.url, &s3)?)?;
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
        tracing::info!(url = %cfg.url, "remote tier ready");
        Ok(Tier {
            store,
            reader,
            url: cfg.url.clone(),
            scheduler: Mutex::new(Scheduler::new()),
            throttle: Throttle::from_setting(cfg.copy_max_bytes_per_second),
            fetch_max_wait: Duration::from_millis(cfg.fetch_max_wait_ms.max(1) as u64),
            interval: Duration::from_millis(cfg.task_interval_ms.max(10) as u64),
            wake: Notify::new(),
            topic_meta_written: tokio::sync::Mutex::new(HashMap::new()),
            topic_meta_seq: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Pending upload state of a partition (for `tier status`).
    pub fn upload_state(&self, key: &PartitionKey) -> Option<strata_tier::rlm::UploadState> {
        self.scheduler.lock().state(key).cloned()
    }
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

/// Kafka's -2: local retention falls back to total retention.
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

fn policy(c: &TopicConfig) -> Policy {
    let pick = |local: i64, total: i64| if local == -2 { total } else { local };
    Policy {
        retention_ms: c.retention_ms,
        retention_bytes: c.retention_bytes,
        local_retention_ms: pick(c.local_retention_ms, c.retention_ms),
        local_retention_bytes: pick(c.local_retention_bytes, c.retention_bytes),
        copy_disabled: c.remote_log_copy_disable,
    }
}

impl Broker {
    /// Whether `topic`'s partitions are tiered on this broker.
    pub fn is_tiered(&self, topic: &TopicState) -> bool {
        topic.config.remote_storage_enable && self.tier().is_some()
    }

    /// Spawns the RemoteLogManager loop: a tick at start (which also loads the
    /// manifests of tiered partitions), then every `remote.log.manager.task.interval.ms`
    /// or as soon as an upload finishes.
    pub(super) fn spawn_rlm(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let Some(tier) = self.tier().cloned() else {
            return;
        };
        let b = self.clone();
        let mut s = shutdown;
        tokio::spawn(async move {
            loop {
                b.rlm_tick(&tier).await;
                tokio::select! {
                    _ = tokio::time::sleep(tier.interval) => {}
                    _ = tier.wake.notified() => {}
                    _ = s.changed() => return,
                }
                if *s.borrow() {
                    return;
                }
            }
        });
    }

    async fn rlm_tick(self: &Arc<Self>, tier: &Arc<Tier>) {
        let now = now_ms();
        let mut views = Vec::new();
        let mut parts: HashMap<PartitionKey, (Arc<Partition>, Arc<TopicState>)> = HashMap::new();
        let mut followers = Vec::new();
        for name in self.topic_names() {
            let Some(topic) = self.topic(&name) else {
                continue;
            };
            if !self.is_tiered(&topic) {
                continue;
            }
            for p in &topic.partitions {
                // Only the leader uploads; followers trim what is tiered (`follow_tier`).
                if !p.is_leader() {
                    followers.push((p.clone(), topic.clone()));
                    continue;
                }
                let key = p.tier_key();
                let stale = p.take_manifest_stale() || p.remote_manifest().is_none();
                if stale && !self.load_manifest(tier, p).await {
                    continue;
                }
                let remote = p.remote_manifest().map(|m| {
                    m.segments
                        .iter()
                        .map(|s| RemoteSpan {
                            base_offset: s.base_offset,
                            next_offset: s.next_offset,
                            size_bytes: s.size_bytes,
                            max_timestamp: s.max_timestamp,
                        })
                        .collect()
                });
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
                let remote: Vec<RemoteSpan> = remote.unwrap_or_default();
                crate::metrics::tier::upload_lag(
                    &p.tp.topic,
                    p.tp.partition,
                    upload_lag(&local, &remote),
                );
                views.push(PartitionView {
                    key: key.clone(),
                    local,
                    high_watermark: p.high_watermark(),
                    remote,
                    policy: policy(&topic.config),
                });
                parts.insert(key, (p.clone(), topic.clone()));
            }
        }
        let actions = tier.scheduler.lock().on_event(
            Instant::now(),
            Event::Tick {
                now_ms: now,
                partitions: views,
            },
        );
        for action in actions {
            self.perform(tier, &parts, action, now).await;
        }
        self.follow_tier(tier, followers, now).await;
    }

    /// Followers apply local retention to segments the leader has tiered: they read the
    /// partition manifest (at most once per `remote.log.manager.task.interval.ms`) and delete
    /// local segments below its end offset that local retention no longer keeps.
    async fn follow_tier(
        &self,
        tier: &Arc<Tier>,
        followers: Vec<(Arc<Partition>, Arc<TopicState>)>,
        now: i64,
    ) {
        let every = Duration::from_millis(self.config().remote.task_interval_ms.max(1) as u64);
        {
            let mut last = self.follower_tier_sync.lock();
            if last.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            *last = Some(Instant::now());
        }
        for (p, topic) in followers {
            if !self.read_manifest(tier, &p).await {
                continue;
            }
            let Some(tiered_end) = p.remote_manifest().and_then(|m| m.end_offset()) else {
                continue;
            };
            let pol = policy(&topic.config);
            let (ms, bytes) = (pol.local_retention_ms, pol.local_retention_bytes);
            trim_local(&p, now, tiered_end, ms, bytes, "follower").await;
        }
    }

    /// Loads the manifests of every tiered partition (at startup, before serving,
    /// so that the first ListOffsets and Fetch already see the remote tier).
    pub async fn load_tier_manifests(&self) {
        let Some(tier) = self.tier().cloned() else {
            return;
        };
        for name in self.topic_names() {
            let Some(topic) = self.topic(&name) else {
                continue;
            };
            if self.is_tiered(&topic) {
                for p in &topic.partitions {
                    self.load_manifest(&tier, p).await;
                }
            }
        }
    }

    /// Loads the latest manifest of `p` and sweeps orphans once. False on error.
    async fn load_manifest(&self, tier: &Arc<Tier>, p: &Arc<Partition>) -> bool {
        if !self.read_manifest(tier, p).await {
            return false;
        }
        if let Some(m) = p.remote_manifest() {
            tracing::info!(tp = %p.tp, remote_start = ?m.start_offset(), remote_end = ?m.end_offset(), version = m.version, "loaded remote manifest");
        }
        let (store, key) = (tier.store.clone(), p.tier_key());
        tokio::spawn(async move {
            if let Err(e) = copier::sweep_orphans(&*store, &key, ORPHAN_GRACE).await {
                tracing::warn!(partition = %key, error = %e, "orphan sweep failed; will retry at the next start");
            }
        });
        true
    }

    /// Reads the latest manifest of `p` into it. False on error.
    async fn read_manifest(&self, tier: &Arc<Tier>, p: &Arc<Partition>) -> bool {
        let key = p.tier_key();
        match manifest::load(&*tier.store, &key).await {
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

    async fn perform(
        self: &Arc<Self>,
        tier: &Arc<Tier>,
        parts: &HashMap<PartitionKey, (Arc<Partition>, Arc<TopicState>)>,
        action: Action,
        now: i64,
    ) {
        match action {
            Action::Upload { key, segment } => {
                if let Some((p, topic)) = parts.get(&key) {
                    self.spawn_upload(tier, p.clone(), topic.clone(), segment);
                }
            }
            Action::ExpireRemote { key, before } => {
                let Some((p, _)) = parts.get(&key) else {
                    return;
                };
                match copier::expire(&*tier.store, &key, before).await {
                    Ok(m) => p.set_remote_manifest(m),
                    Err(e) => {
                        tracing::warn!(tp = %p.tp, error = %e, "remote retention failed; will retry")
                    }
                }
            }
            Action::EnforceLocalRetention {
                key,
                tiered_end,
                local_ms,
                local_bytes,
            } => {
                let Some((p, _)) = parts.get(&key) else {
                    return;
                };
                trim_local(p, now, tiered_end, local_ms, local_bytes, "leader").await;
            }
        }
    }

    fn spawn_upload(
        &self,
        tier: &Arc<Tier>,
        p: Arc<Partition>,
        topic: Arc<TopicState>,
        seg: LocalSegment,
    ) {
        let tier = tier.clone();
        tokio::spawn(async move {
            let key = p.tier_key();
            let result = match p.log.segment_files(seg.base_offset) {
                None => Err(format!(
                    "local segment {} of {} is gone",
                    seg.base_offset, p.tp
                )),
                Some([log, index, timeindex]) => {
                    let files = LocalSegmentFiles {
                        log,
                        index,
                        timeindex,
                        base_offset: seg.base_offset,
                        next_offset: seg.next_offset,
                        max_timestamp: seg.max_timestamp,
                    };
                    let info = TopicInfo {
                        partition_count: topic.meta.partitions,
                        configs: topic.meta.configs.clone(),
                        log_start_offset: p.log.log_start_offset(),
                    };
                    copier::copy_segment(&*tier.store, &key, &files, &info, &tier.throttle)
                        .await
                        .map_err(|e| e.to_string())
                }
            };
            let event = match result {
                Ok(m) => {
                    crate::metrics::tier::uploaded(&p.tp.topic, p.tp.partition, seg.size_bytes);
                    p.set_remote_manifest(m);
                    Event::UploadDone {
                        key,
                        base_offset: seg.base_offset,
                    }
                }
                Err(error) => {
                    tracing::warn!(tp = %p.tp, base_offset = seg.base_offset, %error, "segment upload failed; will retry with backoff");
                    *p.last_tier_error.lock() = Some((error.clone(), now_ms()));
                    crate::metrics::tier::upload_errors(&p.tp.topic, p.tp.partition, 1);
                    Event::UploadFailed {
                        key,
                        base_offset: seg.base_offset,
                        error,
                    }
                }
            };
            tier.scheduler.lock().on_event(Instant::now(), event);
            tier.wake.notify_one();
        });
    }

    /// Deletes the remote data of `partitions` in the background (topic deletion,
    /// `remote.log.delete.on.disable`), then the topic's `topic.json`.
    pub(super) fn delete_remote(&self, partitions: &[Arc<Partition>]) {
        let Some(tier) = self.tier().cloned() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(first) = partitions.first() else {
            return;
        };
        let (topic, topic_id) = (first.tp.topic.to_string(), first.topic_id);
        let partitions = partitions.to_vec();
        rt.spawn(async move {
            let mut complete = true;
            for p in partitions {
                let key = p.tier_key();
                match copier::delete_partition(&*tier.store, &key).await {
                    Ok(_) => p.clear_remote_manifest(),
                    Err(e) => {
                        complete = false;
                        tracing::warn!(partition = %key, error = %e, "could not delete remote data; delete it by hand")
                    }
                }
            }
            // Kept while data is left, so that recovery can still describe it.
            if complete {
                let mut written = tier.topic_meta_written.lock().await;
                written.insert(topic_id, u64::MAX);
                if let Err(e) = topics::delete_metadata(&*tier.store, &topic, topic_id).await {
                    tracing::warn!(%topic, error = %e, "could not delete topic.json; delete it by hand");
                }
            }
        });
    }

    /// Called when a topic was applied with a changed state: if its data is (still)
    /// in the remote tier, records the topic's id, partition count and configs in
    /// `topic.json`, in the background, so that the bucket alone can rebuild the
    /// topic. `was_tiered`: the state before this change was tiered.
    pub(super) fn topic_applied(&self, name: &str, was_tiered: bool) {
        let (Some(tier), Some(topic)) = (self.tier().cloned(), self.topic(name)) else {
            return;
        };
        let keeps_remote = was_tiered && !topic.config.remote_log_delete_on_disable;
        if !(topic.config.remote_storage_enable || keeps_remote) || topic.meta.internal {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let seq = tier
            .topic_meta_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let meta = topics::TopicMetadata {
            topic: name.to_string(),
            topic_id: topic.meta.id,
            partition_count: topic.meta.partitions,
            replication_factor: topic.meta.replication_factor,
            configs: topic.meta.configs.clone(),
            updated_ms: now_ms(),
        };
        rt.spawn(async move {
            let mut written = tier.topic_meta_written.lock().await;
            if written.get(&meta.topic_id).is_some_and(|w| *w >= seq) {
                return;
            }
            let name = &meta.topic;
            match topics::put_metadata(&*tier.store, &meta).await {
                Ok(()) => {
                    written.insert(meta.topic_id, seq);
                    tracing::info!(topic = %name, partitions = meta.partition_count, "recorded topic metadata in the remote tier")
                }
                Err(e) => tracing::warn!(topic = %name, error = %e, "could not record topic metadata in the remote tier; the next change or restart retries"),
            }
        });
    }

    /// The tier state of `p` (for DescribeLogDirs and `tier status`), or `None` when
    /// the topic is not tiered and the remote tier holds nothing of it.
    pub fn tier_state(&self, p: &Partition) -> Option<PartitionTierState> {
        let tier = self.tier()?;
        let enabled = self
            .topic(&p.tp.topic)
            .is_some_and(|t| t.config.remote_storage_enable);
        let m = p.remote_manifest();
        if !enabled && m.as_ref().is_none_or(|m| m.segments.is_empty()) {
            return None;
        }
        let remote_end = m.as_ref().and_then(|m| m.end_offset());
        let segments = p.log.segments();
        let closed = &segments[..segments.len().saturating_sub(1)];
        let pending: Vec<_> = closed
            .iter()
            .filter(|s| remote_end.is_none_or(|e| s.next_offset > e) && s.size_bytes > 0)
            .collect();
        let upload = tier.upload_state(&p.tier_key()).unwrap_or_default();
        let last = p.last_tier_error.lock().clone();
        Some(PartitionTierState {
            enabled,
            local_start: p.log.log_start_offset(),
            local_bytes: p.log.size_bytes(),
            remote_start: m.as_ref().and_then(|m| m.start_offset()),
            remote_end,
            remote_bytes: m.as_ref().map_or(0, |m| m.size_bytes()),
            remote_segments: m.as_ref().map_or(0, |m| m.segments.len()),
            manifest_version: m.as_ref().map_or(0, |m| m.version),
            pending_uploads: pending.len(),
            pending_bytes: pending.iter().map(|s| s.size_bytes).sum(),
            failed_attempts: upload.attempts,
            last_error_ms: last.as_ref().map(|l| l.1),
            last_error: last.map(|l| l.0),
        })
    }

    /// DeleteRecords on a tiered partition: raise the remote log start offset and
    /// expire remote segments below it. Returns the partition's new log start.
    pub async fn delete_remote_records(
        &self,
        p: &Partition,
        offset: i64,
    ) -> Result<i64, TierError> {
        let Some(tier) = self.tier() else {
            return Ok(p.log_start_offset());
        };
        if p.remote_manifest().is_none_or(|m| m.segments.is_empty()) {
            return Ok(p.log_start_offset());
        }
        let m = copier::delete_records(&*tier.store, &p.tier_key(), offset).await?;
        p.set_remote_manifest(m);
        Ok(p.log_start_offset())
    }
}
