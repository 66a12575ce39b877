//! The typed security view: each client listener's protocol, TLS and SASL settings, and
//! the connection limits.
//!
//! Security settings are static (a restart changes them), so they resolve as
//! `listener.name.<listener>.<name>` > `<name>` > default, without dynamic configs. A listener
//! that cannot work as configured (SSL without a keystore, PLAIN without users, OAUTHBEARER
//! without a JWKS) is an error here, at startup, never a listener that refuses everyone later.
//! Files are only named here; the server reads them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::defs::broker_def;
use crate::error::Origin;
use crate::jaas::{parse_jaas, plain_users};
use crate::listener::Listener;
use crate::value::list_items;
use crate::{ConfigError, Configs};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn uses_tls(&self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(&self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A secret that never shows in `Debug` output (logs, panics).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// TLS settings of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SslConfig {
    pub keystore_location: PathBuf,
    pub key_password: Option<Secret>,
    pub truststore_location: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// `TLSv1.2` and/or `TLSv1.3`.
    pub enabled_protocols: Vec<String>,
    /// IANA names; empty means every suite of the enabled versions.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`, unparsed (the server parses the patterns).
    pub principal_mapping_rules: String,
}

/// OAUTHBEARER token validation settings of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    /// `https://...`, `file:///path` or a plain path.
    pub jwks_url: String,
    pub jwks_refresh_ms: i64,
    pub expected_issuer: Option<String>,
    pub expected_audience: Vec<String>,
    pub sub_claim: String,
    pub clock_skew_seconds: i64,
}

/// SASL settings of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct SaslConfig {
    /// Upper-case mechanism names, in the order configured.
    pub mechanisms: Vec<String>,
    /// PLAIN users from the listener's `plain.sasl.jaas.config` (empty unless PLAIN is on).
    pub plain_users: BTreeMap<String, Secret>,
    /// Set when OAUTHBEARER is on.
    pub oauth: Option<OAuthConfig>,
    /// The `username` and `password` options of the PLAIN JAAS line: what this broker logs
    /// in with when this is the inter-broker listener (Kafka's way).
    pub plain_login: Option<(String, Secret)>,
}

/// Everything one client listener needs to serve connections.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSecurity {
    pub listener: Listener,
    pub protocol: SecurityProtocol,
    /// Set for SSL and SASL_SSL.
    pub ssl: Option<SslConfig>,
    /// Set for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslConfig>,
    /// `max.connections` for this listener.
    pub max_connections: i32,
    /// `connections.max.reauth.ms`; 0 means sessions never expire.
    pub max_reauth_ms: i64,
}

/// Broker-wide connection and security settings, and each client listener's.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// One per client listener, in `listeners` order.
    pub listeners: Vec<ListenerSecurity>,
    /// The listener replica fetchers of other brokers use.
    pub inter_broker_listener: String,
    pub max_connections: i32,
    pub max_connections_per_ip: i32,
    /// `max.connection.creation.rate` (KIP-612): new connections per second, all
    /// listeners; `i32::MAX` is unlimited.
    pub max_connection_creation_rate: i32,
    /// -1: idle connections are never closed.
    pub connections_max_idle_ms: i64,
    pub authentication_timeout_ms: i64,
    pub failed_authentication_delay_ms: i64,
    pub sasl_max_receive_size: i32,
    /// 0: never re-read the TLS files.
    pub ssl_reload_interval_ms: i64,
    /// `None` when `authorizer.class.name` is empty: no ACL checks.
    pub authorizer: Option<AuthorizerConfig>,
    /// The controller listener's TLS when its protocol is SSL (mutual TLS between voters).
    pub controller_ssl: Option<SslConfig>,
}

/// The authorizer's settings, when `authorizer.class.name` turns it on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorizerConfig {
    /// `super.users`: principals (`User:admin`) allowed everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl SecurityConfig {
    /// The settings of the client listener named `name`.
    pub fn listener(&self, name: &str) -> Option<&ListenerSecurity> {
        self.listeners.iter().find(|l| l.listener.name == name)
    }
}

