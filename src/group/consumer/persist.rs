//! What of a consumer group is written to `__consumer_offsets`, and how a group comes
//! back from it, as Kafka 4 does: the group epoch, the subscribed topics' metadata,
//! each member's metadata (subscription, client, rebalance timeout, assignor), the
//! target assignment with its epoch, and each member's current assignment (epoch,
//! previous epoch, state, assigned partitions, partitions pending revocation).
//!
//! - [`image`]: the records a group stands for now ([`ConsumerGroupRecords`], topic
//!   ids from the metadata image; partitions of a topic that no longer exists are left
//!   out, as the member cannot own them).
//! - [`diff`]: the records to append to go from what was written to what is now: one
//!   upsert per changed record, tombstones for departed members, and every tombstone
//!   when the group is gone. A heartbeat that changes nothing writes nothing.
//! - [`restore`]: the group a replay left. Members get a fresh session (now + the
//!   session timeout) and a member revoking partitions a fresh rebalance timeout, as
//!   Kafka schedules them on load; the members keep their ids and epochs, so after a
//!   restart or a failover their next heartbeat is answered as before it.
//!
//! Pure: the topics and the clock are passed in. Dependencies: `group.rs` (the group's
//! fields), `codec_consumer.rs` (the record values).

use std::collections::{BTreeMap, HashMap};

use super::classic::ClassicMeta;
use super::group::{compile, ConsumerGroup, ConsumerMember, MemberState};
use super::{partitions, Assignment, ConsumerConfig, Topics};
use crate::group::codec::Key;
use crate::group::codec_consumer::{
    ClassicMemberMetadata, ConsumerGroupRecords, ConsumerValue, CurrentAssignment, MemberMetadata,
    TopicMetadata, TopicPartitions,
};

/// A record to append: key and value (`None`: a tombstone).
pub type ConsumerRecord = (Key, Option<ConsumerValue>);

