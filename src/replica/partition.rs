//! One partition replica on this broker: its log, the signal that wakes long-polling
//! fetches when the log grows, and, for tiered topics, the latest remote manifest.
//!
//! Offsets of a tiered partition: the *local* log start offset is the `Log`'s; the
//! partition's log start offset is the remote one when the remote tier holds data
//! (Kafka's log start vs. local log start).

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_controller::PartitionMeta;
use strata_log::{AppendInfo, Log, LogError, TxnMarkerSpec};
use strata_tier::{PartitionKey, PartitionManifest};
use tokio::sync::Notify;
use uuid::Uuid;

use super::state::ReplicaState;
use super::verify::{Guards, Verification};
use super::ReplicaError;

/// A topic-partition name, as clients spell it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: Uuid,
    pub log: Log,
    appended: Notify,
    /// The latest partition manifest seen (`None` until loaded or for topics that
    /// never tiered).
    remote: RwLock<Option<Arc<PartitionManifest>>>,
    /// The last upload or manifest-load error and when it happened (wall-clock
    /// ms), for `tier status`; kept after later successes.
    pub last_tier_error: Mutex<Option<(String, i64)>>,
    /// Role, ISR, high watermark and follower progress (see `replica`).
    replica: Mutex<ReplicaState>,
    /// Set when leadership changes: a new leader reloads the remote manifest before its first
    /// upload, so it continues exactly where the previous leader stopped.
    manifest_stale: std::sync::atomic::AtomicBool,
    /// Held by an upload from opening its local segment until its manifest version is
    /// published, and by a local cleaning pass of a tiered partition for the whole pass. A
    /// pass plans with the remote end as its lower bound; an upload finishing meanwhile would
    /// publish a segment the pass then merges with its successors, leaving a local segment
    /// that straddles the new remote end, which no later upload could take.
    pub upload_lock: Arc<tokio::sync::Mutex<()>>,
    /// KIP-890 part 1 guards (see `verify`). Held across the write of a transactional
    /// batch and of a marker, so a marker and a verified append never interleave; taken
    /// before `replica`.
    txn_guards: Mutex<Guards>,
}

impl Partition {
    /// A replica on broker `node_id` with role `meta`.
    pub fn new(
        tp: TopicPartition,
        topic_id: Uuid,
        log: Log,
        node_id: i32,
        meta: PartitionMeta,
    ) -> Self {
        let mut replica = ReplicaState::new(
            node_id,
            meta,
            log.log_start_offset(),
            crate::now_ms(),
            log.log_end_offset(),
        );
        if replica.is_leader() {
            replica.advance_high_watermark(log.log_end_offset());
        }
        Partition {
            tp,
            topic_id,
            log,
            appended: Notify::new(),
            remote: RwLock::new(None),
            last_tier_error: Mutex::new(None),
            replica: Mutex::new(replica),
            manifest_stale: std::sync::atomic::AtomicBool::new(false),
            upload_lock: Arc::new(tokio::sync::Mutex::new(())),
            txn_guards: Mutex::new(Guards::default()),
        }
    }

    /// The name of this partition in the remote tier.
    pub fn tier_key(&self) -> PartitionKey {
        PartitionKey {
            topic: self.tp.topic.to_string(),
            topic_id: self.topic_id,
            partition: self.tp.partition,
        }
    }

    pub fn remote_manifest(&self) -> Option<Arc<PartitionManifest>> {
        self.remote.read().clone()
    }

    /// Records a manifest read from or published to the store; an older version
    /// than the one held is ignored.
    pub fn set_remote_manifest(&self, m: PartitionManifest) {
        let mut r = self.remote.write();
        if r.as_ref().is_none_or(|cur| cur.version <= m.version) {
            *r = Some(Arc::new(m));
        }
    }

    /// Forgets the remote manifest (remote data deleted).
    pub fn clear_remote_manifest(&self) {
        *self.remote.write() = None;
    }

