//! Client-side security for [`super::client::Client`]: Kafka client properties (the
//! `--command-config` file of the admin CLI, as Kafka's tools take it), the TLS client
//! configuration, and the SASL exchange after connecting (PLAIN, SCRAM-SHA-256/512).
//!
//! Properties understood (Kafka's names, with librdkafka's spellings where they differ):
//! `security.protocol`, `sasl.mechanism`, `sasl.jaas.config` (a `PlainLoginModule` or
//! `ScramLoginModule` line with `username` and `password`) or `sasl.username` /
//! `sasl.password`, `ssl.truststore.location` (or `ssl.ca.location`), `ssl.truststore.type`
//! and `ssl.keystore.type` (PEM), `ssl.keystore.location` (a PEM client key and
//! certificate, for mTLS) and `ssl.key.password`. Any other property is an error, so a
//! setting that would be silently ignored never is. Server certificates are always
//! verified, host name included (Kafka's default `ssl.endpoint.identification.algorithm=https`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use strata_config::SecurityProtocol;
use strata_controller::ScramMechanism;

/// How a client authenticates with SASL.
#[derive(Clone)]
pub enum ClientSasl {
    Plain {
        username: String,
        password: String,
    },
    Scram {
        mechanism: ScramMechanism,
        username: String,
        password: String,
    },
}

/// Everything a client needs to connect to a secured listener.
#[derive(Clone)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<ClientSasl>,
}

impl Default for ClientSecurity {
    fn default() -> Self {
        ClientSecurity {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }
}

/// Why client properties cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PropertiesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Parses Java properties text: `key=value` or `key: value` lines, `#`/`!` comments,
/// backslash line continuations.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']).unwrap_or(entry.len());
        let key = entry[..split].trim().to_string();
        let value = entry.get(split + 1..).unwrap_or("").trim().to_string();
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

const KNOWN: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "sasl.username",
    "sasl.password",
    "ssl.truststore.location",
    "ssl.ca.location",
    "ssl.truststore.type",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.key.password",
];

impl ClientSecurity {
    /// Reads a `--command-config` properties file.
    pub fn from_file(path: &Path) -> Result<ClientSecurity, PropertiesError> {
        let text = std::fs::read_to_string(path).map_err(|source| PropertiesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClientSecurity::from_properties(&parse_properties(&text)).map_err(|reason| {
            PropertiesError::Invalid {
                path: path.to_path_buf(),
                reason,
            }
        })
    }

    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ClientSecurity, String> {
        if let Some(unknown) = props.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "unsupported property {unknown} (supported: {})",
                KNOWN.join(", ")
            ));
        }
        let get = |k: &str| props.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            Some(p) => SecurityProtocol::parse(p)
                .ok_or_else(|| format!("unknown security.protocol {p}"))?,
            None => SecurityProtocol::Plaintext,
        };
        for t in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let Some(v) = get(t) {
                if !v.eq_ignore_ascii_case("PEM") {
                    return Err(format!("{t}={v}: only PEM files are read"));
                }
            }
        }
        let tls = if protocol.uses_tls() {
            let ca = get("ssl.truststore.location").or(get("ssl.ca.location"));
            Some(Arc::new(tls_config(
                ca,
                get("ssl.keystore.location"),
                get("ssl.key.password"),
            )?))
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(sasl(&get)?)
        } else {
            None
        };
        Ok(ClientSecurity {
            protocol,
            tls,
            sasl,
        })
    }
}

/// The client side of a node's own TLS settings: trusts the listener's truststore (the
/// cluster CA) and presents its keystore as the client certificate.
pub fn client_tls(ssl: &strata_config::SslConfig) -> Result<rustls::ClientConfig, String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let ca = ssl.truststore_location.as_deref().map(path);
    tls_config(
        ca.as_deref(),
        Some(&path(&ssl.keystore_location)),
        ssl.key_password.as_ref().map(|p| p.0.as_str()),
    )
}

