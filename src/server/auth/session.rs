//! The SASL state of one connection on a SASL_PLAINTEXT or SASL_SSL listener, as a pure
//! state machine: it decides from (state, request, now) and never touches the socket.
//!
//! ```text
//! AwaitHandshake --SaslHandshake(m)--> Authenticating(m) --SaslAuthenticate...--> Authenticated
//!       ^                                   |  (failure: Failed, the driver closes)     |
//!       +------------ SaslHandshake again (KIP-368 re-authentication) ------------------+
//! ```
//!
//! Before the first success only ApiVersions, SaslHandshake and SaslAuthenticate pass
//! ([`SaslSession::admit`]); anything else closes the connection, as Kafka's
//! `IllegalSaslStateException` does. With `connections.max.reauth.ms` set, a success
//! gives a session lifetime (capped by an OAUTHBEARER token's expiry); a request after
//! it, other than the re-authentication itself, closes the connection. A
//! re-authentication must keep the mechanism and the principal.
//!
//! What the session needs from the broker (passwords, stored SCRAM keys, token checks,
//! nonces, the wall clock) comes through [`Verifier`], so tests script it.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use strata_controller::{ScramCredential, ScramMechanism};

use super::Principal;
use crate::sasl::scram::{ScramServer, ServerStep};
use crate::sasl::{oauth, plain, SaslError};

/// A checked OAUTHBEARER token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub principal: String,
    /// Expiry, wall-clock milliseconds.
    pub expires_at_ms: i64,
}

/// What the session asks of the broker.
pub trait Verifier {
    fn plain_password(&self, user: &str) -> Option<String>;
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
    /// Validates a bearer token (signature, issuer, audience, expiry).
    fn check_token(&self, token: &str) -> Result<TokenIdentity, String>;
    /// A fresh random SCRAM server nonce.
    fn nonce(&self) -> String;
    /// Wall-clock milliseconds (token lifetimes).
    fn now_ms(&self) -> i64;
}

/// Why a request may not pass; the driver closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("{api:?} before SASL authentication finished (ILLEGAL_SASL_STATE)")]
    NotAuthenticated { api: ApiKey },
    #[error("the SASL session of {principal} expired and was not re-authenticated")]
    Expired { principal: Principal },
    #[error("{0:?} is not expected now (ILLEGAL_SASL_STATE)")]
    IllegalState(ApiKey),
    #[error("SASL mechanism {requested} is not enabled on this listener (enabled: {enabled})")]
    UnsupportedMechanism { requested: String, enabled: String },
    #[error("re-authentication must use mechanism {expected}, not {requested}")]
    MechanismChanged { expected: String, requested: String },
}

/// The outcome of one SaslAuthenticate.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send these bytes (a challenge) and wait for the next SaslAuthenticate.
    Challenge(Vec<u8>),
    /// Authenticated: send `response` with `session_lifetime_ms` (0: no limit).
    Success {
        response: Vec<u8>,
        principal: Principal,
        session_lifetime_ms: i64,
    },
    /// Answer SASL_AUTHENTICATION_FAILED with this message (after
    /// `connection.failed.authentication.delay.ms`) and close.
    Failure(String),
    /// Not in an exchange: answer ILLEGAL_SASL_STATE and close.
    IllegalState,
}

#[derive(Debug, Clone)]
struct Authenticated {
    principal: Principal,
    mechanism: String,
    /// When the session ends; `None` for no limit.
    ends: Option<Instant>,
}

enum Exchange {
    Plain,
    // Boxed: the SCRAM state is ~230 bytes, the others nothing.
    Scram(Box<ScramServer>),
    OAuth,
}

enum State {
    AwaitHandshake,
    Authenticating {
        mechanism: String,
        exchange: Exchange,
    },
    Authenticated,
    Failed,
}

/// One connection's SASL state.
pub struct SaslSession {
    enabled: Vec<String>,
    max_reauth: Option<Duration>,
    state: State,
    /// The last successful authentication; kept during a re-authentication.
    current: Option<Authenticated>,
}

