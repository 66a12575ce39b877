//! The async layer over the coordinator state machine, [`GroupCoordinator`]: it parks
//! JoinGroup and SyncGroup requests on oneshot channels until an action answers them,
//! runs the timer that feeds `Tick` events, and turns decisions into group metadata
//! records that `store.rs` appends to `__consumer_offsets`. This file has the
//! membership requests (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and the admin ones
//! (ListGroups, DescribeGroups, DeleteGroups); the committed-offsets requests are in
//! `commits.rs`, ownership in `ownership.rs`, all
//! methods of the same type over the same `Inner`.
//!
//! One mutex guards the state machine and the offset cache. Writes happen under it,
//! so the order of records in the log is the order of decisions (replay is "last
//! write wins"). A write is one `pwrite` into the page cache, as for Produce.
//!
//! Dependencies point down: `coordinator.rs` and `state` (decisions), `offsets.rs`
//! (the offset cache), `codec.rs` (record keys and values) and `store.rs` (the topic).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use super::codec::{self, Key};
use super::consumer::{ConsumerConfig, ConsumerGroups};
use super::consumer_api::WRITE_TIMEOUT;
use super::coordinator::{Coordinator, Event};
use super::offsets::OffsetStore;
use super::state::{Action, GroupConfig, GroupState, JoinRequest, JoinResponse, SyncRequest};
use super::store::{OffsetsTopic, PendingOffset, Record};
use super::GroupError;
use crate::broker::{Broker, BrokerError};
use crate::now_ms;

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// `classic` or `consumer` (KIP-848), as ListGroups v5 reports it.
    pub group_type: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

/// A SyncGroup answer: the assignment, the protocol type and the protocol name.
pub type SyncResult = Result<(Bytes, Option<String>, Option<String>), GroupError>;

pub(crate) struct Inner {
    pub(super) sm: Coordinator,
    pub(super) offsets: OffsetStore,
    /// `__consumer_offsets` partitions this node leads and has replayed: it coordinates exactly
    /// the groups that hash to them (see `ownership.rs`).
    pub(super) loaded: std::collections::BTreeSet<i32>,
    /// Transactional offsets by producer id, until their marker (`txn_offsets.rs`):
    /// (group, topic, partition, offset).
    pub(super) txn_offsets: HashMap<i64, Vec<PendingOffset>>,
    /// The next sequence of each transactional producer's offset batches.
    pub(super) txn_seq: HashMap<i64, i32>,
    /// Consumer groups of the KIP-848 protocol (persisted by `consumer_api.rs`).
    pub(super) consumer: ConsumerGroups,
    pub(super) consumer_cfg: ConsumerConfig,
    joins: HashMap<u64, oneshot::Sender<JoinResponse>>,
    syncs: HashMap<u64, oneshot::Sender<SyncResult>>,
    next_reply: u64,
}

pub struct GroupCoordinator {
    /// The storage: every read and write of `__consumer_offsets` goes through it.
    pub(super) store: OffsetsTopic,
    pub(super) inner: Mutex<Inner>,
    wake: Notify,
}

fn consumer_config(broker: &Broker) -> ConsumerConfig {
    let c = &broker.config().consumer_group;
    ConsumerConfig {
        session_timeout_ms: c.session_timeout_ms as i64,
        heartbeat_interval_ms: c.heartbeat_interval_ms,
        assignors: c.assignors.clone(),
        // Validated by the config layer (one of Kafka's four values).
        migration: c.migration_policy.parse().unwrap_or_default(),
    }
}

fn group_config(broker: &Broker) -> GroupConfig {
    let c = broker.config();
    GroupConfig {
        initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms as i64,
        min_session_timeout_ms: c.group_min_session_timeout_ms,
        max_session_timeout_ms: c.group_max_session_timeout_ms,
        member_id_seed: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
    }
}

