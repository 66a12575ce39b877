//! OAUTHBEARER token validation (Kafka's `OAuthBearerValidatorCallbackHandler`): a JWT
//! signed by a key of the configured JWKS, with issuer, audience, `exp` and `nbf` checked
//! and the principal taken from `sasl.oauthbearer.sub.claim.name`.
//!
//! The JWKS comes from a file (`file:///path` or a path) or an `https://` URL, is loaded at
//! startup (a broker that cannot load it does not start) and again every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms`, and at once (at most once a second) when a
//! token names a key id the set does not have, so rotated keys are picked up. HTTPS uses
//! the system's CA certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
//!
//! Signatures are checked by `jsonwebtoken`; symmetric (HS*) algorithms are refused, since
//! a JWKS publishes public keys.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use strata_config::OAuthConfig;

use super::session::TokenIdentity;
use super::AuthSetupError;

/// Checks tokens against one listener's JWKS and claims settings.
pub struct TokenValidator {
    config: OAuthConfig,
    keys: RwLock<JwkSet>,
    last_fetch: Mutex<Instant>,
    http: reqwest::Client,
}

impl TokenValidator {
    /// Loads the JWKS for the first time.
    pub async fn open(config: &OAuthConfig) -> Result<TokenValidator, AuthSetupError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| jwks_error(config, e.to_string()))?;
        let keys = fetch(config, &http).await?;
        Ok(TokenValidator {
            config: config.clone(),
            keys: RwLock::new(keys),
            last_fetch: Mutex::new(Instant::now()),
            http,
        })
    }

    /// Fetches the JWKS again; on failure the old set stays and the error is returned.
    pub async fn refresh(&self) -> Result<(), AuthSetupError> {
        *self.last_fetch.lock() = Instant::now();
        let keys = fetch(&self.config, &self.http).await?;
        *self.keys.write() = keys;
        Ok(())
    }

    /// Refreshes if the last fetch is more than a second old (an unknown key id).
    pub async fn refresh_soon(&self) {
        if self.last_fetch.lock().elapsed() < Duration::from_secs(1) {
            return;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "JWKS refresh failed");
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::from_millis(self.config.jwks_refresh_ms.max(1000) as u64)
    }

    /// Validates `token` at wall-clock `now_s` (seconds since the epoch).
    pub fn validate(&self, token: &str, now_s: i64) -> Result<TokenIdentity, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| TokenError::Invalid(format!("not a JWT: {e}")))?;
        if matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(TokenError::Invalid(format!(
                "{:?} tokens are not accepted",
                header.alg
            )));
        }
        let key = {
            let keys = self.keys.read();
            let jwk = match &header.kid {
                Some(kid) => keys
                    .find(kid)
                    .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?,
                None if keys.keys.len() == 1 => &keys.keys[0],
                None => {
                    return Err(TokenError::Invalid(
                        "the token has no kid and the JWKS has several keys".into(),
                    ))
                }
            };
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                return Err(TokenError::Invalid("the JWKS key is symmetric".into()));
            }
            DecodingKey::from_jwk(jwk)
                .map_err(|e| TokenError::Invalid(format!("unusable JWKS key: {e}")))?
        };
        let mut validation = Validation::new(header.alg);
        // exp and nbf are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_aud = false;
        if let Some(iss) = &self.config.expected_issuer {
            validation.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        check_claims(&self.config, &data.claims, now_s)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token's key id {0} is not in the JWKS")]
    UnknownKey(String),
    #[error("{0}")]
    Invalid(String),
}

/// Expiry, not-before, audience and the principal claim.
fn check_claims(
    config: &OAuthConfig,
    claims: &serde_json::Value,
    now_s: i64,
) -> Result<TokenIdentity, TokenError> {
    let skew = config.clock_skew_seconds;
    let num = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    let exp = num("exp").ok_or_else(|| TokenError::Invalid("no exp claim".into()))?;
    if now_s > exp + skew {
        return Err(TokenError::Invalid(format!(
            "the token expired at {exp} (now {now_s})"
        )));
    }
    if let Some(nbf) = num("nbf") {
        if now_s + skew < nbf {
            return Err(TokenError::Invalid(format!(
                "the token is not valid before {nbf} (now {now_s})"
            )));
        }
    }
    if !config.expected_audience.is_empty() {
        let aud: Vec<&str> = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        if !aud
            .iter()
            .any(|a| config.expected_audience.iter().any(|e| e == a))
        {
            return Err(TokenError::Invalid(format!(
                "the token's audience {aud:?} is not one of {:?}",
                config.expected_audience
            )));
        }
    }
    let principal = claims
        .get(&config.sub_claim)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            TokenError::Invalid(format!(
                "no {} claim to name the principal",
                config.sub_claim
            ))
        })?;
    Ok(TokenIdentity {
        principal: principal.to_string(),
        expires_at_ms: exp.saturating_mul(1000),
    })
}

