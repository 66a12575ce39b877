//! OAUTHBEARER's client initial response (RFC 7628, section 3.1):
//! `n,[a=<authzid>],` `\x01` `auth=Bearer <token>` `\x01` [`key=value` `\x01`]... `\x01`.
//!
//! Only the message format lives here; checking the token (signature, issuer, audience,
//! expiry) is the broker's (`server::auth::oauth`), since it needs the JWKS.

use std::collections::BTreeMap;

use super::{utf8, SaslError};

const MECH: &str = "OAUTHBEARER";

/// A decoded initial response.
#[derive(Debug, PartialEq, Eq)]
pub struct InitialResponse {
    pub authzid: Option<String>,
    pub token: String,
    /// SASL extensions (KIP-342), by key.
    pub extensions: BTreeMap<String, String>,
}

fn malformed(reason: &str) -> SaslError {
    SaslError::Malformed {
        mechanism: MECH,
        reason: reason.to_string(),
    }
}

pub fn decode(msg: &[u8]) -> Result<InitialResponse, SaslError> {
    let text = utf8(MECH, msg)?;
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or_else(|| malformed("expected a GS2 header and \\x01"))?;
    let mut gs2 = gs2.splitn(3, ',');
    let (Some(cb), Some(authzid), Some("")) = (gs2.next(), gs2.next(), gs2.next()) else {
        return Err(malformed("bad GS2 header"));
    };
    if cb != "n" && cb != "y" {
        return Err(malformed("channel binding is not supported"));
    }
    let authzid = match authzid {
        "" => None,
        a => Some(
            a.strip_prefix("a=")
                .ok_or_else(|| malformed("bad authorization id"))?
                .to_string(),
        ),
    };
    let body = rest
        .strip_suffix("\x01\x01")
        .or_else(|| (rest == "\x01").then_some(""))
        .ok_or_else(|| malformed("expected the message to end with \\x01\\x01"))?;
    let mut token = None;
    let mut extensions = BTreeMap::new();
    for kv in body.split('\x01').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value"))?;
        if k == "auth" {
            let t = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .ok_or_else(|| malformed("auth= must be `Bearer <token>`"))?;
            if t.trim().is_empty() {
                return Err(malformed("empty token"));
            }
            token = Some(t.trim().to_string());
        } else if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()) {
            extensions.insert(k.to_string(), v.to_string());
        } else {
            return Err(malformed("bad extension key"));
        }
    }
    Ok(InitialResponse {
        authzid,
        token: token.ok_or_else(|| malformed("no auth=Bearer <token>"))?,
        extensions,
    })
}

/// The client's initial response for `token`.
pub fn encode(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_and_librdkafka_forms() {
        let d = decode(&encode("abc.def.ghi")).unwrap();
        assert_eq!(d.token, "abc.def.ghi");
        assert_eq!(d.authzid, None);
        let d = decode(b"n,a=alice,\x01host=h\x01auth=Bearer t\x01traceId=1\x01\x01").unwrap();
        assert_eq!(d.authzid.as_deref(), Some("alice"));
        assert_eq!(d.extensions["traceId"], "1");
        assert_eq!(d.token, "t");
    }

    #[test]
    fn malformed() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,\x01auth=Bearer t\x01",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01auth=Bearer  \x01\x01",
            b"p=x,,\x01auth=Bearer t\x01\x01",
            b"n,b,\x01auth=Bearer t\x01\x01",
            b"n,,\x01noequals\x01\x01",
            b"n,,\x01\x01",
            b"n,,\x011x=2\x01auth=Bearer t\x01\x01",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