impl SaslSession {
    /// `enabled`: the listener's mechanisms, upper-case; `max_reauth_ms` 0: no limit.
    pub fn new(enabled: Vec<String>, max_reauth_ms: i64) -> SaslSession {
        SaslSession {
            enabled,
            max_reauth: (max_reauth_ms > 0).then(|| Duration::from_millis(max_reauth_ms as u64)),
            state: State::AwaitHandshake,
            current: None,
        }
    }

    /// The authenticated principal, once there is one.
    pub fn principal(&self) -> Option<&Principal> {
        self.current.as_ref().map(|a| &a.principal)
    }

    pub fn is_authenticated(&self) -> bool {
        self.current.is_some()
    }

    /// Whether a request of `api` (other than SaslHandshake/SaslAuthenticate) may be served.
    pub fn admit(&self, api: ApiKey, now: Instant) -> Result<(), SessionError> {
        if api == ApiKey::ApiVersions {
            return Ok(());
        }
        match &self.current {
            None => Err(SessionError::NotAuthenticated { api }),
            Some(a) if a.ends.is_some_and(|end| now >= end) => Err(SessionError::Expired {
                principal: a.principal.clone(),
            }),
            Some(_) => Ok(()),
        }
    }

    /// SaslHandshake: starts an exchange with `mechanism`. An error is answered with its
    /// code (UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE) and the connection closed.
    pub fn handshake(
        &mut self,
        mechanism: &str,
        verifier: &dyn Verifier,
    ) -> Result<(), SessionError> {
        match self.state {
            State::AwaitHandshake | State::Authenticated => {}
            State::Authenticating { .. } | State::Failed => {
                self.state = State::Failed;
                return Err(SessionError::IllegalState(ApiKey::SaslHandshake));
            }
        }
        let Some(mechanism) = self
            .enabled
            .iter()
            .find(|m| m.eq_ignore_ascii_case(mechanism))
            .cloned()
        else {
            self.state = State::Failed;
            return Err(SessionError::UnsupportedMechanism {
                requested: mechanism.to_string(),
                enabled: self.enabled.join(","),
            });
        };
        if let Some(current) = &self.current {
            if current.mechanism != mechanism {
                self.state = State::Failed;
                return Err(SessionError::MechanismChanged {
                    expected: current.mechanism.clone(),
                    requested: mechanism,
                });
            }
        }
        let exchange = match ScramMechanism::from_name(&mechanism) {
            Some(m) => Exchange::Scram(Box::new(ScramServer::new(m, verifier.nonce()))),
            None if mechanism == "PLAIN" => Exchange::Plain,
            None => Exchange::OAuth,
        };
        self.state = State::Authenticating {
            mechanism,
            exchange,
        };
        Ok(())
    }

    /// The mechanisms enabled on the listener (for SaslHandshake answers).
    pub fn enabled(&self) -> &[String] {
        &self.enabled
    }

