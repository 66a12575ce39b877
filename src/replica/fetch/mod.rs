//! The fetch path: byte ranges of segment files (or of remote segments), as a long poll.
//!
//! Hops of a Fetch: handler (decode, resolve nothing) -> [`ReplicaManager::fetch`] ->
//! resolve each partition (leader, leader epoch, a follower's progress) -> remote reads of
//! offsets below the local log (`remote.rs`, bounded by `remote.fetch.max.wait.ms`) -> a read
//! pass over every partition (`Log::read_up_to`, bounded by the high watermark for consumers
//! and by the KIP-74 byte limits) -> answer, or park until an append wakes a partition
//! (Kafka's delayed fetch) and read again until `max_wait`.
//!
//! The request is answered at once when it has `min_bytes`, an error, or a zero `max_wait`.
//! Records are never decoded: the log hands back whole batches as stored. `max_bytes` and
//! a partition's `max_bytes` cut between whole batches, and the first partition with data
//! always gets one whole batch (KIP-74).
//!
//! A follower's fetch reads up to the log end and reports its progress to the partition,
//! which moves the ISR and high watermark (see `replica::state`); a consumer's reads up to
//! the high watermark, or with [`FetchParams::read_committed`] up to the last stable offset
//! (below every ongoing transaction), and then also gets the aborted transactions that
//! overlap the records returned (from the `.txnindex` of the segments read, local or remote),
//! so the client drops their records. Only the leader serves followers. A consumer that sends
//! client metadata (Fetch v11+, [`FetchParams::client_rack`]) may read from a follower, up to the
//! high watermark the follower learned; with the rack-aware `replica.selector.class` the leader
//! sends such a consumer to an in-sync follower in its rack (KIP-392, `replica::selector`) by
//! answering with `preferred_read_replica` and no records.

mod batches;
mod remote;

pub(crate) use batches::{fit, offset_range, starting_below};
pub(crate) use remote::remote_aborted;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_log::{FileSlice, LogError, TxnIndexEntry};
use strata_tier::Pieces;
use uuid::Uuid;

use super::selector::{preferred_read_replica, rack_relation, ReadCandidate};
use super::throttle::{self, Side};
use super::{Partition, ReplicaError, ReplicaManager};

/// How a fetch names its topic: by name (Fetch v12 and older) or by id (v13+).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicRef {
    Name(Arc<str>),
    Id(Uuid),
}

/// Who is fetching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOrigin {
    /// A client: reads up to the high watermark.
    Consumer,
    /// A follower replica: reads up to the log end; its fetch offset is its progress.
    Follower { replica_id: i32 },
}

/// One partition of a fetch.
pub struct PartitionFetch {
    pub topic: TopicRef,
    pub partition: i32,
    pub fetch_offset: i64,
    /// The partition's byte limit (`max.partition.fetch.bytes`).
    pub max_bytes: usize,
    /// The leader epoch the fetcher knows, or -1 (KIP-320).
    pub current_leader_epoch: i32,
}

pub struct FetchParams {
    pub origin: FetchOrigin,
    /// How long to wait for `min_bytes`; zero answers at once.
    pub max_wait: Duration,
    pub min_bytes: usize,
    /// The response's byte limit (`fetch.max.bytes`).
    pub max_bytes: usize,
    /// `isolation.level=read_committed`.
    pub read_committed: bool,
    /// Local records may be answered as [`FetchRecords::File`] (the connection sends
    /// them with `sendfile`); otherwise they are read into memory.
    pub zero_copy: bool,
    /// A consumer's `client.rack` (Fetch v11+; empty when it set none), `None` for followers
    /// and older consumers. Only a consumer that sends it may read from a follower (KIP-392).
    pub client_rack: Option<String>,
    pub partitions: Vec<PartitionFetch>,
}

