//! Property tests for the parsers: listeners and the two TOML key styles.

use std::collections::BTreeMap;
use std::io::Write;

use proptest::prelude::*;
use strata_config::{Configs, Listener};

fn listener() -> impl Strategy<Value = Listener> {
    let host = prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,6}){0,2}",
        (0u8..=255, 0u8..=255).prop_map(|(a, b)| format!("10.0.{a}.{b}")),
        Just("::1".to_string()),
    ];
    ("[A-Z][A-Z0-9_]{0,8}", host, any::<u16>()).prop_map(|(name, host, port)| Listener {
        name,
        host,
        port,
    })
}

fn load_cli(name: &str, value: &str) -> Result<Configs, strata_config::ConfigError> {
    Configs::load(None, &[], &[(name.to_string(), value.to_string())])
}

proptest! {
    #[test]
    fn listeners_round_trip_through_their_text(mut ls in proptest::collection::vec(listener(), 1..4)) {
        for (i, l) in ls.iter_mut().enumerate() {
            l.name = format!("{}{i}", l.name); // names must be distinct
        }
        let text = ls.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        // Every listener needs a security protocol (Kafka's rule).
        let map = ls.iter().map(|l| format!("{}:PLAINTEXT", l.name)).collect::<Vec<_>>().join(",");
        let configs = Configs::load(None, &[], &[
            ("listeners".to_string(), text),
            ("listener.security.protocol.map".to_string(), map),
        ]).unwrap();
        prop_assert_eq!(configs.broker(&BTreeMap::new()).unwrap().listeners, ls);
    }

    #[test]
    fn arbitrary_listener_text_never_panics(text in "\\PC{0,40}") {
        let _ = load_cli("listeners", &text);
    }

    #[test]
    fn integers_accepted_exactly_in_range(v in any::<i64>()) {
        let ok = load_cli("log.segment.bytes", &v.to_string()).is_ok();
        prop_assert_eq!(ok, (14..=i32::MAX as i64).contains(&v));
    }

    #[test]
    fn flat_and_nested_keys_load_the_same(bytes in 14i64..=i32::MAX as i64, hours in -1i64..100_000) {
        let flat = format!("\"log.segment.bytes\" = {bytes}\n\"log.retention.hours\" = {hours}\n");
        let nested = format!("[log.segment]\nbytes = {bytes}\n[log.retention]\nhours = {hours}\n");
        let load = |text: &str| {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(text.as_bytes()).unwrap();
            Configs::load(Some(file.path()), &[], &[]).unwrap().topic(&BTreeMap::new(), &BTreeMap::new()).unwrap()
        };
        let (a, b) = (load(&flat), load(&nested));
        prop_assert_eq!(a.segment_bytes, bytes as u64);
        prop_assert_eq!(a.retention_ms, if hours < 0 { -1 } else { hours * 3_600_000 });
        prop_assert_eq!(a, b);
    }
}