    /// The partition's log start offset: the remote start when the remote tier
    /// holds data below the local log, else the local log start offset.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.log.log_start_offset();
        match self.remote_manifest().and_then(|m| m.start_offset()) {
            Some(remote) => remote.min(local),
            None => local,
        }
    }

    /// The remote manifest if `offset` is below the local log and in the remote tier.
    pub fn remote_for(&self, offset: i64) -> Option<Arc<PartitionManifest>> {
        if offset >= self.log.log_start_offset() {
            return None;
        }
        self.remote_manifest().filter(|m| {
            m.start_offset().is_some_and(|s| s <= offset)
                && m.end_offset().is_some_and(|e| offset < e)
        })
    }

    /// The offset a local read for `offset` starts at: the local log start when
    /// `offset` falls in a gap between the remote end and the local log start
    /// (offsets deleted locally before they were tiered, which neither tier holds:
    /// the reader goes on with the next offset that exists, as over a compacted
    /// log's gaps), else `offset` itself.
    pub fn local_read_offset(&self, offset: i64) -> i64 {
        let local = self.log.log_start_offset();
        let in_gap = offset < local
            && self
                .remote_manifest()
                .and_then(|m| m.end_offset())
                .is_some_and(|end| end <= offset);
        if in_gap {
            local
        } else {
            offset
        }
    }

    /// Appends client batches as the leader, stamped with the leader epoch, and wakes every
    /// fetch waiting on this partition (followers read up to the log end, consumers up to the
    /// high watermark, which moves here when the ISR is just this broker).
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, ReplicaError> {
        self.append_as_leader(|log, epoch| log.append_with_leader_epoch(batches, epoch, now_ms))
    }

    /// Writes a transaction marker as the leader (for the transaction coordinator), stamped
    /// with the leader epoch; wakes fetches like [`Partition::append`]. The marker moves the
    /// last stable offset once the high watermark passes it.
    pub fn append_marker(
        &self,
        spec: TxnMarkerSpec,
        now_ms: i64,
    ) -> Result<AppendInfo, ReplicaError> {
        let mut guards = self.txn_guards.lock();
        guards.on_marker(spec.producer_id);
        self.append_as_leader(|log, epoch| log.append_marker(spec, epoch, now_ms))
    }

    /// What the append of a transactional batch of `(producer_id, epoch)` needs first:
    /// nothing (`None`) when the producer's transaction at that epoch is already ongoing
    /// here, else a guard to verify with the coordinator (or one already verified).
    pub fn txn_verification(&self, producer_id: i64, epoch: i16) -> Option<Verification> {
        if self.log.has_ongoing_txn(producer_id, epoch) {
            return None;
        }
        Some(self.txn_guards.lock().start(producer_id, epoch))
    }

    /// The coordinator's answer for the guard `token` of `producer_id`.
    pub fn txn_verified(&self, producer_id: i64, token: u64, yes: bool) {
        let mut guards = self.txn_guards.lock();
        if yes {
            guards.verified(producer_id, token);
        } else {
            guards.failed(producer_id, token);
        }
    }

    /// Appends transactional batches of `(producer_id, epoch)` when verification is on:
    /// only if the producer's transaction is ongoing here at that epoch or its guard
    /// `token` is verified and no marker removed it since (checked under the lock the
    /// markers take); otherwise INVALID_TXN_STATE and nothing is written.
    pub fn append_txn(
        &self,
        batches: &[u8],
        now_ms: i64,
        producer_id: i64,
        epoch: i16,
        token: Option<u64>,
    ) -> Result<AppendInfo, ReplicaError> {
        let guards = self.txn_guards.lock();
        let allowed = self.log.has_ongoing_txn(producer_id, epoch)
            || token.is_some_and(|t| guards.check(producer_id, t));
        if !allowed {
            return Err(ReplicaError::TxnNotVerified {
                tp: self.tp.clone(),
                producer_id,
                epoch,
                code: kafka_protocol::ResponseError::InvalidTxnState.code(),
                reason: "the transaction ended while the partition was being verified".into(),
            });
        }
        self.append(batches, now_ms)
    }

    /// What every leader write shares: refuse unless leader, write with the current leader
    /// epoch, move the high watermark (it follows the log end when the ISR is this broker
    /// alone) and wake the fetches waiting on this partition.
    fn append_as_leader(
        &self,
        write: impl FnOnce(&Log, i32) -> Result<AppendInfo, LogError>,
    ) -> Result<AppendInfo, ReplicaError> {
        let epoch = {
            let r = self.replica.lock();
            if !r.is_leader() {
                return Err(ReplicaError::NotLeader {
                    tp: self.tp.clone(),
                    leader: r.meta.leader,
                });
            }
            r.meta.leader_epoch
        };
        let info = write(&self.log, epoch).map_err(|e| ReplicaError::log(&self.tp, e))?;
        self.replica
            .lock()
            .advance_high_watermark(self.log.log_end_offset());
        self.appended.notify_waiters();
        Ok(info)
    }

    /// The last stable offset: below the high watermark and the first offset of every
    /// ongoing transaction (what read_committed consumers may read up to).
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// The aborted transactions overlapping `[from, upper)` in the local log.
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Vec<strata_log::TxnIndexEntry> {
        self.log.aborted_txns(from, upper)
    }

    /// Appends batches fetched from the leader, as they are, and takes the leader's high
    /// watermark (capped at this log's end).
    pub fn append_as_follower(
        &self,
        batches: &[u8],
        leader_high_watermark: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        if !batches.is_empty() {
            self.log.append_as_follower(batches, now_ms)?;
        }
        self.set_follower_high_watermark(leader_high_watermark);
        Ok(())
    }

    /// A follower's high watermark: the leader's, capped at its own log end, never backwards.
    fn set_follower_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log.log_end_offset());
        let mut r = self.replica.lock();
        if hw > r.high_watermark {
            r.high_watermark = hw;
            drop(r);
            self.appended.notify_waiters();
        }
    }

    /// The leader's view of a follower's fetch at `fetch_offset`: records its progress and
    /// advances the high watermark, waking consumers and acks=all producers if it moved.
    pub fn on_follower_fetch(&self, follower: i32, fetch_offset: i64, now_ms: i64) {
        let end = self.log.log_end_offset();
        let mut r = self.replica.lock();
        if !r.is_leader() {
            return;
        }
        r.on_follower_fetch(follower, fetch_offset, end, now_ms);
        if r.advance_high_watermark(end) {
            drop(r);
            self.appended.notify_waiters();
        }
    }

    /// Waits until the high watermark reaches `offset` (every ISR member has the records
    /// below it): acks=all produces and group commits.
    pub async fn wait_replicated(
        &self,
        offset: i64,
        deadline: tokio::time::Instant,
        timeout_ms: i32,
    ) -> Result<(), ReplicaError> {
        loop {
            let changed = self.appended();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.high_watermark() >= offset {
                return Ok(());
            }
            let meta = self.meta();
            if !self.is_leader() {
                return Err(ReplicaError::NotLeader {
                    tp: self.tp.clone(),
                    leader: meta.leader,
                });
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ReplicaError::ReplicationTimeout {
                        tp: self.tp.clone(),
                        offset: offset - 1,
                        timeout_ms,
                    });
                }
            }
        }
    }

    /// After a truncation: the high watermark cannot be past the log end.
    pub fn on_truncated(&self) {
        let end = self.log.log_end_offset();
        let mut r = self.replica.lock();
        r.high_watermark = r.high_watermark.min(end);
    }

    /// KIP-320: a request naming an older leader epoch is fenced; a newer one means this
    /// node's metadata is behind. A negative epoch (not given) passes.
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ReplicaError> {
        if requested < 0 {
            return Ok(());
        }
        let current = self.meta().leader_epoch;
        let tp = self.tp.clone();
        match requested.cmp(&current) {
            std::cmp::Ordering::Less => Err(ReplicaError::FencedLeaderEpoch {
                tp,
                requested,
                current,
            }),
            std::cmp::Ordering::Greater => Err(ReplicaError::UnknownLeaderEpoch {
                tp,
                requested,
                current,
            }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }

    /// This replica's role and ISR, as of the last applied metadata.
    pub fn meta(&self) -> PartitionMeta {
        self.replica.lock().meta.clone()
    }

    pub fn is_leader(&self) -> bool {
        self.replica.lock().is_leader()
    }

    /// Applies new metadata; true when the leader or leader epoch changed.
    pub fn update_meta(&self, meta: PartitionMeta, now_ms: i64) -> bool {
        let end = self.log.log_end_offset();
        let mut r = self.replica.lock();
        let changed = r.update(meta, now_ms, end);
        if r.is_leader() {
            r.advance_high_watermark(end);
        }
        drop(r);
        if changed {
            self.manifest_stale
                .store(true, std::sync::atomic::Ordering::Release);
            // Markers sent while this node was not the leader went elsewhere.
            self.txn_guards.lock().clear();
        }
        // Waiting fetches and producers re-check their leadership.
        self.appended.notify_waiters();
        changed
    }

    /// Whether the remote manifest must be reloaded (leadership changed); clears the flag.
    pub fn take_manifest_stale(&self) -> bool {
        self.manifest_stale
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Runs `f` on the replication state (for ISR decisions in `cluster`).
    pub fn with_replica<T>(&self, f: impl FnOnce(&mut ReplicaState) -> T) -> T {
        f(&mut self.replica.lock())
    }

    /// Wakes waiting fetches so they notice the partition is gone.
    pub fn notify_deleted(&self) {
        self.appended.notify_waiters();
    }

    /// Bytes of the local log (DescribeLogDirs' partition size).
    pub fn local_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// The offset below which records are committed (in every ISR member's log).
    pub fn high_watermark(&self) -> i64 {
        self.replica.lock().high_watermark
    }

    /// A future that completes at the next append. Create it *before* checking the log,
    /// so that an append between the check and the wait is not missed.
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.appended.notified()
    }
}