/// One resolved security value: its text and the name it was set under, for errors.
struct Value {
    raw: String,
    name: String,
    origin: Origin,
}

impl Configs {
    /// A static security setting for `listener` (upper-case name), or broker-wide when
    /// `listener` is `None`: listener override > plain name > default.
    fn security_value(&self, listener: Option<&str>, name: &'static str) -> Option<Value> {
        if let Some(l) = listener {
            let key = (l.to_string(), name.to_string());
            if let Some((raw, origin)) = self.listener_statics.get(&key) {
                return Some(Value {
                    raw: raw.clone(),
                    name: format!(
                        "{}{}.{name}",
                        crate::LISTENER_PREFIX,
                        l.to_ascii_lowercase()
                    ),
                    origin: origin.clone(),
                });
            }
        }
        if let Some((raw, origin)) = self.statics.get(name) {
            return Some(Value {
                raw: raw.clone(),
                name: name.to_string(),
                origin: origin.clone(),
            });
        }
        broker_def(name).and_then(|d| d.default).map(|raw| Value {
            raw: raw.to_string(),
            name: name.to_string(),
            origin: Origin::Default,
        })
    }

    /// The security view of `listeners` (the client listeners) and `controller`.
    pub(crate) fn security(
        &self,
        listeners: &[Listener],
        controller: Option<&Listener>,
        quorum: bool,
    ) -> Result<SecurityConfig, ConfigError> {
        let map = self.protocol_map()?;
        for (listener, _) in self.listener_statics.keys() {
            let known = listeners
                .iter()
                .chain(controller)
                .any(|l| l.name == *listener);
            if !known {
                let (name, origin) = self.first_override_of(listener);
                return Err(invalid_at(
                    name,
                    "",
                    origin,
                    &format!("there is no listener named {listener} in listeners"),
                ));
            }
        }
        let controller_ssl = match controller {
            Some(c) => self.controller_ssl(&map, c)?,
            None => None,
        };
        let mut out = Vec::new();
        for l in listeners {
            out.push(self.listener_security(&map, l)?);
        }
        let inter_broker = match self.security_value(None, "inter.broker.listener.name") {
            Some(v) if !v.raw.is_empty() => {
                let name = v.raw.to_ascii_uppercase();
                if !listeners.iter().any(|l| l.name == name) {
                    return Err(invalid_at(
                        v.name,
                        &v.raw,
                        v.origin,
                        "not a client listener in listeners",
                    ));
                }
                name
            }
            _ => listeners
                .first()
                .map(|l| l.name.clone())
                .unwrap_or_default(),
        };
        if quorum {
            if let Some(l) = out.iter().find(|l| l.listener.name == inter_broker) {
                self.check_inter_broker(l)?;
            }
        }
        Ok(SecurityConfig {
            listeners: out,
            inter_broker_listener: inter_broker,
            max_connections: self.int(None, "max.connections")?,
            max_connections_per_ip: self.int(None, "max.connections.per.ip")?,
            max_connection_creation_rate: self.int(None, "max.connection.creation.rate")?,
            connections_max_idle_ms: self.int(None, "connections.max.idle.ms")?,
            authentication_timeout_ms: self.int(None, "connection.authentication.timeout.ms")?,
            failed_authentication_delay_ms: self
                .int(None, "connection.failed.authentication.delay.ms")?,
            sasl_max_receive_size: self.int(None, "sasl.server.max.receive.size")?,
            ssl_reload_interval_ms: self.int(None, "ssl.reload.interval.ms")?,
            authorizer: self.authorizer()?,
            controller_ssl,
        })
    }

