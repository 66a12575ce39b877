//! Scripted events against the KIP-714 state machine, with an injected clock.

use std::collections::BTreeMap;

use super::*;

const T0: i64 = 1_700_000_000_000;

fn sub(name: &str, metrics: &str, interval: &str, matches: &str) -> Subscription {
    let mut c = BTreeMap::new();
    c.insert("metrics".to_string(), metrics.to_string());
    c.insert("interval.ms".to_string(), interval.to_string());
    if !matches.is_empty() {
        c.insert("match".to_string(), matches.to_string());
    }
    Subscription::parse(name, &c).unwrap()
}

fn client(id: &str) -> ClientMeta {
    ClientMeta {
        client_id: id.into(),
        client_software_name: "librdkafka".into(),
        client_software_version: "2.5.0".into(),
        client_source_address: "127.0.0.1".into(),
        client_source_port: "40000".into(),
        ..Default::default()
    }
}

fn state() -> TelemetryState {
    let mut s = TelemetryState::new(1024);
    s.set_subscriptions(vec![sub("s", "org.apache.kafka.producer.", "1000", "")]);
    s
}

fn push(answer: &GetAnswer) -> Push {
    Push {
        client_instance_id: answer.client_instance_id,
        subscription_id: answer.subscription_id,
        terminating: false,
        compression_type: 4,
        payload_len: 100,
    }
}

#[test]
fn a_new_client_gets_an_id_and_its_subscription() {
    let mut s = state();
    let fresh = Uuid::new_v4();
    let a = s.get(Uuid::nil(), fresh, &client("c"), T0).unwrap();
    assert_eq!(a.client_instance_id, fresh);
    assert_eq!(a.metrics, ["org.apache.kafka.producer."]);
    assert_eq!(a.push_interval_ms, 1000);
    // The same inputs give the same subscription id (on any broker).
    let mut other = state();
    let b = other.get(fresh, Uuid::new_v4(), &client("c"), T0).unwrap();
    assert_eq!(a.subscription_id, b.subscription_id);
}

#[test]
fn pushes_follow_the_interval() {
    let mut s = state();
    let a = s
        .get(Uuid::nil(), Uuid::new_v4(), &client("c"), T0)
        .unwrap();
    // The first push may come early (jitter) because a Get preceded it.
    s.push(push(&a), &client("c"), T0 + 400).unwrap();
    let early = s.push(push(&a), &client("c"), T0 + 900).unwrap_err();
    assert!(matches!(early, TelemetryError::Throttled { .. }), "{early}");
    // A throttled push does not move the clock: one interval after the accepted one is fine.
    s.push(push(&a), &client("c"), T0 + 1400).unwrap();
    s.push(push(&a), &client("c"), T0 + 2400).unwrap();
}

#[test]
fn gets_are_throttled_within_an_interval_unless_the_push_was_refused() {
    let mut s = state();
    let fresh = Uuid::new_v4();
    let a = s.get(Uuid::nil(), fresh, &client("c"), T0).unwrap();
    let again = s
        .get(fresh, Uuid::new_v4(), &client("c"), T0 + 10)
        .unwrap_err();
    assert!(matches!(again, TelemetryError::Throttled { .. }));
    // A push with a stale subscription id lets the client ask again at once.
    let mut stale = push(&a);
    stale.subscription_id ^= 1;
    let e = s.push(stale, &client("c"), T0 + 20).unwrap_err();
    assert!(
        matches!(e, TelemetryError::UnknownSubscription { .. }),
        "{e}"
    );
    s.get(fresh, Uuid::new_v4(), &client("c"), T0 + 30).unwrap();
    // ... but only once.
    assert!(s.get(fresh, Uuid::new_v4(), &client("c"), T0 + 40).is_err());
}

