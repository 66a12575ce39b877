//! Scripted events against the consumer group state machine: joins, rebalances with
//! revocation before reassignment, leaves, session expiry, regex subscriptions,
//! fencing, assignor choice. No sockets, no sleeps: the clock is a number.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn cfg() -> ConsumerConfig {
    ConsumerConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        assignors: vec!["uniform".into(), "range".into()],
        migration: Default::default(),
    }
}

fn topics(list: &[(&str, i32)]) -> Topics {
    list.iter()
        .map(|(t, n)| {
            (
                t.to_string(),
                TopicMeta {
                    id: uuid::Uuid::new_v4(),
                    partitions: *n,
                },
            )
        })
        .collect()
}

fn join(id: &str, names: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(names.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Assignment) -> Heartbeat {
    Heartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Default::default()
    }
}

/// A simulated client: what it owns and its epoch, updated from answers.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn apply(&mut self, r: HeartbeatReply) {
        self.id = r.member_id;
        self.epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            self.owned = a;
        }
    }
}

fn run(g: &mut ConsumerGroups, now: i64, t: &Topics, c: &mut Client) {
    let r = g
        .heartbeat(now, &cfg(), t, "g", beat(&c.id, c.epoch, &c.owned))
        .expect("heartbeat");
    c.apply(r);
}

fn new_client(g: &mut ConsumerGroups, now: i64, t: &Topics, id: &str, names: &[&str]) -> Client {
    let r = g
        .heartbeat(now, &cfg(), t, "g", join(id, names))
        .expect("join");
    let mut c = Client {
        id: String::new(),
        epoch: 0,
        owned: Assignment::new(),
    };
    c.apply(r);
    c
}

/// No partition is owned by two clients at once, at any point of the script.
fn assert_disjoint(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, p) in partitions(&c.owned) {
            assert!(seen.insert((t.to_string(), p)), "{t}-{p} owned twice");
        }
    }
}

fn total(clients: &[&Client]) -> usize {
    clients.iter().map(|c| count(&c.owned)).sum()
}

#[test]
fn one_member_gets_every_partition_at_epoch_one() {
    let t = topics(&[("a", 6)]);
    let mut g = ConsumerGroups::default();
    let c = new_client(&mut g, 0, &t, "m1", &["a"]);
    assert_eq!(c.epoch, 1);
    assert_eq!(count(&c.owned), 6);
    assert_eq!(g.get("g").unwrap().state_name(), "Stable");
}