    /// The controller listener: PLAINTEXT, or SSL with client certificates required, so
    /// that only nodes holding a certificate from the cluster CA reach the Raft transport.
    fn controller_ssl(
        &self,
        map: &BTreeMap<String, SecurityProtocol>,
        c: &Listener,
    ) -> Result<Option<SslConfig>, ConfigError> {
        match self.protocol_of(map, c)? {
            SecurityProtocol::Plaintext => Ok(None),
            SecurityProtocol::Ssl => {
                let ssl = self.ssl(c)?;
                if ssl.client_auth != ClientAuth::Required {
                    return Err(self.invalid("ssl.client.auth", &format!(
                        "the controller listener {} is SSL, so voters authenticate each other with certificates: set listener.name.{}.ssl.client.auth=required (and its truststore to the cluster CA)",
                        c.name, c.name.to_ascii_lowercase()
                    )));
                }
                Ok(Some(ssl))
            }
            other => Err(self.invalid("listener.security.protocol.map", &format!(
                "the controller listener {} is {}: the Raft transport speaks PLAINTEXT or SSL (mutual TLS), not SASL",
                c.name,
                other.name()
            ))),
        }
    }

    /// What other nodes' replica fetchers need to log in to the inter-broker listener.
    fn check_inter_broker(&self, l: &ListenerSecurity) -> Result<(), ConfigError> {
        let name = &l.listener.name;
        if let Some(ssl) = &l.ssl {
            if ssl.truststore_location.is_none() {
                return Err(self.invalid("ssl.truststore.location", &format!(
                    "the inter-broker listener {name} uses TLS: replica fetchers verify the leader's certificate against listener.name.{}.ssl.truststore.location (the cluster CA)",
                    name.to_ascii_lowercase()
                )));
            }
        }
        if let Some(sasl) = &l.sasl {
            let mechanism = self
                .security_value(None, "sasl.mechanism.inter.broker.protocol")
                .map(|v| v.raw.to_ascii_uppercase())
                .unwrap_or_else(|| "PLAIN".into());
            if !sasl.mechanisms.contains(&mechanism) || sasl.plain_login.is_none() {
                return Err(self.invalid("sasl.mechanism.inter.broker.protocol", &format!(
                    "the inter-broker listener {name} uses SASL: enable PLAIN on it and give its listener.name.{}.plain.sasl.jaas.config the username=\"...\" password=\"...\" this broker logs in with (Kafka's inter-broker login)",
                    name.to_ascii_lowercase()
                )));
            }
        }
        Ok(())
    }

