//! Replica fetchers: how a follower copies its leader's log, as Kafka's ReplicaFetcherThread.
//!
//! One task per leader this broker follows fetches every such partition in one Fetch request
//! (replica id = this broker, so the leader reads up to its log end and counts the fetch
//! offset as this follower's progress). A partition whose leader or leader epoch changed first
//! asks the leader with OffsetForLeaderEpoch where its log diverges and truncates there
//! (KIP-101/279), so that a former leader drops records the new leader never had.
//!
//! `apply_topic` only updates the target table ([`Fetchers::follow`]); the supervisor loop
//! started by [`ReplicaManager::spawn_fetchers`] starts a task for each leader that has targets,
//! and a task ends when its leader has none left. Requests go through `protocol::client`, whose
//! [`ClientError`] any failed exchange is (the fetcher then reconnects after a backoff).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use strata_controller::{PartitionMeta, NO_LEADER};
use tokio::sync::{watch, Notify};

use super::throttle::{Side, UNTHROTTLED};
use super::{Partition, ReplicaManager, TopicPartition};
use crate::now_ms;
use crate::protocol::client::{Client, ClientError};
use crate::protocol::client_security::inter_broker;

/// How the replica fetchers name themselves to the leaders they fetch from.
const CLIENT_ID: &str = "strata-replica-fetcher";

/// A partition this broker follows.
#[derive(Clone)]
struct Target {
    part: Arc<Partition>,
    leader: i32,
    leader_epoch: i32,
    /// Check the log against the leader (OffsetForLeaderEpoch) before the next fetch.
    truncate: bool,
}

/// The partitions this broker follows, by topic-partition.
#[derive(Default)]
pub struct Fetchers {
    targets: Mutex<HashMap<TopicPartition, Target>>,
    changed: Notify,
}

impl Fetchers {
    /// Follows `part` if `meta` makes this broker (`node`) a follower; stops otherwise.
    pub fn follow(&self, part: &Arc<Partition>, meta: &PartitionMeta, node: i32) {
        let mut targets = self.targets.lock();
        if meta.leader == node || meta.leader == NO_LEADER {
            targets.remove(&part.tp);
            return;
        }
        let same = targets
            .get(&part.tp)
            .is_some_and(|t| t.leader == meta.leader && t.leader_epoch == meta.leader_epoch);
        if !same {
            targets.insert(
                part.tp.clone(),
                Target {
                    part: part.clone(),
                    leader: meta.leader,
                    leader_epoch: meta.leader_epoch,
                    truncate: true,
                },
            );
            drop(targets);
            self.changed.notify_one();
        }
    }

    pub fn unfollow(&self, tp: &TopicPartition) {
        self.targets.lock().remove(tp);
    }

    fn of_leader(&self, leader: i32) -> Vec<Target> {
        self.targets
            .lock()
            .values()
            .filter(|t| t.leader == leader)
            .cloned()
            .collect()
    }

    fn leaders(&self) -> Vec<i32> {
        let mut l: Vec<i32> = self.targets.lock().values().map(|t| t.leader).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// Marks a partition as checked against its leader at `epoch` (unless it moved on since).
    fn truncated(&self, tp: &TopicPartition, epoch: i32) {
        if let Some(t) = self.targets.lock().get_mut(tp) {
            if t.leader_epoch == epoch {
                t.truncate = false;
            }
        }
    }

    fn needs_truncation(&self, tp: &TopicPartition) {
        if let Some(t) = self.targets.lock().get_mut(tp) {
            t.truncate = true;
        }
    }
}

impl ReplicaManager {
    /// Starts the supervisor that runs one fetcher task per followed leader.
    pub fn spawn_fetchers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        let broker = self.clone();
        tokio::spawn(async move {
            let mut running: BTreeMap<i32, tokio::task::JoinHandle<()>> = BTreeMap::new();
            let mut stop = shutdown.clone();
            loop {
                running.retain(|_, h| !h.is_finished());
                for leader in broker.fetchers.leaders() {
                    running.entry(leader).or_insert_with(|| {
                        tokio::spawn(run_fetcher(broker.clone(), leader, shutdown.clone()))
                    });
                }
                tokio::select! {
                    _ = broker.fetchers.changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => return,
                }
            }
        });
    }
}

