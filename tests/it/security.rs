//! Listeners and authentication of the real binary, driven by Strata's own client
//! (`protocol::client`, the one the CLI uses) and raw sockets: requests before SASL
//! authentication close the connection, a session past `connections.max.reauth.ms` is
//! closed, a wrong password is refused with its message, the connection limits and the idle
//! timeout hold, and a renewed TLS certificate is served without a restart. Certificates
//! are generated here (rcgen); nothing secret is committed. The Python tests
//! (`tests/python/test_security.py`) cover the client combinations.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use strata::protocol::client::{Client, ClientError};
use strata::protocol::client_security::ClientSecurity;

use crate::harness::Broker;

/// A CA and a `localhost`/`127.0.0.1` server certificate signed by it, as PEM files
/// `<name>-ca.pem` and `<name>-server.pem` (key + certificate) in `dir`.
pub(crate) fn make_pki(dir: &Path, name: &str) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let ca_path = dir.join(format!("{name}-ca.pem"));
    let server_path = dir.join(format!("{name}-server.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(
        &server_path,
        format!("{}{}", key.serialize_pem(), cert.pem()),
    )
    .unwrap();
    (
        ca_path.display().to_string(),
        server_path.display().to_string(),
    )
}

fn security(props: &[(&str, &str)]) -> ClientSecurity {
    let map: BTreeMap<String, String> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ClientSecurity::from_properties(&map).unwrap()
}

async fn connect(addr: &str, s: &ClientSecurity) -> Result<Client, ClientError> {
    Client::connect_secure(addr, Duration::from_secs(10), "strata-it", s).await
}

fn set_scram_user(plain_addr: &str, user: &str, password: &str, mechanism: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "user",
            "scram",
            "set",
            user,
            "--password",
            password,
            "-m",
            mechanism,
            "-b",
            plain_addr,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Metadata request (v1) as raw bytes.
fn metadata_frame() -> Vec<u8> {
    // api key 3, version 1, correlation id 7, client id "x", topics: null (-1).
    let body: Vec<u8> = [
        &3i16.to_be_bytes()[..],
        &1i16.to_be_bytes(),
        &7i32.to_be_bytes(),
        &1i16.to_be_bytes(),
        b"x",
        &(-1i32).to_be_bytes(),
    ]
    .concat();
    [&(body.len() as i32).to_be_bytes()[..], &body].concat()
}

/// Whether the broker closed `s` within `within` (EOF or reset).
fn closed_by_broker(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn sasl_broker(extra: &[(&str, &str)]) -> Broker {
    let mut settings = vec![
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        ),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512"),
    ];
    settings.extend_from_slice(extra);
    Broker::start(&settings)
}

#[tokio::test]
async fn sasl_gates_requests_and_ends_sessions() {
    let b = sasl_broker(&[("connections.max.reauth.ms", "1500")]);
    let sasl_addr = b.listeners["SASL_PLAINTEXT"].clone();
    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        set_scram_user(&b.listeners["PLAINTEXT"], "bob", "bob-secret", mech);
    }

    // A request other than ApiVersions before authenticating closes the connection.
    let mut raw = TcpStream::connect(&sasl_addr).unwrap();
    raw.write_all(&metadata_frame()).unwrap();
    assert!(
        closed_by_broker(&mut raw, Duration::from_secs(5)),
        "Metadata before SASL was served"
    );

    // A wrong password: the broker's message reaches the client.
    let wrong = security(&[
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "bob"),
        ("sasl.password", "nope"),
    ]);
    let err = connect(&sasl_addr, &wrong)
        .await
        .err()
        .expect("a wrong password was accepted")
        .to_string();
    assert!(err.contains("Authentication failed"), "{err}");

    // A good login is served until its session ends; then the connection is closed.
    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let good = security(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", mech),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="bob-secret";"#,
            ),
        ]);
        let mut c = connect(&sasl_addr, &good).await.unwrap();
        c.send(MetadataRequest::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1800)).await;
        assert!(
            c.send(MetadataRequest::default()).await.is_err(),
            "{mech}: served past the session"
        );
    }
}

#[tokio::test]
async fn connection_limits_and_idle_timeout() {
    let b = Broker::start(&[
        ("max.connections.per.ip", "3"),
        ("connections.max.idle.ms", "1000"),
    ]);
    let plain = security(&[]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&b.addr, &plain).await.unwrap());
    }
    // The fourth from the same address is closed at once.
    let mut fourth = TcpStream::connect(&b.addr).unwrap();
    assert!(closed_by_broker(&mut fourth, Duration::from_secs(5)));
    // Idle connections go after connections.max.idle.ms, which frees the places.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    for c in &mut clients {
        assert!(
            c.send(MetadataRequest::default()).await.is_err(),
            "an idle connection stayed open"
        );
    }
    let mut again = connect(&b.addr, &plain).await.unwrap();
    again.send(MetadataRequest::default()).await.unwrap();
}