    fn authorizer(&self) -> Result<Option<AuthorizerConfig>, ConfigError> {
        let class = self
            .security_value(None, "authorizer.class.name")
            .map(|v| v.raw)
            .unwrap_or_default();
        if class.trim().is_empty() {
            return Ok(None);
        }
        let mut super_users = Vec::new();
        if let Some(v) = self.security_value(None, "super.users") {
            for p in v.raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                match p.split_once(':') {
                    Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                        super_users.push(p.to_string())
                    }
                    _ => {
                        return Err(invalid_at(
                            v.name,
                            &v.raw,
                            v.origin,
                            &format!("{p} is not a principal of the form User:name; separate principals with ;"),
                        ))
                    }
                }
            }
        }
        let allow = self
            .security_value(None, "allow.everyone.if.no.acl.found")
            .map(|v| v.raw.trim().eq_ignore_ascii_case("true"))
            .unwrap_or(false);
        Ok(Some(AuthorizerConfig {
            super_users,
            allow_everyone_if_no_acl_found: allow,
        }))
    }

    fn listener_security(
        &self,
        map: &BTreeMap<String, SecurityProtocol>,
        l: &Listener,
    ) -> Result<ListenerSecurity, ConfigError> {
        let protocol = self.protocol_of(map, l)?;
        let name = Some(l.name.as_str());
        let ssl = if protocol.uses_tls() {
            Some(self.ssl(l)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(self.sasl(l)?)
        } else {
            None
        };
        for (listener, setting) in self.listener_statics.keys() {
            if listener == &l.name && setting.ends_with(".sasl.jaas.config") && sasl.is_none() {
                let (n, origin) = self.first_override_of(listener);
                return Err(invalid_at(
                    n,
                    "",
                    origin,
                    &format!(
                        "listener {} is {}, which does not use SASL",
                        l.name,
                        protocol.name()
                    ),
                ));
            }
        }
        Ok(ListenerSecurity {
            listener: l.clone(),
            protocol,
            ssl,
            sasl,
            max_connections: self.int(name, "max.connections")?,
            max_reauth_ms: self.int(name, "connections.max.reauth.ms")?,
        })
    }

    fn ssl(&self, l: &Listener) -> Result<SslConfig, ConfigError> {
        let name = Some(l.name.as_str());
        let text = |n| {
            self.security_value(name, n)
                .map(|v| v.raw)
                .filter(|v| !v.is_empty())
        };
        let keystore = text("ssl.keystore.location").ok_or_else(|| {
            self.invalid("ssl.keystore.location", &format!(
                "listener {} uses TLS and needs a PEM key and certificate: set ssl.keystore.location or listener.name.{}.ssl.keystore.location",
                l.name, l.name.to_ascii_lowercase()
            ))
        })?;
        let client_auth = match text("ssl.client.auth").as_deref() {
            Some("requested") => ClientAuth::Requested,
            Some("required") => ClientAuth::Required,
            _ => ClientAuth::None,
        };
        let truststore = text("ssl.truststore.location").map(PathBuf::from);
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(self.invalid("ssl.truststore.location", &format!(
                "listener {} asks for client certificates (ssl.client.auth) but has no truststore to verify them",
                l.name
            )));
        }
        let list = |n| {
            text(n)
                .map(|v| list_items(&v).iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        };
        Ok(SslConfig {
            keystore_location: PathBuf::from(keystore),
            key_password: text("ssl.key.password").map(Secret),
            truststore_location: truststore,
            client_auth,
            enabled_protocols: list("ssl.enabled.protocols"),
            cipher_suites: list("ssl.cipher.suites"),
            principal_mapping_rules: text("ssl.principal.mapping.rules")
                .unwrap_or_else(|| "DEFAULT".into()),
        })
    }

    fn sasl(&self, l: &Listener) -> Result<SaslConfig, ConfigError> {
        let name = Some(l.name.as_str());
        let mechanisms: Vec<String> = self
            .security_value(name, "sasl.enabled.mechanisms")
            .map(|v| {
                list_items(&v.raw)
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        let lower = l.name.to_ascii_lowercase();
        let mut plain = BTreeMap::new();
        let mut plain_login = None;
        for (listener, setting) in self.listener_statics.keys() {
            if listener != &l.name {
                continue;
            }
            let Some(mech) = setting.strip_suffix(".sasl.jaas.config") else {
                continue;
            };
            let (raw, origin) = &self.listener_statics[&(listener.clone(), setting.clone())];
            let full = format!("{}{lower}.{setting}", crate::LISTENER_PREFIX);
            if mech != "plain" {
                return Err(invalid_at(full, "[hidden]", origin.clone(), &format!(
                    "Strata reads JAAS only for PLAIN users; {} takes no JAAS config on the broker (SCRAM users: `strata user scram set`; OAUTHBEARER: sasl.oauthbearer.*)",
                    mech.to_ascii_uppercase()
                )));
            }
            let module = parse_jaas(raw)
                .map_err(|e| invalid_at(full.clone(), "[hidden]", origin.clone(), &e))?;
            plain = plain_users(&module)
                .map_err(|e| invalid_at(full.clone(), "[hidden]", origin.clone(), &e))?;
            plain_login = match (
                module.options.get("username"),
                module.options.get("password"),
            ) {
                (Some(u), Some(p)) => Some((u.clone(), Secret(p.clone()))),
                _ => None,
            };
        }
        if mechanisms.iter().any(|m| m == "PLAIN") && plain.is_empty() {
            return Err(self.invalid("sasl.enabled.mechanisms", &format!(
                "PLAIN is enabled on listener {} but it has no users: set listener.name.{lower}.plain.sasl.jaas.config to a PlainLoginModule with user_<name>=\"<password>\" entries",
                l.name
            )));
        }
        let oauth = if mechanisms.iter().any(|m| m == "OAUTHBEARER") {
            Some(self.oauth(l)?)
        } else {
            None
        };
        Ok(SaslConfig {
            mechanisms,
            plain_users: plain.into_iter().map(|(k, v)| (k, Secret(v))).collect(),
            oauth,
            plain_login,
        })
    }

    fn oauth(&self, l: &Listener) -> Result<OAuthConfig, ConfigError> {
        let name = Some(l.name.as_str());
        let text = |n| {
            self.security_value(name, n)
                .map(|v| v.raw)
                .filter(|v| !v.is_empty())
        };
        let jwks_url = text("sasl.oauthbearer.jwks.endpoint.url").ok_or_else(|| {
            self.invalid("sasl.oauthbearer.jwks.endpoint.url", &format!(
                "OAUTHBEARER is enabled on listener {} but no JWKS is configured to check tokens with",
                l.name
            ))
        })?;
        Ok(OAuthConfig {
            jwks_url,
            jwks_refresh_ms: self.int(name, "sasl.oauthbearer.jwks.endpoint.refresh.ms")?,
            expected_issuer: text("sasl.oauthbearer.expected.issuer"),
            expected_audience: text("sasl.oauthbearer.expected.audience")
                .map(|v| list_items(&v).iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            sub_claim: text("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
            clock_skew_seconds: self.int(name, "sasl.oauthbearer.clock.skew.seconds")?,
        })
    }

    /// `listener.security.protocol.map`, parsed.
    fn protocol_map(&self) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
        let name = "listener.security.protocol.map";
        let v = self
            .security_value(None, name)
            .ok_or_else(|| self.invalid(name, "must be set"))?;
        let mut map = BTreeMap::new();
        for item in list_items(&v.raw) {
            let parsed = item.split_once(':').and_then(|(l, p)| {
                Some((l.trim().to_ascii_uppercase(), SecurityProtocol::parse(p)?))
            });
            let Some((listener, protocol)) = parsed else {
                return Err(invalid_at(
                    v.name,
                    &v.raw,
                    v.origin,
                    &format!(
                        "`{item}` is not NAME:PROTOCOL with PROTOCOL one of {}",
                        crate::defs::SECURITY_PROTOCOLS.join(", ")
                    ),
                ));
            };
            map.insert(listener, protocol);
        }
        Ok(map)
    }

    fn protocol_of(
        &self,
        map: &BTreeMap<String, SecurityProtocol>,
        l: &Listener,
    ) -> Result<SecurityProtocol, ConfigError> {
        map.get(&l.name).copied().ok_or_else(|| {
            self.invalid("listener.security.protocol.map", &format!(
                "listener {} has no security protocol; add {}:PLAINTEXT (or SSL, SASL_PLAINTEXT, SASL_SSL)",
                l.name, l.name
            ))
        })
    }

    fn int<T: std::str::FromStr>(
        &self,
        listener: Option<&str>,
        name: &'static str,
    ) -> Result<T, ConfigError> {
        let v = self
            .security_value(listener, name)
            .ok_or_else(|| self.invalid(name, "must be set (it has no default)"))?;
        v.raw
            .trim()
            .parse()
            .map_err(|_| invalid_at(v.name, &v.raw, v.origin, "not a number in range"))
    }

    /// An error about broker setting `name`, pointing at where it was set.
    fn invalid(&self, name: &'static str, reason: &str) -> ConfigError {
        match self.security_value(None, name) {
            Some(v) => invalid_at(v.name, &v.raw, v.origin, reason),
            None => invalid_at(name.to_string(), "", Origin::Default, reason),
        }
    }

    /// The full name and origin of the first override of `listener`, for errors.
    fn first_override_of(&self, listener: &str) -> (String, Origin) {
        self.listener_statics
            .iter()
            .find(|((l, _), _)| l == listener)
            .map(|((l, s), (_, o))| {
                (
                    format!("{}{}.{s}", crate::LISTENER_PREFIX, l.to_ascii_lowercase()),
                    o.clone(),
                )
            })
            .unwrap_or_else(|| (listener.to_string(), Origin::Default))
    }
}

fn invalid_at(name: String, value: &str, origin: Origin, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
        origin,
    }
}
