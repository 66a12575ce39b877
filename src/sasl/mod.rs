//! SASL mechanisms as pure message codecs and state machines: PLAIN (RFC 4616),
//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677) and the OAUTHBEARER initial response (RFC 7628).
//!
//! Owns: parsing and building every SASL message, both sides of SCRAM (the broker's
//! `server::auth` and the admin CLI's client use the same code), and SCRAM key derivation.
//! Must never: do I/O, read a clock, draw random numbers, or know about Kafka requests;
//! nonces and credentials are handed in. Depends on `strata-controller` only for the
//! stored credential type. Error codes are chosen by `server/`.

pub mod fuzz;
pub mod oauth;
pub mod plain;
pub mod scram;

/// Why a SASL exchange failed. Messages are what the client is told, so they never say
/// whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("malformed {mechanism} message: {reason}")]
    Malformed {
        mechanism: &'static str,
        reason: String,
    },
    #[error("Authentication failed: invalid credentials with SASL mechanism {mechanism}")]
    BadCredentials { mechanism: &'static str },
    #[error("{mechanism}: {reason}")]
    Unsupported {
        mechanism: &'static str,
        reason: String,
    },
    #[error("{mechanism}: message received after the exchange finished")]
    Finished { mechanism: &'static str },
    #[error("invalid token: {reason}")]
    InvalidToken { reason: String },
}

pub(crate) fn utf8<'a>(mechanism: &'static str, bytes: &'a [u8]) -> Result<&'a str, SaslError> {
    std::str::from_utf8(bytes).map_err(|_| SaslError::Malformed {
        mechanism,
        reason: "not UTF-8".into(),
    })
}