fn state_byte(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(b: i8) -> MemberState {
    match b {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

fn to_ids(a: &Assignment, topics: &Topics) -> TopicPartitions {
    a.iter()
        .filter_map(|(t, ps)| {
            let id = topics.get(t)?.id;
            Some((id, ps.iter().copied().collect()))
        })
        .collect()
}

fn to_names(tps: &TopicPartitions, names: &HashMap<uuid::Uuid, String>) -> Assignment {
    let mut out = Assignment::new();
    for (id, ps) in tps {
        if let Some(name) = names.get(id) {
            out.entry(name.clone())
                .or_default()
                .extend(ps.iter().copied());
        }
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

/// The records group `g` stands for.
pub fn image(g: &ConsumerGroup, topics: &Topics) -> ConsumerGroupRecords {
    let metadata = g
        .subscribed
        .iter()
        .filter_map(|(name, n)| {
            topics.get(name).map(|t| TopicMetadata {
                id: t.id,
                name: name.clone(),
                partitions: *n,
            })
        })
        .collect();
    ConsumerGroupRecords {
        epoch: Some(g.epoch),
        metadata: Some((g.epoch, metadata)),
        members: g
            .members
            .iter()
            .map(|(id, m)| {
                let meta = MemberMetadata {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    topic_names: m.topic_names.clone(),
                    regex: m.regex.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms.clamp(-1, i32::MAX as i64) as i32,
                    server_assignor: m.server_assignor.clone(),
                    classic: m.classic.as_ref().map(|c| ClassicMemberMetadata {
                        session_timeout_ms: c.session_timeout_ms.clamp(0, i32::MAX as i64) as i32,
                        protocols: c.protocols.clone(),
                    }),
                };
                (id.clone(), meta)
            })
            .collect(),
        assignment_epoch: Some(g.assignment_epoch),
        targets: g
            .target
            .iter()
            .map(|(id, a)| (id.clone(), to_ids(a, topics)))
            .collect(),
        current: g
            .members
            .iter()
            .map(|(id, m)| {
                let cur = CurrentAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state: state_byte(m.state),
                    assigned: to_ids(&m.assigned, topics),
                    revoking: to_ids(&m.revoking, topics),
                };
                (id.clone(), cur)
            })
            .collect(),
    }
}

/// Upserts for the entries of `new` that differ from `old`, tombstones for those gone.
fn diff_map<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    key: impl Fn(String) -> Key,
    value: impl Fn(V) -> ConsumerValue,
    out: &mut Vec<ConsumerRecord>,
) {
    for (id, v) in new {
        if old.get(id) != Some(v) {
            out.push((key(id.clone()), Some(value(v.clone()))));
        }
    }
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        out.push((key(id.clone()), None));
    }
}

/// The records that take the log from `old` to `new` for `group`, in Kafka's order:
/// member metadata, group epoch and topics, target assignment, current assignments.
/// A deleted `new` (no epoch) gives every tombstone.
pub fn diff(
    group: &str,
    old: &ConsumerGroupRecords,
    new: &ConsumerGroupRecords,
) -> Vec<ConsumerRecord> {
    let g = || group.to_string();
    let mut out = Vec::new();
    diff_map(
        &old.members,
        &new.members,
        |member| Key::ConsumerMember { group: g(), member },
        ConsumerValue::Member,
        &mut out,
    );
    if old.epoch != new.epoch && !new.is_deleted() {
        out.push((
            Key::ConsumerGroup { group: g() },
            new.epoch.map(ConsumerValue::GroupEpoch),
        ));
    }
    if old.metadata != new.metadata {
        let value = new
            .metadata
            .clone()
            .map(|(epoch, topics)| ConsumerValue::PartitionMetadata { epoch, topics });
        out.push((Key::ConsumerPartitionMetadata { group: g() }, value));
    }
    diff_map(
        &old.targets,
        &new.targets,
        |member| Key::ConsumerTarget { group: g(), member },
        ConsumerValue::Target,
        &mut out,
    );
    if old.assignment_epoch != new.assignment_epoch {
        out.push((
            Key::ConsumerTargetMetadata { group: g() },
            new.assignment_epoch.map(ConsumerValue::AssignmentEpoch),
        ));
    }
    diff_map(
        &old.current,
        &new.current,
        |member| Key::ConsumerCurrent { group: g(), member },
        ConsumerValue::Current,
        &mut out,
    );
    // The group epoch's tombstone last: a replay that stopped before it still sees a
    // whole group.
    if new.is_deleted() && !old.is_deleted() {
        out.push((Key::ConsumerGroup { group: g() }, None));
    }
    out
}

/// The group `records` describe, as of `now`; `None` if it was deleted.
pub fn restore(
    id: &str,
    records: &ConsumerGroupRecords,
    topics: &Topics,
    cfg: &ConsumerConfig,
    now: i64,
) -> Option<ConsumerGroup> {
    let epoch = records.epoch?;
    let names: HashMap<uuid::Uuid, String> =
        topics.iter().map(|(n, t)| (t.id, n.clone())).collect();
    let mut g = ConsumerGroup::new(id);
    g.epoch = epoch;
    g.assignment_epoch = records.assignment_epoch.unwrap_or(0);
    // Not persisted (Kafka neither): the default until the next target is computed.
    g.assignor = cfg.assignors.first().cloned().unwrap_or_default();
    if let Some((_, subscribed)) = &records.metadata {
        g.subscribed = subscribed
            .iter()
            .map(|t| (t.name.clone(), t.partitions))
            .collect();
    }
    for (mid, meta) in &records.members {
        let cur = records.current.get(mid).cloned().unwrap_or_default();
        let state = state_of(cur.state);
        let rebalance_timeout_ms = i64::from(meta.rebalance_timeout_ms.max(0));
        let m = ConsumerMember {
            id: mid.clone(),
            instance_id: meta.instance_id.clone(),
            rack_id: meta.rack_id.clone(),
            client_id: meta.client_id.clone(),
            client_host: meta.client_host.clone(),
            epoch: cur.member_epoch,
            previous_epoch: cur.previous_member_epoch,
            state,
            rebalance_timeout_ms,
            topic_names: meta.topic_names.clone(),
            regex: meta.regex.clone(),
            compiled: meta.regex.as_deref().and_then(|r| compile(r).ok()),
            server_assignor: meta.server_assignor.clone(),
            assigned: to_names(&cur.assigned, &names),
            revoking: to_names(&cur.revoking, &names),
            // A classic member's session is its own JoinGroup session timeout.
            session_deadline: now
                + meta
                    .classic
                    .as_ref()
                    .map_or(cfg.session_timeout_ms, |c| i64::from(c.session_timeout_ms)),
            revoke_deadline: (state == MemberState::UnrevokedPartitions)
                .then_some(now + rebalance_timeout_ms),
            classic: meta.classic.as_ref().map(|c| ClassicMeta {
                session_timeout_ms: i64::from(c.session_timeout_ms),
                protocols: c.protocols.clone(),
            }),
        };
        for (t, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
            g.holders.insert((t.to_string(), p), mid.clone());
        }
        if let Some(target) = records.targets.get(mid) {
            g.target.insert(mid.clone(), to_names(target, &names));
        }
        g.members.insert(mid.clone(), m);
    }
    Some(g)
}
