//! Scripted events against the consumer group state machine with a simulated
//! `__consumer_offsets`: every event's records are encoded, decoded and replayed as the
//! log would, and the group is restored from them mid-rebalance (a restart or a
//! failover) to check the members go on without a rejoin.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::group::codec::{decode_key, encode_key, Key};
use crate::group::codec_consumer::{decode_value, encode_value, ConsumerGroupRecords};

fn cfg() -> ConsumerConfig {
    ConsumerConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        assignors: vec!["uniform".into(), "range".into()],
        migration: Default::default(),
    }
}

fn topics() -> Topics {
    BTreeMap::from([(
        "a".to_string(),
        TopicMeta {
            id: uuid::Uuid::from_u128(7),
            partitions: 6,
        },
    )])
}

/// The log: every record appended, as bytes.
#[derive(Default)]
struct Log(Vec<(bytes::Bytes, Option<bytes::Bytes>)>);

impl Log {
    fn append(&mut self, g: &mut ConsumerGroups) -> usize {
        let records = g.changes("g", &topics());
        for (k, v) in &records {
            self.0.push((encode_key(k), v.as_ref().map(encode_value)));
        }
        records.len()
    }

    /// Replays the log into a new coordinator, as `store.rs` does.
    fn restore(&self, now: i64) -> ConsumerGroups {
        let mut replay = ConsumerGroupRecords::default();
        for (k, v) in &self.0 {
            let key = decode_key(k).expect("key");
            let value = v.as_ref().map(|v| decode_value(&key, v).expect("value"));
            assert!(replay.apply(&key, value));
        }
        let mut g = ConsumerGroups::default();
        g.restore("g", replay, &topics(), &cfg(), now);
        g
    }
}

struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

fn beat(g: &mut ConsumerGroups, log: &mut Log, now: i64, c: &mut Client, names: Option<&[&str]>) {
    let req = Heartbeat {
        member_id: c.id.clone(),
        member_epoch: c.epoch,
        rebalance_timeout_ms: if names.is_some() { 30_000 } else { -1 },
        subscribed_topic_names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
        owned: Some(c.owned.clone()),
        ..Default::default()
    };
    let r = g
        .heartbeat(now, &cfg(), &topics(), "g", req)
        .expect("heartbeat");
    log.append(g);
    c.id = r.member_id;
    c.epoch = r.member_epoch;
    if let Some(a) = r.assignment {
        c.owned = a;
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        epoch: 0,
        owned: Assignment::new(),
    }
}

fn disjoint_and_total(clients: &[&Client]) -> usize {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, p) in partitions(&c.owned) {
            assert!(seen.insert((t.to_string(), p)), "{t}-{p} owned twice");
        }
    }
    seen.len()
}

#[test]
fn a_restored_group_goes_on_without_a_rejoin() {
    let mut g = ConsumerGroups::default();
    let mut log = Log::default();
    let mut a = client("a");
    let mut b = client("b");
    beat(&mut g, &mut log, 0, &mut a, Some(&["a"]));
    beat(&mut g, &mut log, 10, &mut b, Some(&["a"]));
    // a is asked to revoke 3 partitions: the coordinator fails over now.
    beat(&mut g, &mut log, 20, &mut a, None);
    assert_eq!(count(&a.owned), 3);
    let before = g.get("g").unwrap();
    let (epoch, a_state) = (before.epoch, before.members["a"].state);
    assert_eq!(a_state, MemberState::UnrevokedPartitions);

    let mut g = log.restore(1_000);
    let after = g.get("g").unwrap();
    assert_eq!(after.epoch, epoch);
    assert_eq!(after.members["a"].state, MemberState::UnrevokedPartitions);
    assert_eq!(after.members["b"].epoch, b.epoch);
    // Restoring writes nothing: the image is what was replayed.
    assert_eq!(log.append(&mut g), 0);
    // Both go on with their ids and epochs; a acknowledges, b receives.
    beat(&mut g, &mut log, 1_010, &mut a, None);
    beat(&mut g, &mut log, 1_020, &mut b, None);
    beat(&mut g, &mut log, 1_030, &mut a, None);
    assert_eq!((count(&a.owned), count(&b.owned)), (3, 3));
    assert_eq!(disjoint_and_total(&[&a, &b]), 6);
    assert_eq!(g.get("g").unwrap().state_name(), "Stable");
    assert_eq!(g.get("g").unwrap().epoch, epoch);

    // Steady heartbeats write nothing.
    let n = log.0.len();
    beat(&mut g, &mut log, 2_000, &mut a, None);
    beat(&mut g, &mut log, 2_000, &mut b, None);
    assert_eq!(log.0.len(), n);

    // A third member joins after a second restore: the epoch continues from the log.
    let mut g = log.restore(3_000);
    let mut c = client("c");
    beat(&mut g, &mut log, 3_010, &mut c, Some(&["a"]));
    assert_eq!(g.get("g").unwrap().epoch, epoch + 1);
    for now in [3_020, 3_030, 3_040, 3_050] {
        beat(&mut g, &mut log, now, &mut a, None);
        beat(&mut g, &mut log, now, &mut b, None);
        beat(&mut g, &mut log, now, &mut c, None);
    }
    assert_eq!(disjoint_and_total(&[&a, &b, &c]), 6);
    assert_eq!(
        (count(&a.owned), count(&b.owned), count(&c.owned)),
        (2, 2, 2)
    );
}

