//! Listener, TLS, SASL and connection-limit settings, under Kafka's names.
//!
//! Settings marked `per_listener` may also be written as `listener.name.<listener>.<name>`
//! (`listener.name.sasl_ssl.ssl.keystore.location`), which wins on that listener. SASL JAAS
//! configs exist only in that form with a mechanism between listener and name, as in Kafka:
//! `listener.name.<listener>.plain.sasl.jaas.config`.

use super::{ConfigDef, ConfigType::*, Importance::*, Validator::*, BASE};

/// Kafka's security protocols, the values of `listener.security.protocol.map`.
pub const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The SASL mechanisms Strata serves. Kafka's default, GSSAPI (Kerberos), is not one.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

const STORE_TYPES: &[&str] = &["PEM"];
const CLIENT_AUTH: &[&str] = &["none", "requested", "required"];
const TLS_VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// `authorizer.class.name` values: off, Kafka's StandardAuthorizer, or its short name.
pub const AUTHORIZERS: &[&str] = &[
    "",
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "strata",
];
const INT_MAX: &str = "2147483647";

pub(super) const SECURITY: &[ConfigDef] = &[
    // --- listeners -------------------------------------------------------------
    ConfigDef { name: "listener.security.protocol.map", ty: List,
        default: Some("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        validator: NonEmptyList, importance: Low,
        doc: "Listener name to security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), as NAME:PROTOCOL,...; every listener in listeners must be mapped.",
        ..BASE },
    ConfigDef { name: "inter.broker.listener.name", ty: String, importance: Medium,
        doc: "The listener other brokers' replica fetchers connect to; unset means the first client listener. SSL: fetchers present ssl.keystore.location as their client certificate and verify the leader against ssl.truststore.location; SASL: they log in with PLAIN as the username/password of the listener's plain.sasl.jaas.config.",
        ..BASE },
    ConfigDef { name: "sasl.mechanism.inter.broker.protocol", ty: String, default: Some("PLAIN"), validator: OneOf(&["PLAIN"]),
        importance: Medium,
        doc: "The SASL mechanism replica fetchers log in with on a SASL inter-broker listener. Strata: PLAIN only (Kafka's default, GSSAPI, is not served), with the username and password options of that listener's PlainLoginModule line.",
        ..BASE },
    // --- authorization --------------------------------------------------------
    ConfigDef { name: "authorizer.class.name", ty: String, default: Some(""), validator: OneOf(AUTHORIZERS), importance: Low,
        doc: "Turns ACL checks on: org.apache.kafka.metadata.authorizer.StandardAuthorizer (Kafka's KRaft authorizer, whose semantics Strata implements; the short form strata also works). Empty: every principal may do everything.",
        ..BASE },
    ConfigDef { name: "super.users", ty: String, default: Some(""), importance: Medium,
        doc: "Principals the authorizer allows everything, whatever the ACLs say: semicolon-separated, User:admin;User:CN=broker-1. Give the inter-broker principal this (or CLUSTER_ACTION on the cluster) so followers may fetch.",
        ..BASE },
    ConfigDef { name: "allow.everyone.if.no.acl.found", ty: Boolean, default: Some("false"), importance: Medium,
        doc: "With an authorizer on: whether a resource that no ACL pattern covers is open to everyone (true) or to super users only (false).",
        ..BASE },
    // --- connection limits ----------------------------------------------------
    ConfigDef { name: "max.connections", ty: Int, default: Some(INT_MAX), validator: AtLeast(0), importance: Medium,
        per_listener: true,
        doc: "Most connections the broker (or, as listener.name.<l>.max.connections, one listener) holds open; further connections are closed at once.",
        ..BASE },
    ConfigDef { name: "max.connections.per.ip", ty: Int, default: Some(INT_MAX), validator: AtLeast(0), importance: Medium,
        doc: "Most connections from one IP address; further connections from it are closed at once.",
        ..BASE },
    ConfigDef { name: "max.connection.creation.rate", ty: Int, default: Some(INT_MAX), validator: AtLeast(0), importance: Medium,
        doc: "Most new connections per second the broker accepts over all listeners (KIP-612); over it, listeners stop accepting for the throttle time and clients wait in the TCP backlog. Per IP address, the connection_creation_rate quota of the ip entity (strata quota set --ip).",
        ..BASE },
    ConfigDef { name: "connections.max.idle.ms", ty: Long, default: Some("600000"), validator: AtLeast(-1), importance: Medium,
        doc: "A connection that sends no request for this long is closed; -1 never closes idle connections.",
        ..BASE },
    ConfigDef { name: "connection.authentication.timeout.ms", ty: Long, default: Some("10000"), validator: AtLeast(1),
        importance: Medium,
        doc: "Strata: on SSL and SASL listeners, time from accept until the TLS handshake and SASL authentication are done; a connection still unauthenticated then is closed, so idle unauthenticated connections cannot pile up.",
        ..BASE },
    ConfigDef { name: "connection.failed.authentication.delay.ms", ty: Int, default: Some("100"), validator: AtLeast(0),
        importance: Low,
        doc: "How long a failed authentication waits before its SASL_AUTHENTICATION_FAILED answer and the close, to slow password guessing.",
        ..BASE },
    // --- TLS ------------------------------------------------------------------
    ConfigDef { name: "ssl.keystore.type", ty: String, default: Some("PEM"), validator: OneOf(STORE_TYPES), importance: Medium,
        per_listener: true,
        doc: "Format of ssl.keystore.location; Strata reads PEM only (Kafka's default is JKS).",
        ..BASE },
    ConfigDef { name: "ssl.keystore.location", ty: String, importance: High, per_listener: true,
        doc: "PEM file with this broker's private key (PKCS#8, PKCS#1 or SEC1; encrypted PKCS#8 with ssl.key.password) and certificate chain; needed on SSL and SASL_SSL listeners. Re-read when it changes (ssl.reload.interval.ms).",
        ..BASE },
    ConfigDef { name: "ssl.key.password", ty: Password, importance: High, per_listener: true,
        doc: "Password of an encrypted private key (ENCRYPTED PRIVATE KEY) in ssl.keystore.location.",
        ..BASE },
    ConfigDef { name: "ssl.truststore.type", ty: String, default: Some("PEM"), validator: OneOf(STORE_TYPES), importance: Medium,
        per_listener: true,
        doc: "Format of ssl.truststore.location; Strata reads PEM only (Kafka's default is JKS).",
        ..BASE },
    ConfigDef { name: "ssl.truststore.location", ty: String, importance: High, per_listener: true,
        doc: "PEM file of the CA certificates that client certificates must chain to; needed when ssl.client.auth is requested or required.",
        ..BASE },
    ConfigDef { name: "ssl.client.auth", ty: String, default: Some("none"), validator: OneOf(CLIENT_AUTH), importance: Medium,
        per_listener: true,
        doc: "Client certificates: none, requested (verified if sent) or required. A verified certificate's subject DN, mapped by ssl.principal.mapping.rules, is the principal (User:CN=...,O=...) unless SASL names one.",
        ..BASE },
    ConfigDef { name: "ssl.principal.mapping.rules", ty: String, default: Some("DEFAULT"), importance: Low,
        per_listener: true,
        doc: "How a client certificate's subject DN becomes the principal name: Kafka's comma-separated RULE:pattern/replacement/[LU] and DEFAULT (the whole DN); a DN no rule matches is refused.",
        ..BASE },
    ConfigDef { name: "ssl.enabled.protocols", ty: List, default: Some("TLSv1.2,TLSv1.3"), validator: ListOf(TLS_VERSIONS),
        importance: Medium, per_listener: true,
        doc: "TLS versions accepted.",
        ..BASE },
    ConfigDef { name: "ssl.cipher.suites", ty: List, default: Some(""), importance: Low, per_listener: true,
        doc: "IANA names of the cipher suites accepted (TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, ...); empty means every suite of the enabled TLS versions that rustls offers.",
        ..BASE },
    ConfigDef { name: "ssl.reload.interval.ms", ty: Long, default: Some("60000"), validator: AtLeast(0), importance: Low,
        doc: "Strata: how often the key, certificate and truststore files are checked for changes; changed files are loaded for new connections without a restart (0: never).",
        ..BASE },
    // --- SASL -----------------------------------------------------------------
    ConfigDef { name: "sasl.enabled.mechanisms", ty: List, default: Some("SCRAM-SHA-256,SCRAM-SHA-512"),
        validator: ListOf(SASL_MECHANISMS), importance: Medium, per_listener: true,
        doc: "SASL mechanisms served on SASL_PLAINTEXT and SASL_SSL listeners. Kafka's default, GSSAPI, is not available, hence Strata's default.",
        ..BASE },
    ConfigDef { name: "sasl.jaas.config", ty: Password, importance: Medium,
        doc: "Only as listener.name.<listener>.plain.sasl.jaas.config: Kafka's PlainLoginModule line, whose user_<name>=\"<password>\" entries are the PLAIN users of that listener (passwords in clear, as Kafka keeps them).",
        ..BASE },
    ConfigDef { name: "sasl.server.max.receive.size", ty: Int, default: Some("524288"), validator: AtLeast(1), importance: Low,
        doc: "Largest SASL token accepted before authentication; a larger frame closes the connection.",
        ..BASE },
    ConfigDef { name: "connections.max.reauth.ms", ty: Long, default: Some("0"), validator: AtLeast(0), importance: Medium,
        per_listener: true,
        doc: "KIP-368: the longest session a SASL authentication gives; the client must re-authenticate before it ends or the connection is closed (0: sessions never end).",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.jwks.endpoint.url", ty: String, importance: Medium, per_listener: true,
        doc: "Where OAUTHBEARER token keys come from: an https:// URL or a file (file:///path or a plain path) holding a JWKS. Needed when OAUTHBEARER is enabled.",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.jwks.endpoint.refresh.ms", ty: Long, default: Some("3600000"), validator: AtLeast(1000),
        importance: Low, per_listener: true,
        doc: "How often the JWKS is fetched again; a token naming an unknown key id also triggers a fetch (at most once a second).",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.expected.issuer", ty: String, importance: Medium, per_listener: true,
        doc: "The iss claim a token must carry; unset means any.",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.expected.audience", ty: List, importance: Medium, per_listener: true,
        doc: "A token's aud claim must contain one of these; unset means any.",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.sub.claim.name", ty: String, default: Some("sub"), importance: Low, per_listener: true,
        doc: "The claim whose value becomes the principal name (User:<value>).",
        ..BASE },
    ConfigDef { name: "sasl.oauthbearer.clock.skew.seconds", ty: Int, default: Some("30"), validator: AtLeast(0),
        importance: Low, per_listener: true,
        doc: "Clock difference tolerated when checking a token's exp and nbf.",
        ..BASE },
];