impl GroupCoordinator {
    /// Creates `__consumer_offsets` if missing, replays it, and starts the timers.
    pub async fn start(
        broker: Arc<Broker>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<GroupCoordinator>, BrokerError> {
        let store = OffsetsTopic::open(&broker).await?;
        let coordinator = Arc::new(GroupCoordinator {
            inner: Mutex::new(Inner {
                sm: Coordinator::new(group_config(&broker)),
                consumer: ConsumerGroups::default(),
                consumer_cfg: consumer_config(&broker),
                offsets: OffsetStore::default(),
                loaded: Default::default(),
                txn_offsets: HashMap::new(),
                txn_seq: HashMap::new(),
                joins: HashMap::new(),
                syncs: HashMap::new(),
                next_reply: 0,
            }),
            store,
            wake: Notify::new(),
        });
        coordinator.sync_ownership();
        coordinator.clone().spawn_timers(shutdown);
        Ok(coordinator)
    }

    fn spawn_timers(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let c = self.clone();
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let inner = c.inner.lock();
                    [inner.sm.next_deadline(), inner.consumer.next_deadline()]
                        .into_iter()
                        .flatten()
                        .min()
                };
                let wait = next
                    .map(|d| (d - now_ms()).max(0) as u64)
                    .unwrap_or(60_000)
                    .min(60_000);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                    _ = c.wake.notified() => continue,
                    _ = s.changed() => return,
                }
                c.event("", Event::Tick);
                c.consumer_tick();
            }
        });
        let c = self.clone();
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let every = c.store.retention_check_interval();
                tokio::select! {
                    _ = tokio::time::sleep(every) => {
                        // Tombstone appends block on the disk: off the workers that serve
                        // requests.
                        let c = c.clone();
                        crate::blocking::off_worker(move || c.expire_offsets(now_ms())).await;
                    }
                    _ = s.changed() => return,
                }
            }
        });
        let c = self.clone();
        let mut s = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => c.sync_ownership(),
                    _ = s.changed() => return,
                }
            }
        });
    }

    pub(super) fn wake_timer(&self) {
        self.wake.notify_one();
    }

    /// Feeds an event and performs its actions.
    fn event(&self, group: &str, event: Event) {
        let mut inner = self.inner.lock();
        let actions = inner.sm.on_event(now_ms(), group, event);
        self.perform(&mut inner, actions);
        drop(inner);
        self.wake.notify_one();
    }

    pub(super) fn perform(&self, inner: &mut Inner, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Join(id, resp) => {
                    if let Some(tx) = inner.joins.remove(&id) {
                        let _ = tx.send(resp);
                    }
                }
                Action::Sync(id, res) => {
                    if let Some(tx) = inner.syncs.remove(&id) {
                        let _ = tx.send(res.map(|a| (a, None, None)));
                    }
                }
                Action::Persist(group) => {
                    let Some(g) = inner.sm.group(&group) else {
                        continue;
                    };
                    let value = codec::encode_group(&g.snapshot());
                    let key = codec::encode_key(&Key::Group {
                        group: group.clone(),
                    });
                    if let Err(e) = self.store.append(&group, vec![(key, Some(value))]) {
                        tracing::error!(error = %e, "could not persist group metadata");
                    }
                }
            }
        }
    }

    pub async fn join(&self, group: &str, req: JoinRequest) -> JoinResponse {
        let member = req.member_id.clone();
        if let Err(e) = self.owns(group) {
            return JoinResponse::error(e, &member);
        }
        let (tx, rx) = oneshot::channel();
        // A consumer group (KIP-848) with members serves classic members itself (Kafka
        // 4's mixed mode); an empty one gives its id up (Kafka converts an empty group
        // to the protocol that joins).
        let mixed = {
            let mut inner = self.inner.lock();
            if inner.consumer.has_members(group) {
                Some(self.classic_join_consumer(&mut inner, group, req))
            } else {
                self.join_classic(&mut inner, group, req, tx)
                    .map(|now| (now, None))
            }
        };
        self.wake.notify_one();
        match mixed {
            Some((resp, Some(a))) => match self.store.wait_replicated(&a, WRITE_TIMEOUT).await {
                Ok(_) => resp,
                Err(_) => JoinResponse::error(GroupError::CoordinatorNotAvailable, &member),
            },
            Some((resp, None)) => resp,
            None => rx.await.unwrap_or_else(|_| {
                JoinResponse::error(GroupError::CoordinatorNotAvailable, &member)
            }),
        }
    }

    /// A JoinGroup to a classic group, parked on `tx` until the state machine answers;
    /// `Some` is an immediate answer.
    fn join_classic(
        &self,
        inner: &mut Inner,
        group: &str,
        req: JoinRequest,
        tx: oneshot::Sender<JoinResponse>,
    ) -> Option<JoinResponse> {
        let member = req.member_id.clone();
        {
            if inner.consumer.remove_if_empty(group) {
                // The empty consumer group gives its id to the classic one: its records
                // are deleted (tombstones), as Kafka does when it converts an empty group.
                let topics = self.topics();
                if let Err(e) = self.write_consumer(inner, group, &topics) {
                    return Some(JoinResponse::error(e, &member));
                }
            }
            inner.next_reply += 1;
            let id = inner.next_reply;
            inner.joins.insert(id, tx);
            let actions = inner.sm.on_event(now_ms(), group, Event::Join(id, req));
            self.perform(inner, actions);
        }
        None
    }

    pub async fn sync(&self, group: &str, req: SyncRequest) -> SyncResult {
        self.owns(group)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.inner.lock();
            if let Some(res) = self.classic_sync_consumer(&mut inner, group, &req) {
                drop(inner);
                self.wake.notify_one();
                return res;
            }
            inner.next_reply += 1;
            let id = inner.next_reply;
            inner.syncs.insert(id, tx);
            let actions = inner.sm.on_event(now_ms(), group, Event::Sync(id, req));
            self.perform(&mut inner, actions);
        }
        self.wake.notify_one();
        let (assignment, _, _) = rx
            .await
            .unwrap_or(Err(GroupError::CoordinatorNotAvailable))?;
        let inner = self.inner.lock();
        let g = inner.sm.group(group);
        Ok((
            assignment,
            g.and_then(|g| g.protocol_type.clone()),
            g.and_then(|g| g.protocol.clone()),
        ))
    }

    pub fn heartbeat(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.owns(group)?;
        let mut inner = self.inner.lock();
        let res = match self
            .classic_heartbeat_consumer(&mut inner, group, member, instance, generation)
        {
            Some(res) => res,
            None => inner
                .sm
                .heartbeat(now_ms(), group, member, instance, generation),
        };
        drop(inner);
        self.wake.notify_one();
        res
    }

    /// Removes members; per-member results in request order.
    pub fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.owns(group)?;
        let mut inner = self.inner.lock();
        if let Some(results) = self.classic_leave_consumer(&mut inner, group, members) {
            drop(inner);
            self.wake.notify_one();
            return Ok(results);
        }
        let (results, actions) = inner.sm.leave(now_ms(), group, members)?;
        self.perform(&mut inner, actions);
        drop(inner);
        self.wake.notify_one();
        Ok(results)
    }

    /// The groups this node coordinates (Kafka's ListGroups answers per broker).
    pub fn list(&self) -> Vec<GroupListing> {
        let partitions = self.store.partitions().unwrap_or(0);
        let inner = self.inner.lock();
        let mut out: Vec<GroupListing> = inner
            .sm
            .groups()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| {
                inner
                    .loaded
                    .contains(&codec::partition_for(&g.id, partitions))
            })
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
                group_type: "classic",
            })
            .filter(|g| !inner.consumer.has_members(&g.group_id))
            .collect();
        out.extend(
            inner
                .consumer
                .groups()
                .filter(|g| {
                    inner
                        .loaded
                        .contains(&codec::partition_for(&g.id, partitions))
                })
                .filter(|g| inner.sm.group(&g.id).is_none_or(|c| c.is_empty()))
                .filter(|g| !g.members.is_empty() || inner.sm.group(&g.id).is_none())
                .map(|g| GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: g.state_name(),
                    group_type: "consumer",
                }),
        );
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe(&self, group: &str) -> GroupDescription {
        let inner = self.inner.lock();
        // A consumer group (KIP-848) is not described by the classic API: `Dead`, as
        // Kafka answers for a group that is not classic.
        let classic = inner
            .sm
            .group(group)
            .filter(|_| !inner.consumer.has_members(group));
        let Some(g) = classic else {
            return GroupDescription {
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }
    }

    /// Deletes empty groups with their offsets (tombstones in `__consumer_offsets`).
    pub fn delete_groups(&self, groups: &[String]) -> Vec<Result<(), GroupError>> {
        let owned: Vec<Result<(), GroupError>> = groups.iter().map(|g| self.owns(g)).collect();
        let mut inner = self.inner.lock();
        groups
            .iter()
            .zip(owned)
            .map(|(id, owned)| {
                owned?;
                let exists = inner.sm.group(id).is_some()
                    || inner.offsets.has_group(id)
                    || inner.consumer.get(id).is_some();
                if !exists {
                    return Err(GroupError::GroupNotFound { group: id.clone() });
                }
                if inner.sm.group(id).is_some_and(|g| !g.is_empty())
                    || inner.consumer.has_members(id)
                {
                    return Err(GroupError::NonEmptyGroup { group: id.clone() });
                }
                self.remove_group(&mut inner, id)
            })
            .collect()
    }

    pub(super) fn remove_group(&self, inner: &mut Inner, id: &str) -> Result<(), GroupError> {
        let mut records: Vec<Record> = inner
            .offsets
            .all(id)
            .into_iter()
            .map(|(t, p, _)| {
                (
                    codec::encode_key(&Key::Offset {
                        group: id.to_string(),
                        topic: t.to_string(),
                        partition: p,
                    }),
                    None,
                )
            })
            .collect();
        records.push((
            codec::encode_key(&Key::Group {
                group: id.to_string(),
            }),
            None,
        ));
        // An empty consumer group's records are deleted in the same batch.
        let topics = self.topics();
        let consumer = inner.consumer.remove_if_empty(id);
        if consumer {
            let tombstones = inner.consumer.changes(id, &topics);
            records.extend(super::codec_consumer::codec_records(&tombstones));
        }
        if let Err(e) = self.store.append(id, records) {
            if consumer {
                inner
                    .consumer
                    .revert(id, &topics, &inner.consumer_cfg, now_ms());
            }
            return Err(e);
        }
        for (t, p) in inner
            .offsets
            .all(id)
            .into_iter()
            .map(|(t, p, _)| (t.to_string(), p))
            .collect::<Vec<_>>()
        {
            inner.offsets.remove(id, &t, p);
        }
        let actions = inner.sm.remove(id, now_ms());
        self.perform(inner, actions);
        Ok(())
    }
}
