//! The security settings the Terraform module writes (`terraform/modules/strata-cluster/
//! security.tf`, `security_settings`) start a real node: every key is one the binary
//! accepts, the controller listener speaks mutual TLS (a one-voter quorum), and the
//! INTERNAL listener admits a client with a certificate from the cluster CA and refuses one
//! without. The 3-node cluster with a leader kill and a node with the wrong certificate is
//! `tests/python/test_cluster_security.py`.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::MetadataRequest;
use strata::protocol::client::Client;
use strata::protocol::client_security::ClientSecurity;

use crate::harness::Broker;

/// The `security_settings` map of security.tf: key -> literal value (or the expression).
fn terraform_security_settings() -> Vec<(String, String)> {
    let tf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/terraform/modules/strata-cluster/security.tf"
    ))
    .expect("security.tf");
    let block = tf
        .split("security_settings = local.security ? merge(")
        .nth(1)
        .and_then(|b| b.split("\n  ) : {}").next())
        .expect("security_settings block");
    block
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split_once('"'))
        .filter_map(|(k, rest)| {
            let v = rest.trim().strip_prefix('=')?.trim();
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_security_settings_start_a_node_with_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, node) = crate::security::make_pki(dir.path(), "cluster");
    let controller = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings: Vec<(String, String)> = Vec::new();
    for (k, v) in terraform_security_settings() {
        let v = match k.as_str() {
            "ssl.keystore.location" => node.clone(),
            "ssl.truststore.location" => ca.clone(),
            "listener.name.client.sasl.enabled.mechanisms" => "SCRAM-SHA-512".into(),
            "super.users" => "User:admin;User:CN=rcgen self signed cert".into(),
            _ if v.contains("${") => {
                panic!("security.tf writes `{k}` = {v}: give it a loopback value here")
            }
            _ => v,
        };
        settings.push((k, v));
    }
    assert!(settings.len() >= 8, "parsed: {settings:?}");
    settings.extend([
        ("node.id".to_string(), "1".to_string()),
        (
            "controller.quorum.voters".into(),
            format!("1@127.0.0.1:{controller}"),
        ),
        (
            "listeners".into(),
            format!(
                "CLIENT://127.0.0.1:0,INTERNAL://127.0.0.1:0,CONTROLLER://127.0.0.1:{controller}"
            ),
        ),
    ]);
    let s: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let b = Broker::start(&s);
    let joined = b
        .log()
        .lines()
        .find(|l| l.contains("joining the controller quorum"))
        .map(String::from);
    assert!(
        joined
            .as_deref()
            .is_some_and(|l| l.contains("tls") && l.contains("true")),
        "the quorum did not use TLS: {joined:?}"
    );
    let internal = b
        .listeners
        .get("INTERNAL")
        .expect("INTERNAL listener")
        .clone();

    // A certificate from another CA, as a node with the wrong credentials would present.
    let (_, rogue) = crate::security::make_pki(dir.path(), "rogue");
    let props = |keystore: Option<&str>| {
        let mut m = BTreeMap::from([
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.truststore.location".to_string(), ca.clone()),
        ]);
        if let Some(k) = keystore {
            m.insert("ssl.keystore.location".into(), k.to_string());
        }
        ClientSecurity::from_properties(&m).unwrap()
    };
    let admitted = props(Some(&node));
    let mut c = Client::connect_secure(&internal, Duration::from_secs(10), "it", &admitted)
        .await
        .expect("a node certificate is admitted");
    let md = c.send(MetadataRequest::default()).await.unwrap();
    assert_eq!(md.brokers.len(), 1);
    for (what, keystore) in [
        ("no certificate", None),
        ("another CA's certificate", Some(rogue.as_str())),
    ] {
        let security = props(keystore);
        let refused = async {
            let mut c =
                Client::connect_secure(&internal, Duration::from_secs(5), "it", &security).await?;
            c.send(MetadataRequest::default()).await
        }
        .await;
        assert!(
            refused.is_err(),
            "a client with {what} was served on INTERNAL"
        );
    }
}