/// How this broker's replica fetchers connect to another node's inter-broker listener `l`:
/// its protocol, mutual TLS with this node's certificate, PLAIN with the JAAS login.
pub fn inter_broker(l: &strata_config::ListenerSecurity) -> Result<ClientSecurity, String> {
    let tls = match &l.ssl {
        Some(ssl) => Some(Arc::new(client_tls(ssl)?)),
        None => None,
    };
    let sasl = match &l.sasl {
        Some(s) => {
            let (username, password) = s.plain_login.clone().ok_or_else(|| {
                format!(
                    "listener {} has no PLAIN login for replica fetchers",
                    l.listener.name
                )
            })?;
            Some(ClientSasl::Plain {
                username,
                password: password.0,
            })
        }
        None => None,
    };
    Ok(ClientSecurity {
        protocol: l.protocol,
        tls,
        sasl,
    })
}

fn sasl<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<ClientSasl, String> {
    let mechanism = get("sasl.mechanism")
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    let (username, password) = match get("sasl.jaas.config") {
        Some(jaas) => {
            let m = strata_config::jaas::parse_jaas(jaas)
                .map_err(|e| format!("sasl.jaas.config: {e}"))?;
            let opt = |k: &str| {
                m.options
                    .get(k)
                    .cloned()
                    .ok_or_else(|| format!("sasl.jaas.config has no {k}"))
            };
            (opt("username")?, opt("password")?)
        }
        None => match (get("sasl.username"), get("sasl.password")) {
            (Some(u), Some(p)) => (u.to_string(), p.to_string()),
            _ => {
                return Err("SASL needs sasl.jaas.config or sasl.username and sasl.password".into())
            }
        },
    };
    if mechanism == "PLAIN" {
        return Ok(ClientSasl::Plain { username, password });
    }
    match ScramMechanism::from_name(&mechanism) {
        Some(m) => Ok(ClientSasl::Scram {
            mechanism: m,
            username,
            password,
        }),
        None => Err(format!(
            "sasl.mechanism {mechanism} is not supported by the strata CLI (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
        )),
    }
}

fn tls_config(
    ca: Option<&str>,
    keystore: Option<&str>,
    key_password: Option<&str>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            roots = crate::pem::load_roots(Path::new(path)).map_err(|e| e.to_string())?;
        }
        None => {
            let found = rustls_native_roots();
            for cert in found {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no ssl.truststore.location and no system CA certificates".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match keystore {
        Some(path) => {
            let (chain, key) = crate::pem::load_keystore(Path::new(path), key_password)
                .map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The system's CA certificates (for brokers with publicly trusted certificates).
fn rustls_native_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .find_map(|p| std::fs::read(p).ok())
    .map(|pem| {
        rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect()
    })
    .unwrap_or_default()
}

/// A fresh random SCRAM client nonce.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 24];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_like_kafka_tools_write_them() {
        let p = parse_properties(
            "# admin\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism : SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"admin\" password=\"pw\";\n",
        );
        assert_eq!(p["sasl.mechanism"], "SCRAM-SHA-512");
        let s = ClientSecurity::from_properties(&p).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        match s.sasl {
            Some(ClientSasl::Scram {
                mechanism,
                username,
                password,
            }) => {
                assert_eq!(
                    (mechanism, username.as_str(), password.as_str()),
                    (ScramMechanism::Sha512, "admin", "pw")
                );
            }
            _ => panic!("expected SCRAM"),
        }
    }

    #[test]
    fn unknown_or_unsupported_properties_are_errors() {
        let bad = |text: &str| {
            ClientSecurity::from_properties(&parse_properties(text))
                .err()
                .unwrap_or_default()
        };
        assert!(bad("ssl.endpoint.identification.algorithm=").contains("unsupported property"));
        assert!(bad("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b").contains("GSSAPI"));
        assert!(
            bad("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN").contains("sasl.username")
        );
        assert!(bad("security.protocol=SSL\nssl.truststore.type=JKS").contains("only PEM"));
        assert!(bad("security.protocol=TLS").contains("unknown security.protocol"));
    }
}