async fn run_fetcher(broker: Arc<ReplicaManager>, leader: i32, shutdown: watch::Receiver<bool>) {
    let node = broker.metadata.node_id();
    let mut client: Option<Client> = None;
    tracing::info!(leader, "replica fetcher started");
    loop {
        if *shutdown.borrow() {
            return;
        }
        let targets = broker.fetchers.of_leader(leader);
        if targets.is_empty() {
            tracing::info!(leader, "replica fetcher stopped: nothing left to follow");
            return;
        }
        let config = broker.metadata.config();
        let backoff = Duration::from_millis(config.replica_fetch_backoff_ms.max(10) as u64);
        if client.is_none() {
            match connect(&broker, leader).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach the leader; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let result = async {
            let (check, ready): (Vec<Target>, Vec<Target>) =
                targets.into_iter().partition(|t| t.truncate);
            if !check.is_empty() {
                truncate(&broker, c, node, &check).await?;
            }
            if !ready.is_empty() {
                fetch(&broker, c, node, &ready).await?;
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<(), ClientError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(leader, error = %e, "replica fetch failed; reconnecting");
            client = None;
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Connects to the leader's inter-broker listener as that listener asks (TLS with this
/// node's certificate, SASL PLAIN with the JAAS login). The PEM files are read at each
/// connect, so renewed certificates are used from the next reconnection on.
async fn connect(broker: &ReplicaManager, leader: i32) -> Result<Client, ClientError> {
    let image = broker.metadata.image();
    let addr = image
        .brokers
        .get(&leader)
        .map(|b| format!("{}:{}", b.host, b.port))
        .ok_or(ClientError::NoAddress)?;
    let config = broker.metadata.config();
    let security = match config
        .security
        .listener(&config.security.inter_broker_listener)
    {
        Some(l) => inter_broker(l).map_err(ClientError::Security)?,
        None => Default::default(),
    };
    Client::connect_secure(&addr, Duration::from_secs(5), CLIENT_ID, &security).await
}

/// Targets grouped by topic, as requests list them.
fn by_topic(targets: &[Target]) -> BTreeMap<Arc<str>, Vec<&Target>> {
    let mut out: BTreeMap<Arc<str>, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        out.entry(t.part.tp.topic.clone()).or_default().push(t);
    }
    out
}

/// The target a response entry is about.
fn find<'a>(targets: &'a [Target], topic: &TopicName, partition: i32) -> Option<&'a Target> {
    position(targets, topic, partition).map(|i| &targets[i])
}

/// The index of the target a response entry is about.
fn position(targets: &[Target], topic: &TopicName, partition: i32) -> Option<usize> {
    targets
        .iter()
        .position(|t| *t.part.tp.topic == *topic.0 && t.part.tp.partition == partition)
}

fn name(tp: &TopicPartition) -> TopicName {
    TopicName(StrBytes::from_string(tp.topic.to_string()))
}

/// Asks the leader where each partition's log diverges from its own and truncates there.
async fn truncate(
    broker: &ReplicaManager,
    c: &mut Client,
    node: i32,
    targets: &[Target],
) -> Result<(), ClientError> {
    let by_topic = by_topic(targets);
    let topics = by_topic
        .values()
        .map(|ts| {
            OffsetForLeaderTopic::default()
                .with_topic(name(&ts[0].part.tp))
                .with_partitions(
                    ts.iter()
                        .map(|t| {
                            OffsetForLeaderPartition::default()
                                .with_partition(t.part.tp.partition)
                                .with_current_leader_epoch(t.leader_epoch)
                                .with_leader_epoch(t.part.log.latest_epoch().unwrap_or(-1))
                        })
                        .collect(),
                )
        })
        .collect();
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(node))
        .with_topics(topics);
    let resp = c.send_capped(req, 4).await?;
    for topic in resp.topics {
        for p in topic.partitions {
            let Some(t) = find(targets, &topic.topic, p.partition) else {
                continue;
            };
            if p.error_code != 0 {
                tracing::debug!(tp = %t.part.tp, error = p.error_code, "OffsetForLeaderEpoch refused; waiting for metadata");
                continue;
            }
            let log = &t.part.log;
            let end = log.log_end_offset();
            let cut = if p.end_offset < 0 {
                // The leader knows no epoch as old as ours: keep the log (nothing to compare).
                end
            } else {
                let mine = log
                    .end_offset_for_epoch(p.leader_epoch)
                    .map_or(end, |(_, e)| e);
                p.end_offset.min(mine).min(end)
            };
            if cut < end {
                match log.truncate_to(cut) {
                    Ok(_) => {
                        t.part.on_truncated();
                        tracing::warn!(tp = %t.part.tp, from = end, to = cut, leader_epoch = t.leader_epoch, "truncated diverging records after a leader change");
                    }
                    Err(e) => {
                        tracing::error!(tp = %t.part.tp, error = %e, "truncation failed; will retry");
                        continue;
                    }
                }
            }
            broker.fetchers.truncated(&t.part.tp, t.leader_epoch);
        }
    }
    Ok(())
}

/// Whether this follower throttles its fetches of `part` (KIP-73): the topic's
/// `follower.replication.throttled.replicas` names this broker's replica, and this broker is
/// not in the ISR (KIP-542: in-sync replication is never throttled).
fn follower_throttles(broker: &ReplicaManager, part: &Partition, node: i32) -> bool {
    let listed = broker.metadata.topic(&part.tp.topic).is_some_and(|t| {
        t.config
            .follower_throttled_replicas
            .throttles(part.tp.partition, node)
    });
    listed && !part.with_replica(|r| r.meta.isr.contains(&node))
}

/// One Fetch from the leader for `targets`; appends what comes back. While the follower's
/// replication quota is used up, throttled partitions are left out of the request (Kafka's
/// `shouldFollowerThrottle`); when that leaves nothing, the fetcher waits for the quota.
async fn fetch(
    broker: &ReplicaManager,
    c: &mut Client,
    node: i32,
    targets: &[Target],
) -> Result<(), ClientError> {
    let config = broker.metadata.config();
    let rate = config.follower_replication_throttled_rate;
    let throttled: Vec<bool> = if rate == UNTHROTTLED {
        vec![false; targets.len()]
    } else {
        targets
            .iter()
            .map(|t| follower_throttles(broker, &t.part, node))
            .collect()
    };
    let hold = throttled.iter().any(|t| *t) && broker.quotas.exceeded(Side::Follower, rate);
    let (targets, throttled): (Vec<Target>, Vec<bool>) = targets
        .iter()
        .zip(throttled)
        .filter(|(_, throttled)| !(hold && *throttled))
        .map(|(t, throttled)| (t.clone(), throttled))
        .unzip();
    if targets.is_empty() {
        let wait = broker.quotas.wait(Side::Follower, rate);
        tokio::time::sleep(wait.clamp(Duration::from_millis(10), Duration::from_secs(1))).await;
        return Ok(());
    }
    let targets = targets.as_slice();
    let by_topic = by_topic(targets);
    let topics = by_topic
        .values()
        .map(|ts| {
            FetchTopic::default()
                .with_topic(name(&ts[0].part.tp))
                .with_partitions(
                    ts.iter()
                        .map(|t| {
                            FetchPartition::default()
                                .with_partition(t.part.tp.partition)
                                .with_current_leader_epoch(t.leader_epoch)
                                .with_fetch_offset(t.part.log.log_end_offset())
                                .with_log_start_offset(t.part.log.log_start_offset())
                                .with_partition_max_bytes(config.replica_fetch_max_bytes)
                        })
                        .collect(),
                )
        })
        .collect();
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(node))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.replica_fetch_response_max_bytes)
        .with_session_epoch(-1)
        .with_topics(topics);
    let resp = c.send_capped(req, 12).await?;
    if resp.error_code != 0 {
        return Err(ClientError::Protocol {
            addr: c.addr().to_string(),
            reason: format!(
                "the leader refused the fetch with error {}",
                resp.error_code
            ),
        });
    }
    let now = now_ms();
    let mut throttled_bytes = 0usize;
    for topic in resp.responses {
        for p in topic.partitions {
            let Some(i) = position(targets, &topic.topic, p.partition_index) else {
                continue;
            };
            let t = &targets[i];
            let part = &t.part;
            match ResponseError::try_from_code(p.error_code) {
                None => {
                    let records = p.records.unwrap_or_default();
                    crate::metrics::replica_fetch_bytes(&part.tp.topic, records.len());
                    if throttled[i] {
                        throttled_bytes += records.len();
                    }
                    if let Err(e) = part.append_as_follower(&records, p.high_watermark, now) {
                        tracing::warn!(tp = %part.tp, error = %e, "could not append fetched records; checking the log against the leader");
                        broker.fetchers.needs_truncation(&part.tp);
                    }
                    follow_log_start(part, p.log_start_offset);
                }
                Some(ResponseError::OffsetOutOfRange)
                    if part.log.log_end_offset() < p.log_start_offset =>
                {
                    restart_at(part, p.log_start_offset);
                }
                Some(ResponseError::OffsetOutOfRange) => broker.fetchers.needs_truncation(&part.tp),
                Some(ResponseError::OffsetMovedToTieredStorage) => {
                    let start = earliest_local(c, node, part).await?;
                    restart_at(part, start);
                    restore_producers(broker, part, start).await;
                }
                Some(e) => {
                    tracing::debug!(tp = %part.tp, error = ?e, "the leader refused this partition; waiting for metadata");
                }
            }
        }
    }
    broker.quotas.record(Side::Follower, rate, throttled_bytes);
    Ok(())
}

