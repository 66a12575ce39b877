//! Kafka's throttled replica lists (KIP-73): the topic configs
//! `leader.replication.throttled.replicas` and `follower.replication.throttled.replicas`.
//!
//! A value is empty (nothing throttled), `*` (every replica of the topic), or a
//! comma-separated list of `partition:broker` entries. As in Kafka's `TopicConfigHandler`,
//! a broker reads the list for itself: partition `p` is throttled on broker `b` when the list
//! is `*` or names `p:b`. On the leader's side the list names the brokers that serve the
//! copies (the current replicas); on the follower's side the brokers that receive them.

use std::collections::BTreeSet;

/// A parsed throttled replica list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// Empty: no replica of the topic is throttled.
    #[default]
    None,
    /// `*`: every replica of the topic.
    All,
    /// `partition:broker` entries.
    Listed(BTreeSet<(i32, i32)>),
}

impl ThrottledReplicas {
    /// Parses a value; `Err` names the first entry that is not `partition:broker`.
    pub fn parse(raw: &str) -> Result<ThrottledReplicas, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(ThrottledReplicas::None);
        }
        if raw == "*" {
            return Ok(ThrottledReplicas::All);
        }
        let mut set = BTreeSet::new();
        for item in raw.split(',').map(str::trim) {
            let parsed = item
                .split_once(':')
                .and_then(|(p, b)| Some((digits(p)?, digits(b)?)));
            match parsed {
                Some(entry) => {
                    set.insert(entry);
                }
                None => return Err(format!("`{item}` is not partition:broker")),
            }
        }
        Ok(ThrottledReplicas::Listed(set))
    }

    /// Whether `partition`'s replica on `broker` is throttled.
    pub fn throttles(&self, partition: i32, broker: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Listed(set) => set.contains(&(partition, broker)),
        }
    }
}

/// A non-negative `i32` written in digits only, as Kafka's validator wants (`[0-9]+`).
fn digits(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_kafka_validates_them() {
        assert_eq!(
            ThrottledReplicas::parse("").unwrap(),
            ThrottledReplicas::None
        );
        assert_eq!(
            ThrottledReplicas::parse(" * ").unwrap(),
            ThrottledReplicas::All
        );
        let l = ThrottledReplicas::parse("0:1, 0:2,1:3").unwrap();
        assert!(l.throttles(0, 1) && l.throttles(0, 2) && l.throttles(1, 3));
        assert!(!l.throttles(1, 1) && !l.throttles(2, 3));
        assert!(ThrottledReplicas::All.throttles(7, 9));
        assert!(!ThrottledReplicas::None.throttles(0, 0));
        for bad in ["0-1", "0:", ":1", "a:1", "0:1,", "-1:2", "0:1:2", "*,0:1"] {
            assert!(ThrottledReplicas::parse(bad).is_err(), "{bad}");
        }
    }
}
