//! Committed offsets in memory, per group and topic-partition. The driver writes a
//! commit to `__consumer_offsets` before it calls [`OffsetStore::put`], so what is in
//! here is always durable.

use std::collections::{BTreeMap, HashMap};

use super::codec::OffsetValue;

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