/// The leader's log start moved (DeleteRecords, retention, the offsets topic's compaction):
/// drop the same prefix here, as Kafka's follower does. A tiered partition's log start is the
/// remote one, below the local logs: local retention trims those instead.
fn follow_log_start(part: &Partition, leader_log_start: i64) {
    let log = &part.log;
    if leader_log_start <= log.log_start_offset() || leader_log_start > log.log_end_offset() {
        return;
    }
    if let Err(e) = log.delete_records_before(leader_log_start) {
        tracing::warn!(tp = %part.tp, leader_log_start, error = %e, "could not follow the leader's log start; will retry");
    }
}

/// The follower is behind the leader's log start: start over, empty, at `offset`.
fn restart_at(part: &Partition, offset: i64) {
    match part.log.truncate_fully_and_start_at(offset) {
        Ok(()) => {
            part.on_truncated();
            tracing::info!(tp = %part.tp, offset, "follower log restarted at the leader's log start");
        }
        Err(e) => {
            tracing::error!(tp = %part.tp, offset, error = %e, "could not restart the follower log")
        }
    }
}

/// A follower restarted at the leader's local log start takes the producer state uploaded
/// with the remote segment ending there (Kafka's `buildRemoteLogAuxState`), so that as a
/// future leader it still deduplicates idempotent producers and knows the transactions open
/// across that offset. Best effort: without a snapshot (none uploaded, or this node's
/// manifest is behind) the follower learns producers from the batches it copies, as before.
async fn restore_producers(broker: &ReplicaManager, part: &Partition, start: i64) {
    let (Some(tier), Some(m)) = (broker.remote(), part.remote_manifest()) else {
        return;
    };
    let Some(seg) = m
        .segments
        .iter()
        .find(|s| s.next_offset == start && s.producer_snapshot_bytes > 0)
    else {
        return;
    };
    let restored = match tier.reader.producer_snapshot(&m.partition, seg).await {
        Ok(bytes) => part
            .log
            .restore_producer_snapshot(start, &bytes)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match restored {
        Ok(true) => {
            tracing::info!(tp = %part.tp, offset = start, "producer state restored from the remote tier")
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(tp = %part.tp, offset = start, %error, "could not restore the producer state from the remote tier")
        }
    }
}

/// The leader's local log start offset (ListOffsets EARLIEST_LOCAL_TIMESTAMP, -4): a follower of
/// a tiered partition copies only what the leader holds locally; older data is in the bucket.
async fn earliest_local(c: &mut Client, node: i32, part: &Partition) -> Result<i64, ClientError> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(node))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(&part.tp))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(part.tp.partition)
                .with_timestamp(-4)])]);
    let resp = c.send_capped(req, 8).await?;
    resp.topics
        .first()
        .and_then(|t| t.partitions.first())
        .filter(|p| p.error_code == 0)
        .map(|p| p.offset)
        .ok_or_else(|| ClientError::Protocol {
            addr: c.addr().to_string(),
            reason: format!("{}: the leader did not give its local log start", part.tp),
        })
}
