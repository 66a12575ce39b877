//! The server-side assignors: `uniform` and `range` (Kafka's UniformAssignor and
//! RangeAssignor names). Each maps (members with their subscribed topics, topic
//! partition counts, the previous target) to a new target per member.
//!
//! - `uniform`: every subscribed partition to exactly one subscribed member, member
//!   counts within one of each other where subscriptions allow, and sticky: a partition
//!   stays with its previous owner unless balance needs it elsewhere. Kafka's version
//!   has separate homogeneous/heterogeneous algorithms; this one is a single greedy
//!   pass plus moves, with the same guarantees (complete, sticky, balanced for
//!   homogeneous subscriptions).
//! - `range`: per topic, the subscribed members sorted by member id get contiguous
//!   ranges, the first `partitions % members` one more (not sticky, as Kafka's range
//!   is co-partitioning first).
//!
//! Dependencies: `mod.rs` types only; pure and deterministic.

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, Topics};

/// The assignor names Strata implements.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// One member as the assignor sees it.
pub struct AssignMember<'a> {
    pub topics: &'a BTreeSet<String>,
    pub previous: Option<&'a Assignment>,
}

pub fn assign(
    name: &str,
    members: &BTreeMap<String, AssignMember<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn range(
    members: &BTreeMap<String, AssignMember<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, meta) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        let n = meta.partitions.max(0) as usize;
        let (base, extra) = (n / subs.len(), n % subs.len());
        let mut p = 0;
        for (i, id) in subs.iter().enumerate() {
            let take = base + usize::from(i < extra);
            if take > 0 {
                let set: BTreeSet<i32> = (p..p + take).map(|x| x as i32).collect();
                out.get_mut(*id).map(|a| a.insert(topic.clone(), set));
            }
            p += take;
        }
    }
    out
}

fn uniform(
    members: &BTreeMap<String, AssignMember<'_>>,
    topics: &Topics,
) -> BTreeMap<String, Assignment> {
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut counts: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    // Pass 1: previous owners keep what they still subscribe to.
    for (id, m) in members {
        let Some(prev) = m.previous else { continue };
        for (t, ps) in prev {
            let Some(meta) = topics.get(t) else { continue };
            if !m.topics.contains(t) {
                continue;
            }
            for &p in ps {
                if p < meta.partitions && !owner.contains_key(&(t.clone(), p)) {
                    owner.insert((t.clone(), p), id.clone());
                    *counts.get_mut(id).expect("member counted") += 1;
                }
            }
        }
    }
    // Pass 2: every other partition to the least loaded subscriber (ties by id).
    for (t, meta) in topics {
        for p in 0..meta.partitions {
            if owner.contains_key(&(t.clone(), p)) {
                continue;
            }
            let best = members
                .iter()
                .filter(|(_, m)| m.topics.contains(t))
                .min_by_key(|(id, _)| (counts[id], (*id).clone()))
                .map(|(id, _)| id);
            if let Some(id) = best {
                owner.insert((t.clone(), p), id.clone());
                *counts.get_mut(id).expect("member counted") += 1;
            }
        }
    }
    // Pass 3: move partitions from the most to the least loaded member that can take
    // them until no move lowers the spread (bounded by the partition count).
    let total = owner.len();
    for _ in 0..total {
        // Take from the most loaded members first, so that each gives up only what
        // balance needs.
        let mut givers: Vec<&String> = members.keys().collect();
        givers.sort_by_key(|id| std::cmp::Reverse(counts[id]));
        let moved = givers.into_iter().find_map(|from| {
            let from_count = counts[from];
            owner
                .iter()
                .filter(|(_, o)| *o == from)
                .find_map(|((t, p), _)| {
                    members
                        .iter()
                        .filter(|(id, m)| *id != from && m.topics.contains(t))
                        .filter(|(id, _)| counts[id] + 1 < from_count)
                        .min_by_key(|(id, _)| (counts[id], (*id).clone()))
                        .map(|(to, _)| ((t.clone(), *p), from.clone(), to.clone()))
                })
        });
        let Some((key, from, to)) = moved else { break };
        *counts.get_mut(&from).expect("member counted") -= 1;
        *counts.get_mut(&to).expect("member counted") += 1;
        owner.insert(key, to);
    }
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((t, p), id) in owner {
        if let Some(a) = out.get_mut(&id) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}
