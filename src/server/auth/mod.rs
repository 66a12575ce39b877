//! Authentication at the edge: who a connection is ([`Principal`]), TLS listeners
//! (`tls.rs`: rustls configuration, reloading, the client certificate's subject), the SASL
//! exchange of a connection (`session.rs`, a pure state machine over `crate::sasl`), and
//! OAUTHBEARER token validation against a JWKS (`oauth.rs`).
//!
//! The connection loop (`server::connection`) drives these: it reads frames, asks the
//! session whether a request may pass, and performs the I/O the session decides on. The
//! authenticated principal is put on every request's `server::Ctx`, where the authorizer
//! (`authorizer.rs`, Kafka's StandardAuthorizer rules as a pure function) reads it. Kafka error codes for what fails here are chosen in `server/`.

pub mod authorizer;
pub mod oauth;
pub mod principal_rules;
pub mod session;
pub mod tls;

use std::fmt;

/// Who is asking: Kafka's `KafkaPrincipal`, a type and a name (`User:alice`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// `User` for every principal Strata authenticates.
    pub kind: String,
    pub name: String,
}

impl Principal {
    pub const USER: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            kind: Principal::USER.to_string(),
            name: name.into(),
        }
    }

    /// Kafka's principal of an unauthenticated connection (PLAINTEXT, or SSL without a
    /// client certificate).
    pub fn anonymous() -> Principal {
        Principal::user("ANONYMOUS")
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// Why a listener could not be set up at startup; each names the file or setting.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Pem(crate::pem::PemError),
    #[error("listener {listener}: invalid TLS settings: {reason}")]
    Tls { listener: String, reason: String },
    #[error("cannot load the JWKS from {url} (sasl.oauthbearer.jwks.endpoint.url): {reason}")]
    Jwks { url: String, reason: String },
}
