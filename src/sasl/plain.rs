//! PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL passwd`.

use super::{utf8, SaslError};

const MECH: &str = "PLAIN";

/// A decoded PLAIN message.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainMessage<'a> {
    pub authzid: &'a str,
    pub username: &'a str,
    pub password: &'a str,
}

/// Decodes a client's PLAIN message. As Kafka does, an authorization id other than the
/// user name is refused: Strata has no impersonation.
pub fn decode(msg: &[u8]) -> Result<PlainMessage<'_>, SaslError> {
    let text = utf8(MECH, msg)?;
    let malformed = |reason: &str| SaslError::Malformed {
        mechanism: MECH,
        reason: reason.to_string(),
    };
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected [authzid] NUL username NUL password"));
    };
    if username.is_empty() || password.is_empty() {
        return Err(malformed("empty username or password"));
    }
    if !authzid.is_empty() && authzid != username {
        return Err(SaslError::Unsupported {
            mechanism: MECH,
            reason: "an authorization id different from the user name is not supported".into(),
        });
    }
    Ok(PlainMessage {
        authzid,
        username,
        password,
    })
}

/// The client's message for `username`/`password`.
pub fn encode(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// Checks a decoded message against the configured password of its user, in constant
/// time for equal lengths. Returns the authenticated user name.
pub fn verify<'a>(msg: &PlainMessage<'a>, expected: Option<&str>) -> Result<&'a str, SaslError> {
    let ok = expected.is_some_and(|pw| {
        aws_lc_rs::constant_time::verify_slices_are_equal(pw.as_bytes(), msg.password.as_bytes())
            .is_ok()
    });
    if ok {
        Ok(msg.username)
    } else {
        Err(SaslError::BadCredentials { mechanism: MECH })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_verify() {
        let m = encode("alice", "s3cret");
        let d = decode(&m).unwrap();
        assert_eq!((d.username, d.password), ("alice", "s3cret"));
        assert_eq!(verify(&d, Some("s3cret")).unwrap(), "alice");
        assert!(verify(&d, Some("other")).is_err());
        assert!(verify(&d, None).is_err());
        assert_eq!(decode(b"alice\0alice\0pw").unwrap().authzid, "alice");
    }

    #[test]
    fn malformed_messages() {
        for bad in [
            &b""[..],
            b"\0alice",
            b"\0\0pw",
            b"\0a\0",
            b"x\0a\0b\0c",
            b"\0a\xff\0b",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            decode(b"bob\0alice\0pw"),
            Err(SaslError::Unsupported { .. })
        ));
    }
}
