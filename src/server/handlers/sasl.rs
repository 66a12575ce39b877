//! SaslHandshake and SaslAuthenticate: the thin driver of the connection's
//! `auth::session::SaslSession`. The session decides; this file supplies what it asks for
//! (users, stored SCRAM keys from the metadata image, token checks, nonces, the clock),
//! waits `connection.failed.authentication.delay.ms` before a failure, and tells the
//! connection loop whether to close.

use std::time::Instant;

use base64::Engine;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;
use strata_controller::{MetadataImage, ScramCredential, ScramMechanism};

use super::str_bytes;
use crate::server::auth::oauth::TokenError;
use crate::server::auth::session::{AuthStep, SessionError, TokenIdentity, Verifier};
use crate::server::connection::{ConnState, Flow};
use crate::server::listener::SaslRuntime;
use crate::server::Services;

/// What a connection's SASL exchange reads from the broker.
struct BrokerVerifier<'a> {
    sasl: &'a SaslRuntime,
    image: std::sync::Arc<MetadataImage>,
}

impl Verifier for BrokerVerifier<'_> {
    fn plain_password(&self, user: &str) -> Option<String> {
        self.sasl.plain_users.get(user).cloned()
    }

    fn scram_credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
        self.image.scram.get(user)?.get(&m).cloned()
    }

    fn check_token(&self, token: &str) -> Result<TokenIdentity, String> {
        let Some(oauth) = &self.sasl.oauth else {
            return Err("OAUTHBEARER is not configured".into());
        };
        oauth
            .validate(token, self.now_ms() / 1000)
            .map_err(|e| e.to_string())
    }

    fn nonce(&self) -> String {
        let mut bytes = [0u8; 24];
        // aws-lc's generator only fails if the OS has no entropy source at all; a
        // zero nonce is then still unique enough per connection with the client's.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn now_ms(&self) -> i64 {
        crate::now_ms()
    }
}

pub fn handshake(
    services: &Services,
    st: &mut ConnState<'_>,
    req: SaslHandshakeRequest,
) -> (SaslHandshakeResponse, Flow) {
    let (Some(session), Some(sasl)) = (st.sasl.as_mut(), st.listener.sasl.as_ref()) else {
        // Kafka's answer on a listener without SASL; the connection stays usable.
        let resp = SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code());
        return (resp, Flow::Continue);
    };
    let verifier = BrokerVerifier {
        sasl,
        image: services.broker.image(),
    };
    let mechanisms = session.enabled().iter().cloned().map(str_bytes).collect();
    let resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    match session.handshake(&req.mechanism, &verifier) {
        Ok(()) => (resp, Flow::Continue),
        Err(e) => {
            tracing::info!(peer = %st.peer, listener = %st.listener.name, error = %e, "SASL handshake refused; closing");
            let code = match e {
                SessionError::UnsupportedMechanism { .. } => {
                    ResponseError::UnsupportedSaslMechanism
                }
                _ => ResponseError::IllegalSaslState,
            };
            (resp.with_error_code(code.code()), Flow::Close)
        }
    }
}

/// `version`: the request's; `session_lifetime_ms` exists from v1 (a v0 client cannot
/// learn it and its connection is simply closed when the session ends).
pub async fn authenticate(
    services: &Services,
    st: &mut ConnState<'_>,
    req: SaslAuthenticateRequest,
    version: i16,
) -> (SaslAuthenticateResponse, Flow) {
    let illegal = || {
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(str_bytes(
                "SaslAuthenticate without a SaslHandshake first",
            )))
    };
    let (Some(session), Some(sasl)) = (st.sasl.as_mut(), st.listener.sasl.clone()) else {
        return (illegal(), Flow::Continue);
    };
    // A token signed by a key we have not fetched yet: the issuer rotated its keys.
    if let Some(oauth) = &sasl.oauth {
        if let Ok(r) = crate::sasl::oauth::decode(&req.auth_bytes) {
            if let Err(TokenError::UnknownKey(_)) = oauth.validate(&r.token, crate::now_ms() / 1000)
            {
                oauth.refresh_soon().await;
            }
        }
    }
    let verifier = BrokerVerifier {
        sasl: &sasl,
        image: services.broker.image(),
    };
    match session.authenticate(&req.auth_bytes, Instant::now(), &verifier) {
        AuthStep::Challenge(bytes) => (
            SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
            Flow::Continue,
        ),
        AuthStep::Success {
            response,
            principal,
            session_lifetime_ms,
        } => {
            tracing::debug!(peer = %st.peer, listener = %st.listener.name, %principal, "authenticated");
            st.authenticated(principal);
            let resp = SaslAuthenticateResponse::default()
                .with_auth_bytes(response.into())
                .with_session_lifetime_ms(if version >= 1 { session_lifetime_ms } else { 0 });
            (resp, Flow::Continue)
        }
        AuthStep::Failure(message) => {
            tracing::info!(peer = %st.peer, listener = %st.listener.name, reason = %message, "SASL authentication failed");
            // Slows down password guessing; only this connection waits.
            tokio::time::sleep(st.failed_auth_delay).await;
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(str_bytes(message)));
            (resp, Flow::Close)
        }
        AuthStep::IllegalState => (illegal(), Flow::Close),
    }
}
