//! The plan of `strata cluster rebalance`: which partitions move where so that every broker
//! holds about as many replicas and leads about as many partitions as the others, without
//! putting two replicas of a partition in one rack where the cluster has racks to spare.
//!
//! Pure: it sees brokers (with racks) and the current replicas, and returns new replica lists.
//! The first replica of each list is the preferred leader; the command moves leadership there
//! once the moves are done (preferred leader election), as Kafka's tools do.

use std::collections::{BTreeMap, BTreeSet};

/// A partition and its replicas, the first being the preferred leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// One partition whose replicas (or their order) the plan changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

/// Moves replicas from the most to the least loaded brokers until the counts differ by at most
/// one, then picks preferred leaders so that leaderships differ by at most one where the
/// replicas allow. `brokers` maps id -> rack. Replicas on brokers that are not in `brokers`
/// (gone) are moved too.
pub fn plan(brokers: &BTreeMap<i32, Option<String>>, current: &[Placement]) -> Vec<Move> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let mut next: Vec<Vec<i32>> = current.iter().map(|p| p.replicas.clone()).collect();
    let racks = brokers.values().collect::<BTreeSet<_>>().len();
    spread_replicas(brokers, racks, &mut next);
    pick_leaders(brokers, &mut next);
    current
        .iter()
        .zip(next)
        .filter(|(p, to)| p.replicas != *to)
        .map(|(p, to)| Move {
            topic: p.topic.clone(),
            partition: p.partition,
            from: p.replicas.clone(),
            to,
        })
        .collect()
}

fn counts(brokers: &BTreeMap<i32, Option<String>>, next: &[Vec<i32>]) -> BTreeMap<i32, usize> {
    let mut c: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    for r in next.iter().flatten() {
        *c.entry(*r).or_default() += 1;
    }
    c
}

/// Distinct racks among `replicas`.
fn rack_spread(brokers: &BTreeMap<i32, Option<String>>, replicas: &[i32]) -> usize {
    replicas
        .iter()
        .map(|r| brokers.get(r).cloned().flatten())
        .collect::<BTreeSet<_>>()
        .len()
}

fn spread_replicas(brokers: &BTreeMap<i32, Option<String>>, racks: usize, next: &mut [Vec<i32>]) {
    // Each step moves one replica and lowers the spread, so the loop ends; the bound is a guard.
    let bound = next.iter().map(Vec::len).sum::<usize>() * 2 + 16;
    for _ in 0..bound {
        let load = counts(brokers, next);
        // A replica on a broker that is gone counts as the heaviest load.
        let heaviest = load
            .iter()
            .max_by_key(|(b, n)| (!brokers.contains_key(b), **n, std::cmp::Reverse(**b)))
            .map(|(b, n)| (*b, *n));
        let lightest = load
            .iter()
            .filter(|(b, _)| brokers.contains_key(b))
            .min_by_key(|(b, n)| (**n, **b))
            .map(|(b, n)| (*b, *n));
        let (Some((from, high)), Some((to, low))) = (heaviest, lightest) else {
            return;
        };
        if brokers.contains_key(&from) && high <= low + 1 {
            return;
        }
        // A partition on `from` but not on `to` whose rack spread the move does not lower
        // (below what the cluster's racks allow).
        let pick = next.iter().position(|replicas| {
            if !replicas.contains(&from) || replicas.contains(&to) {
                return false;
            }
            let moved: Vec<i32> = replicas
                .iter()
                .map(|r| if *r == from { to } else { *r })
                .collect();
            let before = rack_spread(brokers, replicas);
            let after = rack_spread(brokers, &moved);
            after >= before || after >= racks.min(replicas.len())
        });
        let Some(i) = pick else { return };
        for r in next[i].iter_mut() {
            if *r == from {
                *r = to;
            }
        }
    }
}

/// Reorders each partition's replicas so its first (the preferred leader) is the replica that
/// leads the fewest partitions so far, keeping the current first on ties.
fn pick_leaders(brokers: &BTreeMap<i32, Option<String>>, next: &mut [Vec<i32>]) {
    let total = next.len();
    let fair = total.div_ceil(brokers.len().max(1));
    let mut leads: BTreeMap<i32, usize> = BTreeMap::new();
    // First pass: keep every current preferred leader that is not over its fair share.
    let mut open = Vec::new();
    for (i, replicas) in next.iter().enumerate() {
        let first = replicas[0];
        let n = leads.entry(first).or_default();
        if *n < fair {
            *n += 1;
        } else {
            open.push(i);
        }
    }
    for i in open {
        let replicas = &mut next[i];
        let best = replicas
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|(pos, r)| (leads.get(r).copied().unwrap_or(0), *pos))
            .map(|(pos, _)| pos)
            .unwrap_or(0);
        let leader = replicas.remove(best);
        replicas.insert(0, leader);
        *leads.entry(leader).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(spec: &[(i32, Option<&str>)]) -> BTreeMap<i32, Option<String>> {
        spec.iter()
            .map(|(b, r)| (*b, r.map(str::to_string)))
            .collect()
    }

    fn parts(replicas: &[&[i32]]) -> Vec<Placement> {
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| Placement {
                topic: "t".into(),
                partition: i as i32,
                replicas: r.to_vec(),
            })
            .collect()
    }

    fn apply(current: &[Placement], moves: &[Move]) -> Vec<Vec<i32>> {
        current
            .iter()
            .map(|p| {
                moves
                    .iter()
                    .find(|m| m.partition == p.partition)
                    .map_or(p.replicas.clone(), |m| m.to.clone())
            })
            .collect()
    }

    #[test]
    fn a_new_broker_gets_its_share_of_replicas_and_leaders() {
        let b = brokers(&[(1, None), (2, None), (3, None), (4, None)]);
        let current = parts(&[&[1, 2], &[2, 3], &[3, 1], &[1, 2], &[2, 3], &[3, 1]]);
        let moves = plan(&b, &current);
        let after = apply(&current, &moves);
        let load = counts(&b, &after);
        assert!(load.values().all(|n| *n == 3), "{load:?}");
        let mut leads: BTreeMap<i32, usize> = BTreeMap::new();
        for r in &after {
            *leads.entry(r[0]).or_default() += 1;
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 2, "distinct replicas: {r:?}");
        }
        assert!(leads.values().all(|n| *n <= 2), "{leads:?}");
        assert!(leads.contains_key(&4), "{leads:?}");
        // Balanced already: nothing to do.
        assert!(plan(&b, &parts(&[&[1, 2], &[3, 4]])).is_empty());
    }

    #[test]
    fn racks_stay_spread_and_gone_brokers_are_emptied() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        // Broker 9 is gone; every partition spans both racks.
        let current = parts(&[&[1, 3], &[9, 3], &[1, 4], &[1, 3]]);
        let after = apply(&current, &plan(&b, &current));
        for r in &after {
            assert!(!r.contains(&9), "{r:?}");
            let racks: BTreeSet<_> = r.iter().map(|x| b[x].clone()).collect();
            assert_eq!(racks.len(), 2, "{r:?} lost its rack spread");
        }
        let load = counts(&b, &after);
        assert!(load.values().all(|n| *n == 2), "{load:?}");
    }
}
