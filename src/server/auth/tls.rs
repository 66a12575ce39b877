//! TLS for SSL and SASL_SSL listeners, with rustls (aws-lc-rs provider).
//!
//! A [`TlsListener`] holds the listener's current `rustls::ServerConfig` behind a lock; each
//! accepted connection takes the config of the moment. [`TlsListener::reload_if_changed`]
//! rebuilds it when the keystore or truststore file changed on disk (checked every
//! `ssl.reload.interval.ms`), so a renewed certificate is served to new connections without a
//! restart; connections already open keep the session they negotiated. A file that fails to
//! load keeps the previous config and is logged, so a half-written file never takes a
//! listener down.
//!
//! Client certificates (`ssl.client.auth`) are verified by rustls' WebPKI verifier against
//! the truststore; the principal of a verified certificate is its subject distinguished
//! name in RFC 2253 form, as Kafka's default `ssl.principal.mapping.rules` gives it
//! (`User:CN=alice,OU=eng,O=Acme`).

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use strata_config::{ClientAuth, SslConfig};

use super::principal_rules::PrincipalRules;
use super::{AuthSetupError, Principal};
use crate::pem::{load_keystore, load_roots};

/// A TLS listener's configuration, reloadable.
pub struct TlsListener {
    listener: String,
    rules: PrincipalRules,
    ssl: SslConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// (modification time, length) of each file the config was built from.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl TlsListener {
    /// Loads the files and builds the first config; any problem is a startup error.
    pub fn open(listener: &str, ssl: &SslConfig) -> Result<TlsListener, AuthSetupError> {
        let config = build(listener, ssl)?;
        let rules = PrincipalRules::parse(&ssl.principal_mapping_rules).map_err(|reason| {
            AuthSetupError::Tls {
                listener: listener.to_string(),
                reason: format!("ssl.principal.mapping.rules: {reason}"),
            }
        })?;
        Ok(TlsListener {
            listener: listener.to_string(),
            rules,
            ssl: ssl.clone(),
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps(ssl)),
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Rebuilds the config if a file changed since the last (successful or failed) look.
    /// `Ok(true)` means new connections now get the new files.
    pub fn reload_if_changed(&self) -> Result<bool, AuthSetupError> {
        let now = stamps(&self.ssl);
        {
            let mut seen = self.stamps.lock();
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let config = build(&self.listener, &self.ssl)?;
        *self.current.write() = Arc::new(config);
        Ok(true)
    }

    pub fn name(&self) -> &str {
        &self.listener
    }

    /// The principal of a verified client certificate (its subject DN through
    /// `ssl.principal.mapping.rules`); `Err` names the DN no rule maps.
    pub fn principal_of(&self, cert_der: &[u8]) -> Result<Principal, String> {
        let dn = principal_from_certificate(cert_der)
            .ok_or("the client certificate cannot be parsed")?;
        self.rules
            .apply(&dn.name)
            .map(Principal::user)
            .ok_or_else(|| format!("no ssl.principal.mapping.rules rule matches {}", dn.name))
    }
}

fn stamps(ssl: &SslConfig) -> Vec<Option<(SystemTime, u64)>> {
    std::iter::once(&ssl.keystore_location)
        .chain(ssl.truststore_location.as_ref())
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The rustls server config of a listener's TLS settings (also the Raft transport's).
pub fn server_config(listener: &str, ssl: &SslConfig) -> Result<ServerConfig, AuthSetupError> {
    build(listener, ssl)
}

fn build(listener: &str, ssl: &SslConfig) -> Result<ServerConfig, AuthSetupError> {
    let tls_err = |reason: String| AuthSetupError::Tls {
        listener: listener.to_string(),
        reason,
    };
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !ssl.cipher_suites.is_empty() {
        let offered: Vec<String> = provider.cipher_suites.iter().map(suite_name).collect();
        for wanted in &ssl.cipher_suites {
            if !offered.iter().any(|o| o.eq_ignore_ascii_case(wanted)) {
                return Err(tls_err(format!(
                    "ssl.cipher.suites: unknown or unavailable suite {wanted}; available: {}",
                    offered.join(", ")
                )));
            }
        }
        provider.cipher_suites.retain(|s| {
            ssl.cipher_suites
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&suite_name(s)))
        });
    }
    let mut versions = Vec::new();
    for v in &ssl.enabled_protocols {
        match v.as_str() {
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            other => {
                return Err(tls_err(format!(
                    "ssl.enabled.protocols: {other} is not served"
                )))
            }
        }
    }
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| tls_err(format!("ssl.enabled.protocols / ssl.cipher.suites: {e}")))?;
    let builder = match (ssl.client_auth, &ssl.truststore_location) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, Some(path)) => {
            let roots = Arc::new(load_roots(path).map_err(AuthSetupError::Pem)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| tls_err(format!("ssl.truststore.location: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        // The config crate refuses client auth without a truststore.
        (_, None) => {
            return Err(tls_err(
                "ssl.client.auth needs ssl.truststore.location".into(),
            ))
        }
    };
    let (chain, key) = load_keystore(
        &ssl.keystore_location,
        ssl.key_password.as_ref().map(|p| p.0.as_str()),
    )
    .map_err(AuthSetupError::Pem)?;
    builder
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("ssl.keystore.location: {e}")))
}

/// Kafka (Java) spells TLS 1.3 suites `TLS_AES_128_GCM_SHA256`; rustls says `TLS13_...`.
fn suite_name(s: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", s.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// The principal of a verified client certificate: its subject DN in RFC 2253 order
/// (most specific first, `CN=alice,OU=eng,O=Acme,C=US`), as Java's
/// `X500Principal.getName()` prints it for Kafka.
pub fn principal_from_certificate(der: &[u8]) -> Option<Principal> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let key = x509_parser::objects::oid2abbrev(
                    atv.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(str::to_string)
                .unwrap_or_else(|_| atv.attr_type().to_id_string());
                let value = atv.as_str().map(escape_rfc2253).unwrap_or_default();
                format!("{key}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(Principal::user(rdns.join(",")))
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_subject(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn principal_is_the_rfc2253_subject() {
        let der = cert_with_subject(&[
            (rcgen::DnType::CountryName, "US"),
            (rcgen::DnType::OrganizationName, "Acme, Inc"),
            (rcgen::DnType::CommonName, "alice"),
        ]);
        let p = principal_from_certificate(&der).unwrap();
        assert_eq!(p.to_string(), "User:CN=alice,O=Acme\\, Inc,C=US");
        assert!(principal_from_certificate(b"junk").is_none());
    }
}
