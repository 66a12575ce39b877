//! Scripted tests of the coordinator state machine: events at chosen instants, no
//! sockets, no sleeps.

use bytes::Bytes;

use super::codec::OffsetValue;
use super::coordinator::{Coordinator, Event};
use super::offsets::OffsetStore;
use super::state::{Action, GroupConfig, GroupState, JoinRequest, JoinResponse, SyncRequest};
use super::GroupError;

const G: &str = "g";

fn coordinator() -> Coordinator {
    Coordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 3000,
        min_session_timeout_ms: 6000,
        max_session_timeout_ms: 1_800_000,
        member_id_seed: "t".into(),
    })
}

fn join_req(member: &str, instance: Option<&str>, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn joins(actions: &[Action]) -> Vec<(u64, JoinResponse)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Join(id, r) => Some((*id, r.clone())),
            _ => None,
        })
        .collect()
}

fn syncs(actions: &[Action]) -> Vec<(u64, Result<Bytes, GroupError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Sync(id, r) => Some((*id, r.clone())),
            _ => None,
        })
        .collect()
}

/// KIP-394 handshake: returns the member id given out.
fn member_id(c: &mut Coordinator, now: i64, reply: u64) -> String {
    let a = c.on_event(now, G, Event::Join(reply, join_req("", None, &["range"])));
    let j = joins(&a);
    assert_eq!(j[0].1.error, Some(GroupError::MemberIdRequired));
    j[0].1.member_id.clone()
}