#[test]
fn join_revokes_before_reassigning() {
    let t = topics(&[("a", 6)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &["a"]);
    let mut b = new_client(&mut g, 10, &t, "b", &["a"]);
    // b's target is 3 partitions, all still held by a: b gets nothing yet.
    assert_eq!(count(&b.owned), 0);
    assert_eq!(b.epoch, 2);
    assert_disjoint(&[&a, &b]);
    // a is asked to revoke 3; it stays at epoch 1 until it acknowledges.
    run(&mut g, 20, &t, &mut a);
    assert_eq!(count(&a.owned), 3);
    assert_eq!(a.epoch, 1);
    assert_eq!(g.get("g").unwrap().state_name(), "Reconciling");
    // a's next heartbeat (owning 3) acknowledges the revocation.
    run(&mut g, 30, &t, &mut a);
    assert_eq!(a.epoch, 2);
    run(&mut g, 40, &t, &mut b);
    assert_eq!(count(&b.owned), 3);
    assert_disjoint(&[&a, &b]);
    assert_eq!(total(&[&a, &b]), 6);
    assert_eq!(g.get("g").unwrap().state_name(), "Stable");
}

#[test]
fn unacknowledged_revocation_keeps_partitions_from_the_new_owner() {
    let t = topics(&[("a", 4)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &["a"]);
    let mut b = new_client(&mut g, 10, &t, "b", &["a"]);
    // a heartbeats without owned partitions (no acknowledgement): nothing moves.
    let r = g
        .heartbeat(
            20,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                owned: None,
                ..beat("a", 1, &a.owned)
            },
        )
        .unwrap();
    a.apply(r);
    // The answer told a to drop 2, but a has not acknowledged yet; b still waits.
    run(&mut g, 30, &t, &mut b);
    assert_eq!(count(&b.owned), 0);
    let gm = g.get("g").unwrap();
    assert_eq!(gm.members["a"].state, MemberState::UnrevokedPartitions);
}

#[test]
fn leave_gives_partitions_to_the_others() {
    let t = topics(&[("a", 6)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &["a"]);
    let mut b = new_client(&mut g, 0, &t, "b", &["a"]);
    for now in [10, 20, 30] {
        run(&mut g, now, &t, &mut a);
        run(&mut g, now, &t, &mut b);
    }
    assert_eq!((count(&a.owned), count(&b.owned)), (3, 3));
    let r = g
        .heartbeat(40, &cfg(), &t, "g", beat("b", LEAVE_EPOCH, &b.owned))
        .unwrap();
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    run(&mut g, 50, &t, &mut a);
    assert_eq!(count(&a.owned), 6);
    assert_eq!(g.get("g").unwrap().members.len(), 1);
}

#[test]
fn session_expiry_removes_the_member() {
    let t = topics(&[("a", 2)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &["a"]);
    let _b = new_client(&mut g, 0, &t, "b", &["a"]);
    run(&mut g, 10, &t, &mut a);
    // a keeps heartbeating, b goes silent.
    run(&mut g, 40_000, &t, &mut a);
    assert!(g.tick(44_999, &t, &cfg()).is_empty());
    let gone = g.tick(45_000, &t, &cfg());
    assert_eq!(gone, vec![("g".to_string(), "b".to_string())]);
    run(&mut g, 45_010, &t, &mut a);
    assert_eq!(count(&a.owned), 2);
    // b's next heartbeat is refused: it must rejoin.
    let err = g.heartbeat(45_020, &cfg(), &t, "g", beat("b", 1, &Assignment::new()));
    assert_eq!(err, Err(GroupError::UnknownMemberId));
}

#[test]
fn revocation_not_acknowledged_within_rebalance_timeout_removes_the_member() {
    let t = topics(&[("a", 2)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &["a"]);
    let _b = new_client(&mut g, 0, &t, "b", &["a"]);
    run(&mut g, 10, &t, &mut a); // a is asked to revoke one partition
    let gone = g.tick(30_010, &t, &cfg());
    assert!(gone.contains(&("g".to_string(), "a".to_string())));
}

#[test]
fn fencing() {
    let t = topics(&[("a", 2)]);
    let mut g = ConsumerGroups::default();
    let a = new_client(&mut g, 0, &t, "a", &["a"]);
    // Ahead of the coordinator: fenced.
    let e = g.heartbeat(1, &cfg(), &t, "g", beat("a", a.epoch + 1, &a.owned));
    assert!(matches!(e, Err(GroupError::FencedMemberEpoch { .. })));
    // Unknown member id.
    let e = g.heartbeat(1, &cfg(), &t, "g", beat("zz", 1, &a.owned));
    assert_eq!(e, Err(GroupError::UnknownMemberId));
    // Epoch 0 with a known id: the member rejoins afresh (it dropped its partitions).
    let r = g.heartbeat(1, &cfg(), &t, "g", join("a", &["a"]));
    assert!(r.is_ok());
    // Commits: current epoch accepted, older stale, newer fenced.
    let epoch = g.get("g").unwrap().members["a"].epoch;
    assert_eq!(g.validate_commit("g", "a", epoch), Ok(true));
    assert!(matches!(
        g.validate_commit("g", "a", epoch - 1),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
    assert!(matches!(
        g.validate_commit("g", "a", epoch + 1),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    assert_eq!(
        g.validate_commit("g", "nobody", epoch),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn regex_subscription_follows_topic_creation_and_deletion() {
    let mut t = topics(&[("orders-eu", 2), ("payments", 2)]);
    let mut g = ConsumerGroups::default();
    let mut a = new_client(&mut g, 0, &t, "a", &[]);
    let r = g
        .heartbeat(
            1,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                subscribed_topic_regex: Some("orders-.*".into()),
                ..beat("a", a.epoch, &a.owned)
            },
        )
        .unwrap();
    a.apply(r);
    run(&mut g, 2, &t, &mut a);
    assert_eq!(a.owned.keys().collect::<Vec<_>>(), vec!["orders-eu"]);
    t.insert(
        "orders-us".into(),
        TopicMeta {
            id: uuid::Uuid::new_v4(),
            partitions: 3,
        },
    );
    run(&mut g, 3, &t, &mut a);
    assert_eq!(count(&a.owned), 5);
    t.remove("orders-eu");
    run(&mut g, 4, &t, &mut a); // revoke orders-eu
    run(&mut g, 5, &t, &mut a);
    assert_eq!(a.owned.keys().collect::<Vec<_>>(), vec!["orders-us"]);
    // Whole-name match: "xorders-1" does not match "orders-.*".
    t.insert(
        "xorders-1".into(),
        TopicMeta {
            id: uuid::Uuid::new_v4(),
            partitions: 1,
        },
    );
    run(&mut g, 6, &t, &mut a);
    assert_eq!(count(&a.owned), 3);
    let bad = g.heartbeat(
        7,
        &cfg(),
        &t,
        "g",
        Heartbeat {
            subscribed_topic_regex: Some("(".into()),
            ..beat("a", a.epoch, &a.owned)
        },
    );
    assert!(matches!(bad, Err(GroupError::InvalidRegex { .. })));
}

#[test]
fn assignor_choice_and_unknown_assignor() {
    let t = topics(&[("a", 4), ("b", 4)]);
    let mut g = ConsumerGroups::default();
    let e = g.heartbeat(
        0,
        &cfg(),
        &t,
        "g",
        Heartbeat {
            server_assignor: Some("sticky".into()),
            ..join("x", &["a"])
        },
    );
    assert!(matches!(e, Err(GroupError::UnsupportedAssignor { .. })));
    let _ = g
        .heartbeat(
            0,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                server_assignor: Some("range".into()),
                ..join("m1", &["a", "b"])
            },
        )
        .unwrap();
    let _ = g
        .heartbeat(0, &cfg(), &t, "g", join("m2", &["a", "b"]))
        .unwrap();
    let grp = g.get("g").unwrap();
    assert_eq!(grp.assignor, "range");
    // Range: per topic, contiguous ranges by member id.
    let want: BTreeSet<i32> = [0, 1].into();
    assert_eq!(grp.target["m1"]["a"], want);
    assert_eq!(grp.target["m1"]["b"], want);
}

#[test]
fn uniform_is_balanced_and_sticky() {
    let t = topics(&[("a", 7), ("b", 5)]);
    let mut g = ConsumerGroups::default();
    let mut cs: Vec<Client> = (0..3)
        .map(|i| new_client(&mut g, 0, &t, &format!("m{i}"), &["a", "b"]))
        .collect();
    for now in 1..5 {
        for c in cs.iter_mut() {
            run(&mut g, now, &t, c);
        }
    }
    let counts: Vec<usize> = cs.iter().map(|c| count(&c.owned)).collect();
    assert_eq!(counts, vec![4, 4, 4]);
    let before: BTreeMap<String, Assignment> =
        cs.iter().map(|c| (c.id.clone(), c.owned.clone())).collect();
    // A fourth member: each of the others gives up exactly one partition.
    let mut d = new_client(&mut g, 10, &t, "m3", &["a", "b"]);
    for now in 11..15 {
        for c in cs.iter_mut() {
            run(&mut g, now, &t, c);
        }
        run(&mut g, now, &t, &mut d);
        let all: Vec<&Client> = cs.iter().chain([&d]).collect();
        assert_disjoint(&all);
    }
    for c in &cs {
        assert_eq!(count(&c.owned), 3);
        assert_eq!(count(&minus(&before[&c.id], &c.owned)), 1);
    }
    assert_eq!(count(&d.owned), 3);
}

#[test]
fn static_member_leaves_and_returns_without_rebalance() {
    let t = topics(&[("a", 2)]);
    let mut g = ConsumerGroups::default();
    let r = g
        .heartbeat(
            0,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                instance_id: Some("i1".into()),
                ..join("s1", &["a"])
            },
        )
        .unwrap();
    let epoch = g.get("g").unwrap().epoch;
    let _ = g
        .heartbeat(
            1,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                instance_id: Some("i1".into()),
                ..beat("s1", LEAVE_STATIC_EPOCH, r.assignment.as_ref().unwrap())
            },
        )
        .unwrap();
    // Another member with the same instance id while s1 is active would be refused;
    // after the -2 leave it takes s1's place and assignment.
    let r2 = g
        .heartbeat(
            2,
            &cfg(),
            &t,
            "g",
            Heartbeat {
                instance_id: Some("i1".into()),
                ..join("s2", &["a"])
            },
        )
        .unwrap();
    assert_eq!(count(r2.assignment.as_ref().unwrap()), 2);
    assert_eq!(g.get("g").unwrap().epoch, epoch);
    let e = g.heartbeat(
        3,
        &cfg(),
        &t,
        "g",
        Heartbeat {
            instance_id: Some("i1".into()),
            ..join("s3", &["a"])
        },
    );
    assert!(matches!(e, Err(GroupError::UnreleasedInstanceId { .. })));
}
