//! Fetch from the closest replica (KIP-392): which replica a consumer should read from.
//!
//! Kafka's `RackAwareReplicaSelector`, as `replica.selector.class` names it: a consumer that
//! sends its `client.rack` (Fetch v11+) and is not in the leader's rack is pointed at a replica
//! in its rack, if one is in sync, alive and has the records it asks for. The leader answers such
//! a fetch with `preferred_read_replica` and no records; the client then fetches from that
//! follower, which serves it up to the high watermark it learned from the leader.
//!
//! Pure: the caller gathers the replicas, their racks and progress.

/// A replica the leader could send a consumer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCandidate<'a> {
    pub id: i32,
    pub rack: Option<&'a str>,
    /// Its log end offset as the leader knows it (a follower's last fetch offset).
    pub log_end: i64,
}

/// The replica a consumer in `client_rack` reading from `fetch_offset` should fetch from, when it
/// is not the leader (`None`: the leader serves it). `followers` are the in-sync, live followers.
///
/// Rules (Kafka's): no rack, or the leader's own rack, stays on the leader; among followers in
/// the client's rack that already have `fetch_offset`, the most caught-up wins (the lowest id on
/// a tie, so the choice is stable).
pub fn preferred_read_replica(
    leader_rack: Option<&str>,
    client_rack: &str,
    fetch_offset: i64,
    followers: &[ReadCandidate<'_>],
) -> Option<i32> {
    if client_rack.is_empty() || leader_rack == Some(client_rack) {
        return None;
    }
    followers
        .iter()
        .filter(|f| f.rack == Some(client_rack) && f.log_end >= fetch_offset && f.log_end >= 0)
        .max_by_key(|f| (f.log_end, -f.id))
        .map(|f| f.id)
}

/// Where a consumer in `client_rack` was served from by a broker in `broker_rack`: the label of
/// the bytes-served metric (`same`, `other`, or `unknown` when either rack is unset).
pub fn rack_relation(broker_rack: Option<&str>, client_rack: Option<&str>) -> &'static str {
    match (broker_rack, client_rack.filter(|r| !r.is_empty())) {
        (Some(b), Some(c)) if b == c => "same",
        (Some(_), Some(_)) => "other",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: i32, rack: &str, log_end: i64) -> ReadCandidate<'_> {
        ReadCandidate {
            id,
            rack: Some(rack),
            log_end,
        }
    }

    #[test]
    fn a_consumer_goes_to_a_caught_up_follower_in_its_rack() {
        let followers = [f(2, "b", 100), f(3, "c", 100)];
        assert_eq!(
            preferred_read_replica(Some("a"), "b", 50, &followers),
            Some(2)
        );
        assert_eq!(
            preferred_read_replica(Some("a"), "c", 100, &followers),
            Some(3)
        );
    }

    #[test]
    fn the_leader_keeps_consumers_of_its_rack_without_a_rack_or_without_a_match() {
        let followers = [f(2, "b", 100)];
        assert_eq!(preferred_read_replica(Some("b"), "b", 0, &followers), None);
        assert_eq!(preferred_read_replica(Some("a"), "", 0, &followers), None);
        assert_eq!(preferred_read_replica(Some("a"), "z", 0, &followers), None);
        // The follower does not have the offset yet.
        assert_eq!(
            preferred_read_replica(Some("a"), "b", 101, &followers),
            None
        );
        // A follower never heard from.
        assert_eq!(
            preferred_read_replica(Some("a"), "b", 0, &[f(2, "b", -1)]),
            None
        );
    }

    #[test]
    fn the_most_caught_up_then_the_lowest_id_wins() {
        let followers = [f(4, "b", 90), f(3, "b", 100), f(2, "b", 100)];
        assert_eq!(preferred_read_replica(None, "b", 10, &followers), Some(2));
        let followers = [f(2, "b", 90), f(3, "b", 100)];
        assert_eq!(preferred_read_replica(None, "b", 10, &followers), Some(3));
    }

    #[test]
    fn rack_relations() {
        assert_eq!(rack_relation(Some("a"), Some("a")), "same");
        assert_eq!(rack_relation(Some("a"), Some("b")), "other");
        assert_eq!(rack_relation(None, Some("b")), "unknown");
        assert_eq!(rack_relation(Some("a"), Some("")), "unknown");
        assert_eq!(rack_relation(Some("a"), None), "unknown");
    }
}