#[test]
fn a_new_subscription_is_picked_up_through_unknown_subscription_id() {
    let mut s = state();
    let fresh = Uuid::new_v4();
    let a = s.get(Uuid::nil(), fresh, &client("c"), T0).unwrap();
    s.push(push(&a), &client("c"), T0 + 500).unwrap();
    s.set_subscriptions(vec![sub("s", "org.apache.kafka.", "2000", "")]);
    let e = s.push(push(&a), &client("c"), T0 + 1500).unwrap_err();
    assert!(
        matches!(e, TelemetryError::UnknownSubscription { .. }),
        "{e}"
    );
    let b = s
        .get(fresh, Uuid::new_v4(), &client("c"), T0 + 1600)
        .unwrap();
    assert_ne!(a.subscription_id, b.subscription_id);
    assert_eq!(b.metrics, ["org.apache.kafka."]);
    assert_eq!(b.push_interval_ms, 2000);
    s.push(push(&b), &client("c"), T0 + 1700).unwrap();
}

#[test]
fn compression_size_and_terminating_are_checked() {
    let mut s = state();
    let a = s
        .get(Uuid::nil(), Uuid::new_v4(), &client("c"), T0)
        .unwrap();
    let mut p = push(&a);
    p.compression_type = 9;
    let e = s.push(p, &client("c"), T0 + 100).unwrap_err();
    assert!(
        matches!(e, TelemetryError::UnsupportedCompression { .. }),
        "{e}"
    );
    // UNSUPPORTED_COMPRESSION_TYPE lets the client Get at once.
    let a = s
        .get(a.client_instance_id, Uuid::new_v4(), &client("c"), T0 + 200)
        .unwrap();
    let mut p = push(&a);
    p.payload_len = 1025;
    let e = s.push(p, &client("c"), T0 + 300).unwrap_err();
    assert!(matches!(e, TelemetryError::TooLarge { .. }), "{e}");
    // A terminating push is accepted within the interval, and nothing after it.
    let mut p = push(&a);
    p.terminating = true;
    s.push(p, &client("c"), T0 + 400).unwrap();
    let e = s.push(push(&a), &client("c"), T0 + 5000).unwrap_err();
    assert!(matches!(e, TelemetryError::AfterTerminating { .. }), "{e}");
    let e = s.push(
        Push {
            client_instance_id: Uuid::nil(),
            ..push(&a)
        },
        &client("c"),
        T0,
    );
    assert!(matches!(e, Err(TelemetryError::NilInstanceId)));
}

#[test]
fn unmatched_clients_get_no_metrics_and_the_default_interval() {
    let mut s = TelemetryState::new(1024);
    s.set_subscriptions(vec![sub("s", "*", "1000", "client_id=wanted")]);
    let a = s
        .get(Uuid::nil(), Uuid::new_v4(), &client("other"), T0)
        .unwrap();
    assert!(a.metrics.is_empty());
    assert_eq!(a.push_interval_ms, 300_000);
    let b = s
        .get(Uuid::nil(), Uuid::new_v4(), &client("wanted"), T0)
        .unwrap();
    assert_eq!(b.metrics, [""]);
}

#[test]
fn idle_instances_expire_and_the_cache_is_bounded() {
    let mut s = state();
    let a = s
        .get(Uuid::nil(), Uuid::new_v4(), &client("c"), T0)
        .unwrap();
    assert_eq!(s.instances(), 1);
    // Another client arrives after a's expiry (3 intervals, at least a minute): a goes.
    s.get(Uuid::nil(), Uuid::new_v4(), &client("d"), T0 + 60_000)
        .unwrap();
    assert_eq!(s.instances(), 1);
    // a comes back: it is a new instance with the same id and subscription.
    let again = s
        .get(
            a.client_instance_id,
            Uuid::new_v4(),
            &client("c"),
            T0 + 60_001,
        )
        .unwrap();
    assert_eq!(again.subscription_id, a.subscription_id);
    for i in 0..MAX_INSTANCES + 10 {
        s.get(
            Uuid::nil(),
            Uuid::new_v4(),
            &client("x"),
            T0 + 60_002 + i as i64,
        )
        .unwrap();
    }
    assert_eq!(s.instances(), MAX_INSTANCES);
}