fn jwks_error(config: &OAuthConfig, reason: String) -> AuthSetupError {
    AuthSetupError::Jwks {
        url: config.jwks_url.clone(),
        reason,
    }
}

async fn fetch(config: &OAuthConfig, http: &reqwest::Client) -> Result<JwkSet, AuthSetupError> {
    let url = config.jwks_url.as_str();
    let body = if url.starts_with("https://") {
        let resp = http.get(url).send().await.map_err(|e| {
            jwks_error(config, format!("{e} ({:?})", std::error::Error::source(&e)))
        })?;
        if !resp.status().is_success() {
            return Err(jwks_error(config, format!("HTTP status {}", resp.status())));
        }
        resp.bytes()
            .await
            .map_err(|e| jwks_error(config, e.to_string()))?
            .to_vec()
    } else if url.starts_with("http://") {
        return Err(jwks_error(
            config,
            "use https:// or a file; plain http would let anyone on the path forge keys".into(),
        ));
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        tokio::fs::read(path)
            .await
            .map_err(|e| jwks_error(config, e.to_string()))?
    };
    let set: JwkSet = serde_json::from_slice(&body)
        .map_err(|e| jwks_error(config, format!("not a JWKS: {e}")))?;
    if set.keys.is_empty() {
        return Err(jwks_error(config, "the JWKS has no keys".into()));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OAuthConfig {
        OAuthConfig {
            jwks_url: "unused".into(),
            jwks_refresh_ms: 3_600_000,
            expected_issuer: Some("https://issuer".into()),
            expected_audience: vec!["kafka".into()],
            sub_claim: "sub".into(),
            clock_skew_seconds: 30,
        }
    }

    /// An EC P-256 key (rcgen), its JWKS file, and a signer of tokens with `claims`.
    fn keys(dir: &std::path::Path) -> (OAuthConfig, impl Fn(&str, serde_json::Value) -> String) {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let key = rcgen::KeyPair::generate().unwrap();
        let point = key.public_key_raw().to_vec(); // 0x04 || X || Y
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der());
        let sign = move |kid: &str, claims: serde_json::Value| {
            let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
            header.kid = Some(kid.to_string());
            jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
        };
        let config = OAuthConfig {
            jwks_url: path.display().to_string(),
            ..config()
        };
        (config, sign)
    }

    #[tokio::test]
    async fn signatures_are_checked_against_the_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let (config, sign) = keys(dir.path());
        let v = TokenValidator::open(&config).await.unwrap();
        let claims = serde_json::json!({"sub": "alice", "iss": "https://issuer", "aud": "kafka", "exp": 2_000});
        let good = sign("k1", claims.clone());
        assert_eq!(v.validate(&good, 1_000).unwrap().principal, "alice");
        assert_eq!(
            v.validate(&sign("k2", claims.clone()), 1_000),
            Err(TokenError::UnknownKey("k2".into()))
        );
        let wrong_issuer = sign(
            "k1",
            serde_json::json!({"sub": "a", "iss": "https://evil", "aud": "kafka", "exp": 2_000}),
        );
        assert!(v.validate(&wrong_issuer, 1_000).is_err());
        // A flipped signature byte, and an HMAC token "signed" with the public key.
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(v
            .validate(std::str::from_utf8(&tampered).unwrap(), 1_000)
            .is_err());
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"k").unwrap(),
        )
        .unwrap();
        let err = v.validate(&hs, 1_000).unwrap_err().to_string();
        assert!(err.contains("not accepted"), "{err}");
        assert!(v.validate("not-a-jwt", 1_000).is_err());
    }

    #[test]
    fn claims_checks() {
        let c = config();
        let ok = serde_json::json!({"sub": "alice", "exp": 1000, "aud": ["x", "kafka"]});
        assert_eq!(check_claims(&c, &ok, 900).unwrap().principal, "alice");
        assert_eq!(
            check_claims(&c, &ok, 1020).unwrap().expires_at_ms,
            1_000_000
        );
        let err = check_claims(&c, &ok, 1031).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
        let early = serde_json::json!({"sub": "a", "exp": 1000, "nbf": 500, "aud": "kafka"});
        assert!(check_claims(&c, &early, 400)
            .unwrap_err()
            .to_string()
            .contains("not valid before"));
        let wrong_aud = serde_json::json!({"sub": "a", "exp": 1000, "aud": "other"});
        assert!(check_claims(&c, &wrong_aud, 0)
            .unwrap_err()
            .to_string()
            .contains("audience"));
        let no_sub = serde_json::json!({"exp": 1000, "aud": "kafka"});
        assert!(check_claims(&c, &no_sub, 0)
            .unwrap_err()
            .to_string()
            .contains("no sub claim"));
    }
}