fn sync_req(member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        member_id: member.into(),
        instance_id: None,
        generation,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

/// Two members form generation 1 after the initial delay; returns (leader, follower).
fn stable_pair(c: &mut Coordinator) -> (String, String) {
    let a = member_id(c, 0, 1);
    let b = member_id(c, 0, 2);
    assert!(c
        .on_event(10, G, Event::Join(3, join_req(&a, None, &["range"])))
        .is_empty());
    assert!(c
        .on_event(20, G, Event::Join(4, join_req(&b, None, &["range"])))
        .is_empty());
    assert_eq!(
        c.next_deadline(),
        Some(3010),
        "the initial delay runs from the first join"
    );
    let done = c.on_event(3010, G, Event::Tick);
    let j = joins(&done);
    assert_eq!(j.len(), 2);
    let leader = j[0].1.leader.clone();
    assert!(j
        .iter()
        .all(|(_, r)| r.generation == 1 && r.protocol.as_deref() == Some("range")));
    let follower = if leader == a { b } else { a };
    let members: Vec<_> = j
        .iter()
        .find(|(_, r)| r.member_id == leader)
        .map(|(_, r)| r.members.len())
        .into_iter()
        .collect();
    assert_eq!(members, vec![2], "only the leader gets the member list");
    assert!(
        c.on_event(3020, G, Event::Sync(5, sync_req(&follower, 1, vec![])))
            .is_empty(),
        "follower waits for the leader"
    );
    let asg = vec![
        (leader.clone(), Bytes::from_static(b"L")),
        (follower.clone(), Bytes::from_static(b"F")),
    ];
    let done = c.on_event(3030, G, Event::Sync(6, sync_req(&leader, 1, asg)));
    let s = syncs(&done);
    assert!(s.contains(&(5, Ok(Bytes::from_static(b"F")))));
    assert!(s.contains(&(6, Ok(Bytes::from_static(b"L")))));
    assert!(done.contains(&Action::Persist(G.into())));
    assert_eq!(c.group(G).map(|g| g.state), Some(GroupState::Stable));
    (leader, follower)
}

#[test]
fn first_join_completes_after_exactly_the_initial_delay() {
    let mut c = coordinator();
    let id = member_id(&mut c, 0, 1);
    assert!(c
        .on_event(100, G, Event::Join(2, join_req(&id, None, &["range"])))
        .is_empty());
    assert!(c.on_event(3099, G, Event::Tick).is_empty());
    // A second member joining late does not extend the delay.
    let other = member_id(&mut c, 3000, 3);
    assert!(c
        .on_event(3050, G, Event::Join(4, join_req(&other, None, &["range"])))
        .is_empty());
    let j = joins(&c.on_event(3100, G, Event::Tick));
    assert_eq!(j.len(), 2);
    assert_eq!(j[0].1.generation, 1);
}

#[test]
fn two_members_form_a_stable_group_and_heartbeat() {
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    assert_eq!(c.heartbeat(4000, G, &follower, None, 1), Ok(()));
    assert_eq!(
        c.heartbeat(4000, G, &leader, None, 0),
        Err(GroupError::IllegalGeneration {
            generation: 0,
            current: 1
        })
    );
    assert_eq!(
        c.heartbeat(4000, G, "nobody", None, 1),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn leave_triggers_rebalance_that_completes_when_all_rejoin() {
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    let (results, _) = c.leave(5000, G, &[(follower.clone(), None)]).unwrap();
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(
        c.heartbeat(5001, G, &leader, None, 1),
        Err(GroupError::RebalanceInProgress)
    );
    // The remaining member rejoins: all known members joined, no initial delay.
    let j = joins(&c.on_event(5002, G, Event::Join(7, join_req(&leader, None, &["range"]))));
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].1.generation, 2);
    assert_eq!(j[0].1.members.len(), 1);
}

#[test]
fn silent_member_expires_and_the_rest_rebalance() {
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    assert_eq!(c.heartbeat(10_000, G, &leader, None, 1), Ok(()));
    // The group became Stable at 3030, which restarts every session: 10 s ends at 13030.
    assert!(c.on_event(13_029, G, Event::Tick).is_empty());
    c.on_event(13_030, G, Event::Tick);
    assert_eq!(
        c.group(G).map(|g| g.state),
        Some(GroupState::PreparingRebalance)
    );
    assert!(c
        .group(G)
        .is_some_and(|g| !g.members.contains_key(&follower)));
}

#[test]
fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    // The leader rejoins (e.g. metadata change): a rebalance starts.
    assert!(
        joins(&c.on_event(4000, G, Event::Join(8, join_req(&leader, None, &["range"])))).is_empty()
    );
    // The follower keeps heartbeating but never rejoins within the 30 s rebalance timeout.
    for t in (5000..34_000).step_by(3000) {
        assert_eq!(
            c.heartbeat(t, G, &follower, None, 1),
            Err(GroupError::RebalanceInProgress)
        );
    }
    let j = joins(&c.on_event(34_000, G, Event::Tick));
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].1.generation, 2);
    assert_eq!(
        c.heartbeat(34_001, G, &follower, None, 2),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn sync_errors() {
    let mut c = coordinator();
    let (leader, _) = stable_pair(&mut c);
    let s = syncs(&c.on_event(4000, G, Event::Sync(9, sync_req(&leader, 7, vec![]))));
    assert_eq!(
        s[0].1,
        Err(GroupError::IllegalGeneration {
            generation: 7,
            current: 1
        })
    );
    let s = syncs(&c.on_event(4000, G, Event::Sync(10, sync_req("x", 1, vec![]))));
    assert_eq!(s[0].1, Err(GroupError::UnknownMemberId));
    // Stable: a late sync gets the stored assignment at once.
    let s = syncs(&c.on_event(4000, G, Event::Sync(11, sync_req(&leader, 1, vec![]))));
    assert_eq!(s[0].1, Ok(Bytes::from_static(b"L")));
}

#[test]
fn a_new_member_moves_completing_syncs_to_rebalance_in_progress() {
    let mut c = coordinator();
    let a = member_id(&mut c, 0, 1);
    c.on_event(0, G, Event::Join(2, join_req(&a, None, &["range"])));
    let j = joins(&c.on_event(3000, G, Event::Tick));
    assert_eq!(j[0].1.generation, 1);
    // a is leader but has not synced; it parks nothing. b arrives.
    let b = member_id(&mut c, 3100, 3);
    let out = c.on_event(3200, G, Event::Join(4, join_req(&b, None, &["range"])));
    assert!(out.is_empty());
    assert_eq!(
        c.group(G).map(|g| g.state),
        Some(GroupState::PreparingRebalance)
    );
    let s = syncs(&c.on_event(3300, G, Event::Sync(5, sync_req(&a, 1, vec![]))));
    assert_eq!(s[0].1, Err(GroupError::RebalanceInProgress));
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut c = coordinator();
    stable_pair(&mut c);
    let mut req = join_req("", None, &["roundrobin"]);
    req.require_known_member_id = false;
    let j = joins(&c.on_event(4000, G, Event::Join(20, req)));
    assert!(matches!(
        j[0].1.error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
}

#[test]
fn protocol_selection_follows_votes() {
    let mut c = coordinator();
    let a = member_id(&mut c, 0, 1);
    let b = member_id(&mut c, 0, 2);
    c.on_event(
        0,
        G,
        Event::Join(3, join_req(&a, None, &["cooperative-sticky", "range"])),
    );
    c.on_event(
        0,
        G,
        Event::Join(4, join_req(&b, None, &["cooperative-sticky", "range"])),
    );
    let j = joins(&c.on_event(3000, G, Event::Tick));
    assert!(j
        .iter()
        .all(|(_, r)| r.protocol.as_deref() == Some("cooperative-sticky")));
}

#[test]
fn session_timeout_bounds() {
    let mut c = coordinator();
    let mut req = join_req("", None, &["range"]);
    req.session_timeout_ms = 10;
    let j = joins(&c.on_event(0, G, Event::Join(1, req)));
    assert!(matches!(
        j[0].1.error,
        Some(GroupError::InvalidSessionTimeout { .. })
    ));
}

/// KIP-345: a restarted static member takes its old place with no rebalance.
#[test]
fn static_member_restart_keeps_assignment_without_rebalance() {
    let mut c = coordinator();
    c.on_event(0, G, Event::Join(1, join_req("", Some("i1"), &["range"])));
    c.on_event(0, G, Event::Join(2, join_req("", Some("i2"), &["range"])));
    let j = joins(&c.on_event(3000, G, Event::Tick));
    let leader = j[0].1.leader.clone();
    let old_follower = j
        .iter()
        .map(|(_, r)| r.member_id.clone())
        .find(|m| *m != leader)
        .unwrap_or_default();
    let asg = j
        .iter()
        .map(|(_, r)| (r.member_id.clone(), Bytes::from(r.member_id.clone())))
        .collect();
    c.on_event(3010, G, Event::Sync(3, sync_req(&leader, 1, asg)));
    assert_eq!(c.group(G).map(|g| g.state), Some(GroupState::Stable));

    // The follower restarts: empty member id, same instance id.
    let instance = c
        .group(G)
        .and_then(|g| g.members.get(&old_follower))
        .and_then(|m| m.instance_id.clone());
    let out = c.on_event(
        5000,
        G,
        Event::Join(4, join_req("", instance.as_deref(), &["range"])),
    );
    let j = joins(&out);
    assert_eq!(j.len(), 1);
    let resp = &j[0].1;
    assert_eq!(resp.error, None);
    assert_eq!(resp.generation, 1, "no new generation");
    assert_ne!(resp.member_id, old_follower);
    assert!(out.contains(&Action::Persist(G.into())));
    assert_eq!(c.group(G).map(|g| g.state), Some(GroupState::Stable));
    let s = syncs(&c.on_event(
        5010,
        G,
        Event::Sync(5, sync_req(&resp.member_id, 1, vec![])),
    ));
    assert_eq!(
        s[0].1,
        Ok(Bytes::from(old_follower.clone())),
        "it gets its old assignment back"
    );
    // The leader saw nothing.
    assert_eq!(c.heartbeat(5020, G, &leader, None, 1), Ok(()));
    // The old incarnation is fenced.
    assert_eq!(
        c.heartbeat(5030, G, &old_follower, instance.as_deref(), 1),
        Err(GroupError::FencedInstanceId {
            instance: instance.clone().unwrap_or_default()
        })
    );
}

#[test]
fn simple_commits_only_to_empty_groups() {
    let mut c = coordinator();
    assert_eq!(c.validate_commit("new", "", None, -1), Ok(()));
    let (leader, _) = stable_pair(&mut c);
    assert_eq!(
        c.validate_commit(G, "", None, -1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(c.validate_commit(G, &leader, None, 1), Ok(()));
    assert!(matches!(
        c.validate_commit(G, &leader, None, 0),
        Err(GroupError::IllegalGeneration { .. })
    ));
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    let (_, actions) = c
        .leave(6000, G, &[(leader, None), (follower, None)])
        .unwrap();
    assert!(actions.contains(&Action::Persist(G.into())));
    assert_eq!(c.group(G).map(|g| g.state), Some(GroupState::Empty));
    assert_eq!(c.group(G).map(|g| g.generation), Some(2));
}

fn committed_at(offset: i64, commit_timestamp: i64) -> OffsetValue {
    OffsetValue {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp,
    }
}

#[test]
fn offsets_expire_after_the_retention_and_not_before() {
    const R: i64 = 60_000; // offsets.retention.minutes = 1
    let mut c = coordinator();
    let (leader, follower) = stable_pair(&mut c);
    let mut store = OffsetStore::default();
    store.put(G, "t", 0, committed_at(5, 3030));
    store.put(G, "t", 1, committed_at(6, 3030));
    // A standalone consumer (no group protocol): its offsets age from each commit.
    c.group_or_create("solo", 1000);
    store.put("solo", "t", 0, committed_at(7, 1000));
    store.put("solo", "t", 1, committed_at(8, 2000));

    // A group with members keeps its offsets however old they are.
    let late = store.expired(&c, 100 * R, R);
    assert!(late.iter().all(|(g, _)| g != G), "{late:?}");

    assert!(store.expired(&c, 1000 + R - 1, R).is_empty());
    assert_eq!(
        store.expired(&c, 1000 + R, R),
        vec![("solo".to_string(), vec![("t".to_string(), 0)])]
    );

    // The group becomes Empty at 6000: its offsets expire R later, all at once,
    // whatever their commit times.
    c.leave(6000, G, &[(leader, None), (follower, None)])
        .unwrap();
    assert_eq!(c.group(G).map(|g| g.state), Some(GroupState::Empty));
    let before = store.expired(&c, 6000 + R - 1, R);
    assert!(before.iter().all(|(g, _)| g != G), "{before:?}");
    let after = store.expired(&c, 6000 + R, R);
    assert_eq!(
        after,
        vec![
            (
                G.to_string(),
                vec![("t".to_string(), 0), ("t".to_string(), 1)]
            ),
            (
                "solo".to_string(),
                vec![("t".to_string(), 0), ("t".to_string(), 1)]
            ),
        ]
    );
}