#[tokio::test]
async fn tls_certificates_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, server1) = make_pki(dir.path(), "first");
    let (ca2, server2) = make_pki(dir.path(), "second");
    let keystore = dir.path().join("keystore.pem");
    std::fs::copy(&server1, &keystore).unwrap();
    let b = Broker::start(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.location", keystore.to_str().unwrap()),
        ("ssl.reload.interval.ms", "200"),
    ]);
    let ssl_addr = b.listeners["SSL"].clone();
    let trusting = |ca: &str| {
        security(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", ca),
        ])
    };
    let mut first = connect(&ssl_addr, &trusting(&ca1)).await.unwrap();
    first.send(MetadataRequest::default()).await.unwrap();
    assert!(connect(&ssl_addr, &trusting(&ca2)).await.is_err());

    // Renew: the new key and certificate replace the file (written aside, then renamed).
    let tmp = dir.path().join("keystore.tmp");
    std::fs::copy(&server2, &tmp).unwrap();
    std::fs::rename(&tmp, &keystore).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = connect(&ssl_addr, &trusting(&ca2)).await {
            c.send(MetadataRequest::default()).await.unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        connect(&ssl_addr, &trusting(&ca1)).await.is_err(),
        "the old certificate is still served"
    );
    // The connection made before the renewal keeps working.
    first.send(MetadataRequest::default()).await.unwrap();
}

/// Client keys and certificates with subjects `CN=<cn>`, all signed by one new CA:
/// (CA file, one keystore file per name).
fn client_certs(dir: &Path, ca_name: &str, cns: &[&str]) -> (String, Vec<String>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let ca_path = dir.join(format!("{ca_name}-clients-ca.pem"));
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let mut out = Vec::new();
    for cn in cns {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, *cn);
        let cert = params.signed_by(&key, &ca).unwrap();
        let path = dir.join(format!("{ca_name}-{cn}.pem"));
        std::fs::write(&path, format!("{}{}", key.serialize_pem(), cert.pem())).unwrap();
        out.push(path.display().to_string());
    }
    (ca_path.display().to_string(), out)
}

#[tokio::test]
async fn client_certificates_and_principal_mapping_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, server) = make_pki(dir.path(), "server");
    let (clients_ca, certs) = client_certs(dir.path(), "good", &["alice", "bob"]);
    let (_, rogue) = client_certs(dir.path(), "rogue", &["alice"]);
    let b = Broker::start(&[
        ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
        ("ssl.keystore.location", &server),
        ("ssl.client.auth", "required"),
        ("ssl.truststore.location", &clients_ca),
        // Only alice's DN maps to a principal (User:ALICE).
        ("ssl.principal.mapping.rules", "RULE:^CN=(alice)$/$1/U"),
    ]);
    let ssl_addr = b.listeners["SSL"].clone();
    let with = |keystore: &str| {
        security(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", &server_ca),
            ("ssl.keystore.location", keystore),
        ])
    };
    let mut c = connect(&ssl_addr, &with(&certs[0])).await.unwrap();
    c.send(MetadataRequest::default()).await.unwrap();
    // bob is trusted but no rule maps his DN: the broker closes the connection.
    let refused = match connect(&ssl_addr, &with(&certs[1])).await {
        Err(_) => true,
        Ok(mut c) => c.send(MetadataRequest::default()).await.is_err(),
    };
    assert!(refused, "a DN without a mapping rule was served");
    assert!(
        b.log()
            .contains("no ssl.principal.mapping.rules rule matches CN=bob"),
        "{}",
        b.log()
    );
    // The same name from an untrusted CA, and no certificate at all: refused.
    assert!(connect(&ssl_addr, &with(&rogue[0])).await.is_err());
    let no_cert = security(&[
        ("security.protocol", "SSL"),
        ("ssl.truststore.location", &server_ca),
    ]);
    assert!(connect(&ssl_addr, &no_cert).await.is_err());
}

#[test]
fn a_listener_that_cannot_work_stops_startup_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "serve",
            "--set",
            "listeners=SSL://127.0.0.1:0",
            "--set",
            "metrics.listener=none",
        ])
        .arg("--set")
        .arg(format!("ssl.keystore.location={}", missing.display()))
        .arg("--set")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read keystore (ssl.keystore.location)"),
        "{err}"
    );
}
