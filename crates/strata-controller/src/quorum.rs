//! The voter set of the metadata group, as configured in Kafka's style:
//! `controller.quorum.voters = "1@127.0.0.1:9093,2@127.0.0.1:9094,3@127.0.0.1:9095"`.
//!
//! Pure parsing; no I/O. Host names are kept as written and resolved when a peer connects.

use std::collections::BTreeMap;

use crate::error::ControllerError;

/// Parses `id@host:port` entries separated by commas into a map from node id to address.
///
/// Whitespace around entries is ignored. An empty list, a missing `@`, a non-numeric id, an
/// address without a port, or an id listed twice is an error naming the offending entry.
pub fn parse_quorum_voters(spec: &str) -> Result<BTreeMap<u64, String>, ControllerError> {
    let invalid = |reason: String| ControllerError::InvalidQuorumVoters {
        spec: spec.to_string(),
        reason,
    };
    let mut voters = BTreeMap::new();
    for entry in spec.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(invalid(
                "an entry is empty; expected id@host:port separated by commas".to_string(),
            ));
        }
        let Some((id, addr)) = entry.split_once('@') else {
            return Err(invalid(format!(
                "entry {entry:?} has no '@'; expected id@host:port"
            )));
        };
        let id: u64 = id.trim().parse().map_err(|_| {
            invalid(format!(
                "entry {entry:?} has a node id that is not a non-negative integer"
            ))
        })?;
        let addr = addr.trim();
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(invalid(format!(
                "entry {entry:?} needs an address of the form host:port with a port from 0 to 65535"
            )));
        }
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(invalid(format!("node id {id} is listed more than once")));
        }
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_voters() {
        let voters =
            parse_quorum_voters("1@127.0.0.1:9093, 2@localhost:9094,3@[::1]:9095").unwrap();
        assert_eq!(
            voters,
            BTreeMap::from([
                (1, "127.0.0.1:9093".to_string()),
                (2, "localhost:9094".to_string()),
                (3, "[::1]:9095".to_string()),
            ])
        );
    }

    #[test]
    fn rejects_malformed_lists_with_the_entry_named() {
        for (spec, needle) in [
            ("", "empty"),
            ("1@a:1,", "empty"),
            ("1-a:1", "no '@'"),
            ("x@a:1", "node id"),
            ("-1@a:1", "node id"),
            ("1@a", "host:port"),
            ("1@a:99999", "host:port"),
            ("1@:9093", "host:port"),
            ("1@a:1,1@b:2", "more than once"),
        ] {
            let err = parse_quorum_voters(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
            assert!(err.contains("controller.quorum.voters"), "{err}");
        }
    }
}