#[test]
fn leaving_and_expiring_members_are_deleted_from_the_log() {
    let mut g = ConsumerGroups::default();
    let mut log = Log::default();
    let mut a = client("a");
    let mut b = client("b");
    beat(&mut g, &mut log, 0, &mut a, Some(&["a"]));
    beat(&mut g, &mut log, 0, &mut b, Some(&["a"]));
    // b leaves: its three records are tombstoned.
    let leave = Heartbeat {
        member_id: "b".into(),
        member_epoch: LEAVE_EPOCH,
        ..Default::default()
    };
    g.heartbeat(10, &cfg(), &topics(), "g", leave).unwrap();
    let records = g.changes("g", &topics());
    let tombstones: Vec<&Key> = records
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(tombstones.len(), 3, "{records:?}");
    for (k, v) in &records {
        log.0.push((encode_key(k), v.as_ref().map(encode_value)));
    }
    let restored = log.restore(20);
    assert_eq!(
        restored
            .get("g")
            .unwrap()
            .members
            .keys()
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    // a goes silent: its session expires on the restored coordinator too.
    let mut restored = restored;
    assert!(restored.tick(20 + 44_999, &topics(), &cfg()).is_empty());
    assert_eq!(restored.tick(20 + 45_000, &topics(), &cfg()).len(), 1);
    assert!(restored.get("g").unwrap().members.is_empty());
    // The group deleted (DeleteGroups) leaves nothing to restore.
    assert!(restored.remove_if_empty("g"));
    let records = restored.changes("g", &topics());
    assert!(records.iter().all(|(_, v)| v.is_none()));
    assert!(matches!(
        records.last(),
        Some((Key::ConsumerGroup { .. }, None))
    ));
    for (k, v) in &records {
        log.0.push((encode_key(k), v.as_ref().map(encode_value)));
    }
    assert!(log.restore(0).get("g").is_none());
}

#[test]
fn a_heartbeat_that_is_not_a_join_to_a_classic_group_gets_kafkas_answer() {
    assert_eq!(check_not_classic("g", false, 3), Ok(()));
    assert_eq!(check_not_classic("g", true, 0), Ok(()));
    let beat = check_not_classic("g", true, 3).unwrap_err();
    assert_eq!(beat.to_string(), "Group g is not a consumer group.");
}

#[test]
fn a_failed_write_reverts_the_group_to_the_log() {
    let mut g = ConsumerGroups::default();
    let mut log = Log::default();
    let mut a = client("a");
    beat(&mut g, &mut log, 0, &mut a, Some(&["a"]));
    let epoch = g.get("g").unwrap().epoch;
    // b joins, but its records cannot be appended: the join is undone.
    let req = Heartbeat {
        member_id: "b".into(),
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["a".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    };
    g.heartbeat(10, &cfg(), &topics(), "g", req).unwrap();
    assert!(!g.changes("g", &topics()).is_empty());
    g.revert("g", &topics(), &cfg(), 10);
    let back = g.get("g").unwrap();
    assert_eq!(back.epoch, epoch);
    assert_eq!(back.members.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(count(&back.members["a"].assigned), 6);
    // Nothing is left to write: the group is what the log has.
    assert!(g.changes("g", &topics()).is_empty());
    // A group created by a failed first join disappears.
    let mut fresh2 = ConsumerGroups::default();
    let req = Heartbeat {
        member_id: "c".into(),
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["a".into()]),
        owned: Some(Assignment::new()),
        ..Default::default()
    };
    fresh2.heartbeat(0, &cfg(), &topics(), "g", req).unwrap();
    fresh2.changes("g", &topics());
    fresh2.revert("g", &topics(), &cfg(), 0);
    assert!(fresh2.get("g").is_none());
}
