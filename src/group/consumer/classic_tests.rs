//! Scripted events for Kafka 4's mixed mode: a classic group upgraded by a joining
//! consumer-protocol member, its classic members reconciled through JoinGroup,
//! SyncGroup and Heartbeat, and the downgrade when the consumer member leaves.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::*;
use crate::group::codec::{decode_key, encode_key, GroupSnapshot, MemberSnapshot};
use crate::group::codec_consumer::{decode_value, encode_value};
use crate::group::embedded::{decode_assignment, encode_assignment, encode_subscription};
use crate::group::state::{Group, GroupConfig, GroupState, JoinRequest, SyncRequest};

fn cfg() -> ConsumerConfig {
    ConsumerConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        assignors: vec!["uniform".into(), "range".into()],
        migration: MigrationPolicy::Bidirectional,
    }
}

fn topics() -> Topics {
    [(
        "t".to_string(),
        TopicMeta {
            id: uuid::Uuid::from_u128(7),
            partitions: 6,
        },
    )]
    .into()
}

fn parts(ps: &[i32]) -> Assignment {
    [(
        "t".to_string(),
        ps.iter().copied().collect::<BTreeSet<i32>>(),
    )]
    .into()
}

/// A Stable classic group of `a` (t-0..2) and `b` (t-3..5) at generation 3.
fn classic_group(protocol_type: &str) -> Group {
    let member = |id: &str, owned: &[i32]| MemberSnapshot {
        id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 30_000,
        session_timeout_ms: 10_000,
        subscription: encode_subscription(&["t"], &Assignment::new()),
        assignment: encode_assignment(&parts(owned)),
    };
    let snap = GroupSnapshot {
        protocol_type: Some(protocol_type.into()),
        generation: 3,
        protocol: Some("range".into()),
        leader: Some("a".into()),
        state_timestamp: 0,
        members: vec![member("a", &[0, 1, 2]), member("b", &[3, 4, 5])],
    };
    Group::restore("g", snap, 0)
}

fn classic_join(id: &str, owned: &Assignment) -> JoinRequest {
    JoinRequest {
        member_id: id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), encode_subscription(&["t"], owned))],
        require_known_member_id: true,
    }
}

fn sync(id: &str, generation: i32) -> SyncRequest {
    SyncRequest {
        member_id: id.into(),
        instance_id: None,
        generation,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: Vec::new(),
    }
}

/// A classic client's round: join with what it owns, sync, own what it is given.
/// Returns the generation it ends at.
fn rejoin(g: &mut ConsumerGroup, now: i64, id: &str, owned: &mut Assignment) -> i32 {
    let t = topics();
    let j = g
        .classic_join(now, &cfg(), &t, classic_join(id, owned))
        .unwrap();
    assert_eq!(j.error, None);
    assert_eq!(j.leader, "", "no classic member computes an assignment");
    let (bytes, ptype, name) = g.classic_sync(now, &sync(id, j.generation)).unwrap();
    assert_eq!(
        (ptype.as_deref(), name.as_deref()),
        (Some("consumer"), Some("range"))
    );
    *owned = decode_assignment(&bytes).unwrap();
    j.generation
}

/// Every partition of t is held by exactly one member.
fn owned_once(g: &ConsumerGroup) -> usize {
    let mut seen = BTreeSet::new();
    for m in g.members.values() {
        for (_, p) in partitions(&m.assigned).chain(partitions(&m.revoking)) {
            assert!(seen.insert(p), "partition {p} held twice");
        }
    }
    seen.len()
}

#[test]
fn upgrade_keeps_classic_members_and_their_partitions() {
    let t = topics();
    let g = from_classic(
        &classic_group("consumer"),
        &t,
        MigrationPolicy::Bidirectional,
        0,
    )
    .unwrap();
    assert_eq!((g.epoch, g.assignment_epoch), (3, 3));
    let a = &g.members["a"];
    assert_eq!((a.epoch, a.assigned.clone()), (3, parts(&[0, 1, 2])));
    assert_eq!(a.classic.as_ref().unwrap().session_timeout_ms, 10_000);
    assert_eq!(owned_once(&g), 6);
    assert!(g.all_classic());
}

