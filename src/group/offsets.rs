//! Committed offsets in memory, per group and topic-partition. The driver writes a
//! commit to `__consumer_offsets` before it calls [`OffsetStore::put`], so what is in
//! here is always durable.
//!
//! [`OffsetStore::expired`] is the `offsets.retention.minutes` decision, pure like the
//! state machine: the clock is an argument.

use std::collections::{BTreeMap, HashMap};

use super::codec::OffsetValue;
use super::coordinator::Coordinator;
use super::state::GroupState;

/// The offsets of one group that expired: (group, [(topic, partition)]).
pub type Expired = (String, Vec<(String, i32)>);

#[derive(Default)]
pub struct OffsetStore {
    groups: HashMap<String, BTreeMap<(String, i32), OffsetValue>>,
}

impl OffsetStore {
    pub fn put(&mut self, group: &str, topic: &str, partition: i32, v: OffsetValue) {
        self.groups
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), v);
    }

    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let removed = g.remove(&(topic.to_string(), partition)).is_some();
        if g.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn all(&self, group: &str) -> Vec<(&str, i32, &OffsetValue)> {
        self.groups
            .get(group)
            .map(|g| g.iter().map(|((t, p), v)| (t.as_str(), *p, v)).collect())
            .unwrap_or_default()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Offsets past `offsets.retention.minutes` (`retention_ms`) at `now`: those of a
    /// consumer group (it has a protocol type) expire `retention_ms` after the group
    /// became Empty, those of a standalone consumer `retention_ms` after their commit.
    /// Groups with members keep everything. Ordered by group id.
    pub fn expired(&self, sm: &Coordinator, now: i64, retention_ms: i64) -> Vec<Expired> {
        let mut ids = self.group_ids();
        ids.sort();
        ids.into_iter()
            .filter_map(|group| {
                let since = match sm.group(&group) {
                    Some(g) if g.state != GroupState::Empty => return None,
                    Some(g) if g.protocol_type.is_some() => Some(g.state_since),
                    _ => None,
                };
                let tps: Vec<(String, i32)> = self
                    .all(&group)
                    .into_iter()
                    .filter(|(_, _, v)| now - since.unwrap_or(v.commit_timestamp) >= retention_ms)
                    .map(|(t, p, _)| (t.to_string(), p))
                    .collect();
                (!tps.is_empty()).then_some((group, tps))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    #[test]
    fn last_write_wins_and_tombstones_remove() {
        let mut s = OffsetStore::default();
        s.put("g", "t", 0, v(1));
        s.put("g", "t", 0, v(5));
        s.put("g", "t", 1, v(2));
        assert_eq!(s.get("g", "t", 0).map(|v| v.offset), Some(5));
        assert!(s.remove("g", "t", 0));
        assert!(s.get("g", "t", 0).is_none());
        assert!(s.remove("g", "t", 1));
        assert!(!s.has_group("g"));
    }
}