    /// SaslAuthenticate with the client's `bytes`.
    pub fn authenticate(
        &mut self,
        bytes: &[u8],
        now: Instant,
        verifier: &dyn Verifier,
    ) -> AuthStep {
        let State::Authenticating {
            mechanism,
            mut exchange,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return AuthStep::IllegalState;
        };
        let done = match &mut exchange {
            Exchange::Plain => plain::decode(bytes)
                .and_then(|m| {
                    let expected = verifier.plain_password(m.username);
                    plain::verify(&m, expected.as_deref()).map(str::to_string)
                })
                .map(|user| (user, Vec::new(), None)),
            Exchange::Scram(server) => match server.step(bytes, |u| {
                ScramMechanism::from_name(&mechanism).and_then(|m| verifier.scram_credential(u, m))
            }) {
                Ok(ServerStep::Challenge(c)) => {
                    self.state = State::Authenticating {
                        mechanism,
                        exchange,
                    };
                    return AuthStep::Challenge(c);
                }
                Ok(ServerStep::Done { user, response }) => Ok((user, response, None)),
                Err(e) => Err(e),
            },
            Exchange::OAuth => oauth::decode(bytes).and_then(|r| {
                let id = verifier
                    .check_token(&r.token)
                    .map_err(|reason| SaslError::InvalidToken { reason })?;
                Ok((id.principal, Vec::new(), Some(id.expires_at_ms)))
            }),
        };
        let (user, response, token_expiry_ms) = match done {
            Ok(d) => d,
            Err(e) => return AuthStep::Failure(e.to_string()),
        };
        let principal = Principal::user(user);
        if let Some(current) = &self.current {
            if current.principal != principal {
                return AuthStep::Failure(format!(
                    "re-authentication must keep the principal {}, not {principal}",
                    current.principal
                ));
            }
        }
        let lifetime = self.max_reauth.map(|max| match token_expiry_ms {
            Some(exp) => max.min(Duration::from_millis(
                (exp - verifier.now_ms()).max(0) as u64
            )),
            None => max,
        });
        self.current = Some(Authenticated {
            principal: principal.clone(),
            mechanism,
            ends: lifetime.map(|l| now + l),
        });
        self.state = State::Authenticated;
        AuthStep::Success {
            response,
            principal,
            session_lifetime_ms: lifetime.map_or(0, |l| l.as_millis() as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::scram::{credential, ScramClient};

    struct Fake {
        now_ms: i64,
    }

    impl Verifier for Fake {
        fn plain_password(&self, user: &str) -> Option<String> {
            (user == "alice").then(|| "alice-secret".to_string())
        }
        fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            (user == "bob").then(|| credential(m, "bob-secret", b"salt", 4096))
        }
        fn check_token(&self, token: &str) -> Result<TokenIdentity, String> {
            match token {
                "good" => Ok(TokenIdentity {
                    principal: "carol".into(),
                    expires_at_ms: self.now_ms + 5_000,
                }),
                _ => Err("signature does not verify".into()),
            }
        }
        fn nonce(&self) -> String {
            "servernonce".into()
        }
        fn now_ms(&self) -> i64 {
            self.now_ms
        }
    }

    fn mechs() -> Vec<String> {
        ["PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn nothing_but_api_versions_before_authentication() {
        let s = SaslSession::new(mechs(), 0);
        let now = Instant::now();
        assert!(s.admit(ApiKey::ApiVersions, now).is_ok());
        assert!(matches!(
            s.admit(ApiKey::Metadata, now),
            Err(SessionError::NotAuthenticated { .. })
        ));
    }

    #[test]
    fn plain_success_and_failure() {
        let v = Fake { now_ms: 0 };
        let now = Instant::now();
        let mut s = SaslSession::new(mechs(), 0);
        s.handshake("plain", &v).unwrap();
        let step = s.authenticate(&plain::encode("alice", "alice-secret"), now, &v);
        assert!(
            matches!(
                step,
                AuthStep::Success {
                    session_lifetime_ms: 0,
                    ..
                }
            ),
            "{step:?}"
        );
        assert_eq!(s.principal().unwrap().to_string(), "User:alice");
        assert!(s
            .admit(ApiKey::Produce, now + Duration::from_secs(3600))
            .is_ok());

        let mut s = SaslSession::new(mechs(), 0);
        s.handshake("PLAIN", &v).unwrap();
        let step = s.authenticate(&plain::encode("alice", "nope"), now, &v);
        assert!(
            matches!(step, AuthStep::Failure(ref m) if m.contains("Authentication failed")),
            "{step:?}"
        );
        assert_eq!(s.authenticate(b"again", now, &v), AuthStep::IllegalState);
        assert!(s.admit(ApiKey::Produce, now).is_err());
    }

    #[test]
    fn unsupported_mechanism_and_out_of_order_messages() {
        let v = Fake { now_ms: 0 };
        let mut s = SaslSession::new(mechs(), 0);
        assert_eq!(
            s.authenticate(b"x", Instant::now(), &v),
            AuthStep::IllegalState
        );
        let mut s = SaslSession::new(mechs(), 0);
        assert!(matches!(
            s.handshake("GSSAPI", &v),
            Err(SessionError::UnsupportedMechanism { .. })
        ));
        let mut s = SaslSession::new(mechs(), 0);
        s.handshake("PLAIN", &v).unwrap();
        assert!(matches!(
            s.handshake("PLAIN", &v),
            Err(SessionError::IllegalState(_))
        ));
    }

    #[test]
    fn scram_exchange_then_reauthentication_extends_the_session() {
        let v = Fake { now_ms: 0 };
        let t0 = Instant::now();
        let mut s = SaslSession::new(mechs(), 10_000);
        let login = |s: &mut SaslSession, now: Instant, pw: &str| {
            s.handshake("SCRAM-SHA-256", &v).unwrap();
            let mut client = ScramClient::new(ScramMechanism::Sha256, "bob", pw, "cnonce".into());
            let AuthStep::Challenge(first) = s.authenticate(&client.client_first(), now, &v) else {
                panic!("expected a challenge")
            };
            let fin = client.client_final(&first).unwrap();
            s.authenticate(&fin, now, &v)
        };
        let step = login(&mut s, t0, "bob-secret");
        assert!(
            matches!(
                step,
                AuthStep::Success {
                    session_lifetime_ms: 10_000,
                    ..
                }
            ),
            "{step:?}"
        );
        let late = t0 + Duration::from_secs(11);
        assert!(matches!(
            s.admit(ApiKey::Fetch, late),
            Err(SessionError::Expired { .. })
        ));
        // Re-authenticating (before or after the end) starts a new session.
        let t1 = t0 + Duration::from_secs(9);
        assert!(matches!(
            login(&mut s, t1, "bob-secret"),
            AuthStep::Success { .. }
        ));
        assert!(s.admit(ApiKey::Fetch, late).is_ok());
        assert!(s
            .admit(ApiKey::Fetch, t1 + Duration::from_secs(10))
            .is_err());
        // A re-authentication with another mechanism is refused.
        assert!(matches!(
            s.handshake("PLAIN", &v),
            Err(SessionError::MechanismChanged { .. })
        ));
    }

    #[test]
    fn reauthentication_cannot_change_the_principal() {
        let v = Fake { now_ms: 0 };
        let now = Instant::now();
        let mut s = SaslSession::new(mechs(), 0);
        s.handshake("PLAIN", &v).unwrap();
        s.authenticate(&plain::encode("alice", "alice-secret"), now, &v);
        s.current.as_mut().unwrap().principal = Principal::user("mallory");
        s.handshake("PLAIN", &v).unwrap();
        let step = s.authenticate(&plain::encode("alice", "alice-secret"), now, &v);
        assert!(
            matches!(step, AuthStep::Failure(ref m) if m.contains("keep the principal")),
            "{step:?}"
        );
    }

    #[test]
    fn oauth_session_ends_with_the_token() {
        let v = Fake { now_ms: 1_000 };
        let now = Instant::now();
        let mut s = SaslSession::new(mechs(), 60_000);
        s.handshake("OAUTHBEARER", &v).unwrap();
        let step = s.authenticate(&oauth::encode("good"), now, &v);
        assert!(
            matches!(
                step,
                AuthStep::Success {
                    session_lifetime_ms: 5_000,
                    ..
                }
            ),
            "{step:?}"
        );
        assert_eq!(s.principal().unwrap().name, "carol");

        let mut s = SaslSession::new(mechs(), 0);
        s.handshake("OAUTHBEARER", &v).unwrap();
        let step = s.authenticate(&oauth::encode("forged"), now, &v);
        assert!(
            matches!(step, AuthStep::Failure(ref m) if m.contains("invalid token")),
            "{step:?}"
        );
    }
}