/// The answer for one partition, in the order of [`FetchParams::partitions`].
pub struct FetchedPartition {
    /// -1 when the partition could not be resolved.
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Result<FetchRecords, ReplicaError>,
    /// read_committed: the aborted transactions overlapping `records` (the client drops
    /// their records); `None` for read_uncommitted, as Kafka answers null.
    pub aborted: Option<Vec<AbortedTxn>>,
    /// KIP-392: the replica the consumer should fetch this partition from instead (no records
    /// come with it), or -1.
    pub preferred_read_replica: i32,
}

/// A partition's records in a fetch answer: bytes in memory (remote reads as slices of the
/// cached chunks, local reads on the copy path), or a range of a local segment file that the connection sends with
/// `sendfile` (only when [`FetchParams::zero_copy`]).
#[derive(Clone, Debug)]
pub enum FetchRecords {
    Memory(Pieces),
    File(FileSlice),
}

impl FetchRecords {
    pub fn empty() -> FetchRecords {
        FetchRecords::Memory(Pieces::new())
    }

    pub fn len(&self) -> usize {
        match self {
            FetchRecords::Memory(b) => b.len(),
            FetchRecords::File(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records in memory: a file range is read with one `pread` (a copy path).
    pub fn into_bytes(self) -> Result<Bytes, LogError> {
        match self {
            FetchRecords::Memory(b) => Ok(b.to_bytes()),
            FetchRecords::File(s) if s.is_empty() => Ok(Bytes::new()),
            FetchRecords::File(s) => s.read(),
        }
    }

    /// The first batch's base offset and an upper bound of the offsets held.
    fn offset_range(&self) -> Option<(i64, i64)> {
        match self {
            FetchRecords::Memory(b) => offset_range(b),
            FetchRecords::File(s) if s.is_empty() => None,
            FetchRecords::File(s) => Some(s.offset_range()),
        }
    }
}

/// An aborted transaction in a fetch answer: the producer and its first offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One requested partition, resolved once per request.
struct Target {
    fetch_offset: i64,
    max_bytes: usize,
    partition: Result<Arc<Partition>, ReplicaError>,
    /// The consumer is sent to this replica (KIP-392): nothing is read here.
    redirect: Option<i32>,
    /// A follower's fetch of a replica under the leader's replication throttle (KIP-73): it
    /// gets no records while the leader's quota is used up, and its bytes count against it.
    throttled: bool,
}

/// What one read pass found for a partition. Errors that outlive a pass (resolution and
/// remote failures) stay where they are and are moved into the answer at the end.
enum Read {
    Records(FetchRecords),
    Failed(ReplicaError),
    Unresolved,
    RemoteFailed,
}

struct PassEntry {
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    read: Read,
}

impl ReplicaManager {
    /// Answers a fetch from both tiers; see the module docs for the rules.
    pub async fn fetch(&self, params: FetchParams) -> Vec<FetchedPartition> {
        let now = crate::now_ms();
        let follower = matches!(params.origin, FetchOrigin::Follower { .. });
        let targets: Vec<Target> = params
            .partitions
            .iter()
            .map(|p| self.resolve(p, &params, now))
            .collect();
        let redirected = targets.iter().any(|t| t.redirect.is_some());
        let deadline = tokio::time::Instant::now() + params.max_wait;
        let mut remote = if follower {
            remote::RemoteReads::new()
        } else {
            self.read_remote(
                &targets,
                params.max_bytes,
                params.min_bytes.max(1),
                params.read_committed,
            )
            .await
        };
        loop {
            // Register for wake-ups before reading, so an append in between is not missed.
            let mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = targets
                .iter()
                .filter_map(|t| t.partition.as_ref().ok())
                .map(|p| Box::pin(p.appended()))
                .collect();
            for w in waits.iter_mut() {
                w.as_mut().enable();
            }
            let bound = match (follower, params.read_committed) {
                (true, _) => Bound::LogEnd,
                (false, false) => Bound::HighWatermark,
                (false, true) => Bound::LastStable,
            };
            // Checked once per pass: while the leader's quota is used up, throttled replicas
            // read nothing (the others still do).
            let hold = targets.iter().any(|t| t.throttled)
                && self
                    .quotas
                    .exceeded(Side::Leader, self.leader_throttle_rate());
            let (pass, bytes) = read_pass(
                &targets,
                &remote,
                params.max_bytes,
                bound,
                hold,
                params.zero_copy,
            );
            let failed = pass.iter().any(|e| !matches!(e.read, Read::Records(_)));
            let done = bytes >= params.min_bytes
                || failed
                || redirected
                || params.max_wait.is_zero()
                || tokio::time::Instant::now() >= deadline
                || waits.is_empty();
            if done {
                drop(waits);
                let served = Served {
                    client_rack: params.client_rack.as_deref(),
                    broker_rack: self.metadata.config().broker_rack.clone(),
                    node: self.metadata.node_id(),
                    follower,
                };
                let throttled: Vec<bool> = targets.iter().map(|t| t.throttled).collect();
                let out = answer(targets, pass, &mut remote, params.read_committed, &served);
                let sent: usize = out
                    .iter()
                    .zip(throttled)
                    .filter(|(_, throttled)| *throttled)
                    .filter_map(|(p, _)| p.records.as_ref().ok().map(FetchRecords::len))
                    .sum();
                self.quotas
                    .record(Side::Leader, self.leader_throttle_rate(), sent);
                return out;
            }
            // Held throttled replicas are read again once the quota has room.
            let refill = if hold {
                self.quotas.wait(Side::Leader, self.leader_throttle_rate())
            } else {
                params.max_wait
            };
            tokio::select! {
                _ = futures::future::select_all(waits) => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(refill) => {}
            }
        }
    }

    fn resolve(&self, p: &PartitionFetch, params: &FetchParams, now: i64) -> Target {
        // KIP-392: a consumer with client metadata may read from any replica hosted here.
        let any_replica = params.client_rack.is_some();
        let partition = match &p.topic {
            TopicRef::Name(name) => Ok(name.clone()),
            TopicRef::Id(id) => self
                .metadata
                .topic_name_by_id(*id)
                .ok_or(ReplicaError::UnknownTopicId { id: *id }),
        }
        .and_then(|name| {
            if any_replica {
                self.partition(&name, p.partition)
            } else {
                self.leader_partition(&name, p.partition)
            }
        })
        .and_then(|part| {
            part.check_leader_epoch(p.current_leader_epoch)?;
            if let FetchOrigin::Follower { replica_id } = params.origin {
                follow(&part, replica_id, p.fetch_offset, now)?;
            }
            Ok(part)
        });
        let redirect = match (&partition, params.client_rack.as_deref()) {
            (Ok(part), Some(rack)) => self.preferred_replica(part, rack, p.fetch_offset),
            _ => None,
        };
        let throttled = match (&partition, params.origin) {
            (Ok(part), FetchOrigin::Follower { replica_id }) => {
                self.leader_throttles(part, replica_id)
            }
            _ => false,
        };
        Target {
            fetch_offset: p.fetch_offset,
            max_bytes: p.max_bytes,
            partition,
            redirect,
            throttled,
        }
    }

    /// The leader's rate, `leader.replication.throttled.rate`.
    fn leader_throttle_rate(&self) -> i64 {
        self.metadata.config().leader_replication_throttled_rate
    }

    /// Whether the leader throttles what it sends `follower` of `part`: the topic's
    /// `leader.replication.throttled.replicas` names this broker's replica and the follower
    /// is not in the ISR (KIP-542). Nothing is throttled while the rate is unlimited.
    fn leader_throttles(&self, part: &Partition, follower: i32) -> bool {
        if self.leader_throttle_rate() == throttle::UNTHROTTLED {
            return false;
        }
        let listed = self.metadata.topic(&part.tp.topic).is_some_and(|t| {
            t.config
                .leader_throttled_replicas
                .throttles(part.tp.partition, self.metadata.node_id())
        });
        listed && !part.with_replica(|r| r.meta.isr.contains(&follower))
    }

    /// The follower a consumer in `client_rack` should read `part` from, when this node leads
    /// it and `replica.selector.class` is rack-aware.
    fn preferred_replica(&self, part: &Partition, client_rack: &str, offset: i64) -> Option<i32> {
        let config = self.metadata.config();
        if !config.rack_aware_replica_selector || client_rack.is_empty() {
            return None;
        }
        let image = self.metadata.image();
        let rack = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
        let followers: Vec<(i32, i64)> = part.with_replica(|r| {
            if !r.is_leader() {
                return Vec::new();
            }
            r.meta
                .isr
                .iter()
                .filter(|id| **id != r.node_id && image.is_live(**id))
                .filter_map(|id| r.followers.get(id).map(|p| (*id, p.log_end)))
                .collect()
        });
        let candidates: Vec<ReadCandidate<'_>> = followers
            .iter()
            .map(|(id, log_end)| ReadCandidate {
                id: *id,
                rack: rack(*id),
                log_end: *log_end,
            })
            .collect();
        preferred_read_replica(
            config.broker_rack.as_deref(),
            client_rack,
            offset,
            &candidates,
        )
    }
}

/// Records a follower's progress. A follower copies only the leader's local log: below it, on a
/// tiered partition, it is told OFFSET_MOVED_TO_TIERED_STORAGE and starts at the local log start.
fn follow(part: &Partition, replica_id: i32, offset: i64, now: i64) -> Result<(), ReplicaError> {
    let local_start = part.log.log_start_offset();
    if offset < local_start && part.remote_manifest().is_some() {
        return Err(ReplicaError::OffsetMovedToTieredStorage {
            tp: part.tp.clone(),
            offset,
            local_start,
        });
    }
    part.on_follower_fetch(replica_id, offset, now);
    Ok(())
}

/// How far a fetch may read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// A follower: everything in the log.
    LogEnd,
    /// read_uncommitted: what the ISR has.
    HighWatermark,
    /// read_committed: below the high watermark and every ongoing transaction.
    LastStable,
}

/// Reads every partition once, within the byte limits. Returns what each holds and the
/// record bytes gathered.
fn read_pass(
    targets: &[Target],
    remote: &remote::RemoteReads,
    max_bytes: usize,
    bound: Bound,
    hold_throttled: bool,
    zero_copy: bool,
) -> (Vec<PassEntry>, usize) {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let held = hold_throttled && target.throttled;
        if let (true, Ok(part)) = (target.redirect.is_some() || held, &target.partition) {
            out.push(PassEntry {
                high_watermark: part.high_watermark(),
                last_stable_offset: part.log.last_stable_offset(part.high_watermark()),
                log_start_offset: part.log_start_offset(),
                read: Read::Records(FetchRecords::empty()),
            });
            continue;
        }
        let Ok(part) = &target.partition else {
            out.push(PassEntry {
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                read: Read::Unresolved,
            });
            continue;
        };
        let remaining = max_bytes.saturating_sub(total);
        let first = total == 0;
        let hw = part.high_watermark();
        let lso = part.log.last_stable_offset(hw);
        let read = match remote.get(&i) {
            // Whole batches within the partition's and the response's room; the first
            // partition with data gets its first batch even past both (KIP-74).
            Some(Ok(Some(records))) => {
                let records = fit(records, target.max_bytes.min(remaining), first);
                Read::Records(FetchRecords::Memory(records))
            }
            Some(Err(_)) => Read::RemoteFailed,
            // Nothing at or after the offset in the remote tier (compaction removed its last
            // records): the next records are local, from the remote end on. `None`: the
            // offset is not remote at all.
            exhausted @ (Some(Ok(None)) | None) => {
                let limit = target.max_bytes.min(remaining);
                let upper = match bound {
                    Bound::LogEnd => i64::MAX,
                    Bound::HighWatermark => hw,
                    Bound::LastStable => lso,
                };
                let from = match exhausted {
                    Some(_) => part
                        .remote_manifest()
                        .and_then(|m| m.end_offset())
                        .map_or(target.fetch_offset, |end| end.max(target.fetch_offset)),
                    None => target.fetch_offset,
                };
                let offset = part.local_read_offset(from);
                let read = if zero_copy {
                    part.log
                        .read_slice_up_to(offset, limit, first, upper)
                        .map(|s| s.map_or_else(FetchRecords::empty, FetchRecords::File))
                } else {
                    part.log
                        .read_up_to(offset, limit, first, upper)
                        .map(|b| FetchRecords::Memory(b.into()))
                };
                match read {
                    Ok(records) => Read::Records(records),
                    // Local retention removed the offset after the remote pass looked (it
                    // was local then); the remote tier holds it: no records now, the next
                    // fetch reads it from there. Not OFFSET_OUT_OF_RANGE, which would make
                    // a consumer reset its position.
                    Err(_) if exhausted.is_none() && part.remote_for(offset).is_some() => {
                        Read::Records(FetchRecords::empty())
                    }
                    Err(e) => {
                        let err = ReplicaError::log(&part.tp, e);
                        tracing::debug!(error = %err, "fetch failed");
                        Read::Failed(err)
                    }
                }
            }
        };
        if let Read::Records(r) = &read {
            total += r.len();
        }
        out.push(PassEntry {
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: part.log_start_offset(),
            read,
        });
    }
    (out, total)
}

/// Who was served, for the bytes-served metrics.
struct Served<'a> {
    client_rack: Option<&'a str>,
    broker_rack: Option<String>,
    node: i32,
    follower: bool,
}

