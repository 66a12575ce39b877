//! Listeners and security settings: protocol map, per-listener overrides, JAAS users,
//! and the errors that stop a broker that could not serve a listener as configured.

use std::collections::BTreeMap;
use std::path::PathBuf;

use strata_config::{ClientAuth, Configs, SecurityProtocol};

fn load(cli: &[(&str, &str)]) -> Result<Configs, strata_config::ConfigError> {
    let cli: Vec<(String, String)> = cli
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Configs::load(None, &[], &cli)
}

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="a" user_admin="a" user_alice="alice-secret";"#;

#[test]
fn several_listeners_with_their_own_protocols_and_overrides() {
    let b = load(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093,MTLS://127.0.0.1:9094",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL",
        ),
        ("ssl.keystore.location", "/etc/strata/broker.pem"),
        ("listener.name.mtls.ssl.client.auth", "required"),
        (
            "listener.name.mtls.ssl.truststore.location",
            "/etc/strata/ca.pem",
        ),
        (
            "listener.name.sasl_ssl.sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-512",
        ),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        ("listener.name.sasl_ssl.connections.max.reauth.ms", "60000"),
        ("max.connections.per.ip", "50"),
    ])
    .unwrap()
    .broker(&BTreeMap::new())
    .unwrap();
    let s = &b.security;
    assert_eq!(s.listeners.len(), 3);
    assert_eq!(s.inter_broker_listener, "PLAINTEXT");
    assert_eq!(s.max_connections_per_ip, 50);
    let plain = s.listener("PLAINTEXT").unwrap();
    assert_eq!(plain.protocol, SecurityProtocol::Plaintext);
    assert!(plain.ssl.is_none() && plain.sasl.is_none());
    let sasl = s.listener("SASL_SSL").unwrap();
    assert_eq!(sasl.protocol, SecurityProtocol::SaslSsl);
    assert_eq!(sasl.max_reauth_ms, 60_000);
    let cfg = sasl.sasl.as_ref().unwrap();
    assert_eq!(cfg.mechanisms, ["PLAIN", "SCRAM-SHA-512"]);
    assert_eq!(cfg.plain_users["alice"].0, "alice-secret");
    assert_eq!(cfg.plain_users.len(), 2);
    assert_eq!(
        sasl.ssl.as_ref().unwrap().client_auth,
        ClientAuth::None,
        "the override is MTLS's only"
    );
    let mtls = s.listener("MTLS").unwrap();
    let ssl = mtls.ssl.as_ref().unwrap();
    assert_eq!(ssl.client_auth, ClientAuth::Required);
    assert_eq!(
        ssl.keystore_location,
        PathBuf::from("/etc/strata/broker.pem")
    );
    assert_eq!(ssl.enabled_protocols, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(mtls.max_reauth_ms, 0);
    // Passwords never reach Debug output.
    assert!(!format!("{b:?}").contains("alice-secret"));
}

#[test]
fn listeners_that_cannot_work_are_refused_at_load() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("listeners", "FOO://127.0.0.1:1")],
            "FOO has no security protocol",
        ),
        (
            &[("listeners", "SSL://127.0.0.1:1")],
            "ssl.keystore.location",
        ),
        (
            &[
                ("listeners", "SSL://127.0.0.1:1"),
                ("ssl.keystore.location", "k.pem"),
                ("ssl.client.auth", "required"),
            ],
            "no truststore",
        ),
        (
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:1"),
                ("sasl.enabled.mechanisms", "PLAIN"),
            ],
            "PLAIN is enabled on listener SASL_PLAINTEXT but it has no users",
        ),
        (
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:1"),
                ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            ],
            "no JWKS",
        ),
        (
            &[("sasl.enabled.mechanisms", "GSSAPI")],
            "expected a non-empty",
        ),
        (&[("ssl.keystore.type", "JKS")], "expected one of PEM"),
        (
            &[("listener.name.plaintext.log.dirs", "/x")],
            "cannot be set per listener",
        ),
        (
            &[("listener.name.other.ssl.client.auth", "required")],
            "no listener named OTHER",
        ),
        (
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:1"),
                (
                    "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
                    "x required;",
                ),
            ],
            "JAAS only for PLAIN",
        ),
        (
            &[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:1"),
                ("sasl.enabled.mechanisms", "PLAIN"),
                (
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                    "oops",
                ),
            ],
            "control flag",
        ),
        (
            &[("listener.name.plaintext.plain.sasl.jaas.config", JAAS)],
            "does not use SASL",
        ),
        (
            &[
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:2",
                ),
                ("ssl.keystore.location", "k.pem"),
                ("inter.broker.listener.name", "SASL_SSL"),
                ("controller.quorum.voters", "1@127.0.0.1:3"),
            ],
            "controller listener",
        ),
    ];
    for (settings, want) in cases {
        let err = match load(settings).and_then(|c| c.broker(&BTreeMap::new())) {
            Ok(_) => panic!("{settings:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{settings:?}: {err}");
    }
}