#[test]
fn upgrade_is_refused_with_kafkas_texts() {
    let t = topics();
    let e = from_classic(
        &classic_group("consumer"),
        &t,
        MigrationPolicy::Downgrade,
        0,
    );
    assert_eq!(
        e.err().unwrap().to_string(),
        "Cannot upgrade classic group g to consumer group because online upgrade is disabled."
    );
    let mut custom = classic_group("consumer");
    let mut snap = custom.snapshot();
    let mut bytes = snap.members[0].assignment.to_vec();
    bytes.truncate(bytes.len() - 4);
    bytes.extend_from_slice(&[0, 0, 0, 1, 9]);
    snap.members[0].assignment = Bytes::from(bytes);
    custom = Group::restore("g", snap, 0);
    let e = from_classic(&custom, &t, MigrationPolicy::Upgrade, 0);
    assert!(
        matches!(e, Err(GroupError::UpgradeCustomAssignor { .. })),
        "a custom assignor's user data would be lost"
    );
    let e = from_classic(&classic_group("connect"), &t, MigrationPolicy::Upgrade, 0);
    assert_eq!(
        e.err().unwrap().to_string(),
        "Cannot upgrade classic group g to consumer group because the group does not use the consumer embedded protocol."
    );
}

#[test]
fn mixed_group_reconciles_then_downgrades_when_the_consumer_member_leaves() {
    let t = topics();
    let mut groups = ConsumerGroups::default();
    groups.insert(
        from_classic(
            &classic_group("consumer"),
            &t,
            MigrationPolicy::Bidirectional,
            0,
        )
        .unwrap(),
    );
    // A consumer-protocol member joins: epoch 4, it waits for partitions held by a, b.
    let r = groups
        .heartbeat(
            1,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                member_epoch: 0,
                rebalance_timeout_ms: 30_000,
                subscribed_topic_names: Some(vec!["t".into()]),
                owned: Some(Assignment::new()),
                ..Default::default()
            },
        )
        .unwrap();
    let c = r.member_id.clone();
    assert_eq!(r.member_epoch, 4);
    assert_eq!(r.assignment, Some(Assignment::new()));
    let g = groups.get_mut_with_members("g").unwrap();
    // The classic members are told to rejoin.
    assert_eq!(
        g.classic_heartbeat(2, "a", None, 3),
        Err(GroupError::RebalanceInProgress)
    );
    assert!(matches!(
        g.classic_heartbeat(2, "a", None, 2),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert_eq!(
        g.classic_heartbeat(2, "zz", None, 3),
        Err(GroupError::UnknownMemberId)
    );
    // a is cooperative: it rejoins owning t-0..2, is told what it keeps at generation 3,
    // revokes the rest and rejoins again.
    let mut a_owned = parts(&[0, 1, 2]);
    assert_eq!(rejoin(g, 3, "a", &mut a_owned), 3);
    assert_eq!(a_owned.values().map(BTreeSet::len).sum::<usize>(), 2);
    assert_eq!(
        g.classic_heartbeat(4, "a", None, 3),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(rejoin(g, 5, "a", &mut a_owned), 4);
    assert_eq!(g.classic_heartbeat(6, "a", None, 4), Ok(()));
    // b is eager: it revoked everything before rejoining.
    let mut b_owned = Assignment::new();
    assert_eq!(rejoin(g, 7, "b", &mut b_owned), 4);
    assert_eq!(b_owned.values().map(BTreeSet::len).sum::<usize>(), 2);
    assert_eq!(g.classic_heartbeat(8, "b", None, 4), Ok(()));
    // c picks up the released partitions: 2 + 2 + 2, each held once.
    let r = groups
        .heartbeat(
            9,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                member_id: c.clone(),
                member_epoch: 4,
                rebalance_timeout_ms: -1,
                owned: Some(Assignment::new()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        r.assignment
            .unwrap()
            .values()
            .map(BTreeSet::len)
            .sum::<usize>(),
        2
    );
    let g = groups.get("g").unwrap();
    assert_eq!(owned_once(g), 6);
    assert_eq!(g.state_name(), "Stable");
    // c leaves: only classic members remain, the group goes back to classic.
    groups
        .heartbeat(
            10,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                member_id: c,
                member_epoch: LEAVE_EPOCH,
                ..Default::default()
            },
        )
        .unwrap();
    let g = groups.get("g").unwrap();
    let snap = to_classic(g, 10).expect("all classic");
    assert_eq!(snap.generation, g.epoch);
    assert_eq!(snap.protocol.as_deref(), Some("range"));
    assert_eq!(snap.members.len(), 2);
    assert_eq!(
        decode_assignment(&snap.members[0].assignment),
        Some(a_owned)
    );
    let mut classic = Group::restore("g", snap, 10);
    let gc = GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 1,
        max_session_timeout_ms: 100_000,
        member_id_seed: "s".into(),
    };
    classic.rebalance(10, &gc);
    assert_eq!(classic.state, GroupState::PreparingRebalance);
    assert_eq!(
        classic.heartbeat(11, "a", None, 5),
        Err(GroupError::RebalanceInProgress),
        "the classic members rejoin and the leader assigns again"
    );
}

#[test]
fn classic_members_join_sync_leave_and_expire_by_their_own_session() {
    let t = topics();
    let mut g = from_classic(
        &classic_group("consumer"),
        &t,
        MigrationPolicy::Bidirectional,
        0,
    )
    .unwrap();
    // A new dynamic classic member first learns its id (KIP-394).
    let j = g
        .classic_join(1, &cfg(), &t, classic_join("", &Assignment::new()))
        .unwrap();
    assert_eq!(j.error, Some(GroupError::MemberIdRequired));
    let mut owned = Assignment::new();
    let gen = rejoin(&mut g, 2, &j.member_id, &mut owned);
    assert_eq!(gen, 4, "a new member moves the group epoch");
    // Wrong protocol type or a protocol the others lack: refused.
    let mut bad = classic_join("x", &Assignment::new());
    bad.protocols = vec![("roundrobin".into(), Bytes::new())];
    assert!(matches!(
        g.classic_join(3, &cfg(), &t, bad),
        Err(GroupError::InconsistentGroupProtocol { .. })
    ));
    assert!(matches!(
        g.classic_sync(3, &sync(&j.member_id, gen + 1)),
        Err(GroupError::IllegalGeneration { .. })
    ));
    // Leave by member id.
    let before = g.epoch;
    assert_eq!(
        g.classic_leave(&t, &[(j.member_id.clone(), None)]),
        vec![Ok(())]
    );
    assert_eq!(g.epoch, before + 1);
    assert_eq!(
        g.classic_leave(&t, &[(j.member_id, None)]),
        vec![Err(GroupError::UnknownMemberId)]
    );
    // a and b stop heartbeating: their 10 s session, not the group's 45 s, expires them.
    assert!(g.expire(9_999, &t, &cfg()).is_empty());
    assert_eq!(g.expire(10_000, &t, &cfg()).len(), 2);
    assert!(g.members.is_empty());
}

#[test]
fn a_mixed_group_comes_back_from_its_records_with_its_classic_members() {
    let t = topics();
    let mut groups = ConsumerGroups::default();
    groups.insert(
        from_classic(
            &classic_group("consumer"),
            &t,
            MigrationPolicy::Bidirectional,
            0,
        )
        .unwrap(),
    );
    let records = groups.changes("g", &t);
    let mut replay = ConsumerGroupRecords::default();
    for (k, v) in &records {
        let key = decode_key(&encode_key(k)).unwrap();
        let value = v
            .as_ref()
            .map(|v| decode_value(&key, &encode_value(v)).unwrap());
        assert!(replay.apply(&key, value));
    }
    let mut back = ConsumerGroups::default();
    back.restore("g", replay, &t, &cfg(), 100);
    let before = &groups.get("g").unwrap().members["a"];
    let g = back.get_mut_with_members("g").unwrap();
    assert_eq!(g.members["a"].classic, before.classic);
    assert_eq!(g.members["a"].assigned, before.assigned);
    assert_eq!(g.classic_heartbeat(101, "a", None, 3), Ok(()));
    // Sessions restart at the load (b) or the last heartbeat (a), with the classic
    // members' own timeout (10 s), not the group's 45 s.
    assert!(g.expire(100 + 9_999, &t, &cfg()).is_empty());
    assert_eq!(g.expire(100 + 10_000, &t, &cfg()), vec!["b".to_string()]);
    assert_eq!(g.expire(101 + 10_000, &t, &cfg()), vec!["a".to_string()]);
}

#[test]
fn the_migration_policy_reads_kafkas_values() {
    let p = |s: &str| s.parse::<MigrationPolicy>().unwrap();
    assert!(p("bidirectional").upgrade() && p("BIDIRECTIONAL").downgrade());
    assert!(p("upgrade").upgrade() && !p("upgrade").downgrade());
    assert!(!p("downgrade").upgrade() && p("downgrade").downgrade());
    assert!(!p("disabled").upgrade() && !p("disabled").downgrade());
    assert!("sideways".parse::<MigrationPolicy>().is_err());
    assert_eq!(MigrationPolicy::default(), MigrationPolicy::Bidirectional);
}