/// The final answer from the last pass; counts the bytes sent per topic, and to consumers by
/// rack and by the role of the replica that served them.
fn answer(
    targets: Vec<Target>,
    pass: Vec<PassEntry>,
    remote: &mut remote::RemoteReads,
    read_committed: bool,
    served: &Served<'_>,
) -> Vec<FetchedPartition> {
    targets
        .into_iter()
        .zip(pass)
        .enumerate()
        .map(|(i, (target, entry))| {
            let mut aborted = read_committed.then(Vec::new);
            let records = match (entry.read, target.partition) {
                (Read::Records(r), Ok(part)) => {
                    crate::metrics::fetch_bytes(&part.tp.topic, r.len());
                    if !served.follower {
                        let relation =
                            rack_relation(served.broker_rack.as_deref(), served.client_rack);
                        let by_follower = part.meta().leader != served.node;
                        crate::metrics::consumer_fetch_bytes(r.len(), relation, by_follower);
                    }
                    if let Some(list) = aborted.as_mut() {
                        *list = aborted_in(&part, &r, remote.aborted(i));
                    }
                    Ok(r)
                }
                (Read::Failed(e), _) => Err(e),
                (Read::RemoteFailed, _) => match remote.remove(&i) {
                    Some(Err(e)) => Err(e),
                    _ => Ok(FetchRecords::empty()),
                },
                (_, Err(e)) => Err(e),
                (Read::Unresolved, Ok(_)) => Ok(FetchRecords::empty()),
            };
            FetchedPartition {
                high_watermark: entry.high_watermark,
                last_stable_offset: entry.last_stable_offset,
                log_start_offset: entry.log_start_offset,
                records,
                aborted,
                preferred_read_replica: target.redirect.unwrap_or(-1),
            }
        })
        .collect()
}

/// The aborted transactions overlapping the batches of `records` (Kafka's
/// `collectAbortedTransactions` over the fetched range): those of the local `.txnindex`, and
/// for records read from the remote tier those of its segments' `.txnindex` (`remote`).
fn aborted_in(
    part: &Partition,
    records: &FetchRecords,
    remote: Option<&[TxnIndexEntry]>,
) -> Vec<AbortedTxn> {
    let Some((from, upper)) = records.offset_range() else {
        return Vec::new();
    };
    let mut entries = part.aborted_txns(from, upper);
    if let Some(remote) = remote {
        entries.extend(
            remote
                .iter()
                .filter(|e| e.last_offset >= from && e.first_offset < upper),
        );
    }
    entries.sort_by_key(|e| (e.first_offset, e.producer_id));
    entries.dedup();
    entries
        .into_iter()
        .map(|e| AbortedTxn {
            producer_id: e.producer_id,
            first_offset: e.first_offset,
        })
        .collect()
}