#[test]
fn node_to_node_security_is_checked_at_startup() {
    let cluster = |extra: &[(&str, &str)]| {
        let mut settings = vec![
            (
                "listeners",
                "CLIENT://127.0.0.1:1,INTERNAL://127.0.0.1:2,CONTROLLER://127.0.0.1:3",
            ),
            (
                "listener.security.protocol.map",
                "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            ),
            ("ssl.keystore.location", "k.pem"),
            ("ssl.truststore.location", "ca.pem"),
            ("listener.name.internal.ssl.client.auth", "required"),
            ("listener.name.controller.ssl.client.auth", "required"),
            ("inter.broker.listener.name", "INTERNAL"),
            ("controller.quorum.voters", "1@127.0.0.1:3"),
        ];
        settings.extend_from_slice(extra);
        load(&settings).and_then(|c| c.broker(&BTreeMap::new()))
    };
    let ok = cluster(&[]).unwrap();
    assert!(ok.security.controller_ssl.is_some());
    // The Raft transport needs client certificates on an SSL controller listener...
    let err = cluster(&[("listener.name.controller.ssl.client.auth", "none")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("voters authenticate each other"), "{err}");
    // ...and does not speak SASL.
    let err = cluster(&[(
        "listener.security.protocol.map",
        "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SASL_SSL",
    )])
    .unwrap_err()
    .to_string();
    assert!(err.contains("not SASL"), "{err}");
    // A SASL inter-broker listener needs the PLAIN login replica fetchers use.
    let err = cluster(&[("inter.broker.listener.name", "CLIENT")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inter-broker listener CLIENT uses SASL"),
        "{err}"
    );
    let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="pw" user_broker="pw";"#;
    let ok = cluster(&[
        ("inter.broker.listener.name", "CLIENT"),
        ("listener.name.client.sasl.enabled.mechanisms", "PLAIN"),
        ("listener.name.client.plain.sasl.jaas.config", jaas),
    ])
    .unwrap();
    let client = ok.security.listener("CLIENT").unwrap();
    let login = client.sasl.as_ref().unwrap().plain_login.clone().unwrap();
    assert_eq!(login.0, "broker");
}

#[test]
fn passwords_are_sensitive_in_describe() {
    let c = load(&[("ssl.key.password", "hunter2")]).unwrap();
    let d = c.describe_broker(&BTreeMap::new());
    let p = d.iter().find(|c| c.name == "ssl.key.password").unwrap();
    assert!(p.sensitive);
    assert_eq!(p.value, None);
    assert!(p.synonyms.iter().all(|s| s.1.is_none()));
}

#[test]
fn process_roles_are_combined_or_broker_only_with_a_quorum() {
    let node = |roles: &str, voters: Option<&str>| {
        let mut settings = vec![
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2",
            ),
            ("process.roles", roles),
        ];
        if let Some(v) = voters {
            settings.push(("controller.quorum.voters", v));
        }
        load(&settings).and_then(|c| c.broker(&BTreeMap::new()))
    };
    assert!(
        !node("broker,controller", Some("1@127.0.0.1:2"))
            .unwrap()
            .broker_only
    );
    assert!(node("broker", Some("1@127.0.0.1:3")).unwrap().broker_only);
    let err = node("broker", None).unwrap_err().to_string();
    assert!(err.contains("controller.quorum.voters"), "{err}");
    let err = node("controller", Some("1@127.0.0.1:2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("controller-only node is not supported"),
        "{err}"
    );
    // A read-only node joins no quorum and takes no other role.
    let reader = node("reader", None).unwrap();
    assert!(reader.read_only && !reader.broker_only);
    let err = node("reader", Some("1@127.0.0.1:2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unset controller.quorum.voters"), "{err}");
    let err = node("broker,reader", None).unwrap_err().to_string();
    assert!(err.contains("reader, alone"), "{err}");
    assert!(!node("broker,controller", None).unwrap().read_only);
}
