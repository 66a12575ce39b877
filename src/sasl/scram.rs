//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), both sides, without channel
//! binding (Kafka's `n,,` GS2 header).
//!
//! ```text
//! client-first  n,,n=<user>,r=<cnonce>
//! server-first  r=<cnonce><snonce>,s=<base64 salt>,i=<iterations>
//! client-final  c=biws,r=<cnonce><snonce>,p=<base64 ClientProof>
//! server-final  v=<base64 ServerSignature>
//! ```
//!
//! The keys: SaltedPassword = PBKDF2-HMAC(password, salt, i); ClientKey = HMAC(SaltedPassword,
//! "Client Key"); StoredKey = H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").
//! The broker keeps only salt, i, StoredKey and ServerKey ([`ScramCredential`]). Primitives
//! come from aws-lc-rs (already rustls' provider here); nothing is hand-rolled.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use strata_controller::{ScramCredential, ScramMechanism};

use super::{utf8, SaslError};

fn algorithms(
    m: ScramMechanism,
) -> (
    pbkdf2::Algorithm,
    hmac::Algorithm,
    &'static digest::Algorithm,
) {
    match m {
        ScramMechanism::Sha256 => (
            pbkdf2::PBKDF2_HMAC_SHA256,
            hmac::HMAC_SHA256,
            &digest::SHA256,
        ),
        ScramMechanism::Sha512 => (
            pbkdf2::PBKDF2_HMAC_SHA512,
            hmac::HMAC_SHA512,
            &digest::SHA512,
        ),
    }
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(algorithms(m).1, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    digest::digest(algorithms(m).2, data).as_ref().to_vec()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Hi(password, salt, i): what a client (or `AlterUserScramCredentials`) derives.
pub fn salted_password(m: ScramMechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let (alg, _, d) = algorithms(m);
    let mut out = vec![0u8; d.output_len()];
    let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(alg, iterations, salt, password.as_bytes(), &mut out);
    out
}

/// The stored credential for a salted password (Kafka's `ScramFormatter`).
pub fn credential_from_salted(
    m: ScramMechanism,
    salted: &[u8],
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let client_key = hmac(m, salted, b"Client Key");
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: hash(m, &client_key),
        server_key: hmac(m, salted, b"Server Key"),
        iterations,
    }
}

/// The stored credential for a password.
pub fn credential(
    m: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let salted = salted_password(m, password, salt, iterations.max(1) as u32);
    credential_from_salted(m, &salted, salt, iterations)
}

/// RFC 5802's `saslname`: `=` and `,` are escaped.
fn decode_name(mech: &'static str, raw: &str) -> Result<String, SaslError> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed(mech, "bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn malformed(mechanism: &'static str, reason: &str) -> SaslError {
    SaslError::Malformed {
        mechanism,
        reason: reason.to_string(),
    }
}

/// A decoded client-first message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `n,a=<authzid>,` (or `y,...`): echoed, base64, in client-final's `c=`.
    pub gs2_header: String,
    pub username: String,
    pub nonce: String,
    /// Everything after the GS2 header: part of the AuthMessage.
    pub bare: String,
}

/// Decodes a client-first message.
pub fn decode_client_first(m: ScramMechanism, msg: &[u8]) -> Result<ClientFirst, SaslError> {
    let mech = m.name();
    let text = utf8(mech, msg)?;
    let mut parts = text.splitn(3, ',');
    let (Some(cb), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(
            mech,
            "expected a GS2 header and client-first-bare",
        ));
    };
    match cb {
        "n" | "y" => {}
        c if c.starts_with("p=") => {
            return Err(SaslError::Unsupported {
                mechanism: mech,
                reason: "channel binding is not supported".into(),
            })
        }
        _ => return Err(malformed(mech, "bad channel binding flag")),
    }
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(malformed(mech, "bad authorization id"));
    }
    let mut fields = bare.split(',');
    let username = match fields.next() {
        Some(n) if n.starts_with("n=") && n.len() > 2 => decode_name(mech, &n[2..])?,
        _ => return Err(malformed(mech, "expected n=<user>")),
    };
    let nonce = match fields.next() {
        Some(r) if r.starts_with("r=") && r.len() > 2 => r[2..].to_string(),
        _ => return Err(malformed(mech, "expected r=<nonce>")),
    };
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(malformed(
            mech,
            "nonce has characters outside printable ASCII",
        ));
    }
    for ext in fields {
        // Kafka's only extension is delegation tokens, which Strata does not issue.
        if ext.starts_with("m=") || ext.starts_with("tokenauth=") {
            return Err(SaslError::Unsupported {
                mechanism: mech,
                reason: format!("extension {ext} is not supported"),
            });
        }
    }
    if let Some(a) = authzid.strip_prefix("a=") {
        if decode_name(mech, a)? != username {
            return Err(SaslError::Unsupported {
                mechanism: mech,
                reason: "an authorization id different from the user name is not supported".into(),
            });
        }
    }
    Ok(ClientFirst {
        gs2_header: format!("{cb},{authzid},"),
        username,
        nonce,
        bare: bare.to_string(),
    })
}

/// A decoded client-final message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The message up to `,p=`: part of the AuthMessage.
    pub without_proof: String,
}

pub fn decode_client_final(m: ScramMechanism, msg: &[u8]) -> Result<ClientFinal, SaslError> {
    let mech = m.name();
    let text = utf8(mech, msg)?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or_else(|| malformed(mech, "expected ,p=<proof>"))?;
    let mut fields = without_proof.split(',');
    let channel_binding = match fields.next().and_then(|c| c.strip_prefix("c=")) {
        Some(c) => B64
            .decode(c)
            .map_err(|_| malformed(mech, "c= is not base64"))?,
        None => return Err(malformed(mech, "expected c=<channel binding>")),
    };
    let nonce = match fields.next().and_then(|r| r.strip_prefix("r=")) {
        Some(r) => r.to_string(),
        None => return Err(malformed(mech, "expected r=<nonce>")),
    };
    let proof = B64
        .decode(proof)
        .map_err(|_| malformed(mech, "p= is not base64"))?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof: without_proof.to_string(),
    })
}

/// What the server does next.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerStep {
    /// Send this challenge and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response` (server-final) with the success.
    Done { user: String, response: Vec<u8> },
}

/// The broker's side of one exchange. Feed each client message to [`ScramServer::step`].
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: ServerState,
}

enum ServerState {
    First,
    Final {
        first: ClientFirst,
        server_first: String,
        credential: ScramCredential,
    },
    Done,
}

impl ScramServer {
    /// `server_nonce` must be fresh and random (printable ASCII, no comma).
    pub fn new(mechanism: ScramMechanism, server_nonce: String) -> ScramServer {
        ScramServer {
            mechanism,
            server_nonce,
            state: ServerState::First,
        }
    }

    /// Handles the next client message; `lookup` finds a user's stored credential. An
    /// unknown user fails like a wrong password.
    pub fn step(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<ServerStep, SaslError> {
        let m = self.mechanism;
        let mech = m.name();
        match std::mem::replace(&mut self.state, ServerState::Done) {
            ServerState::First => {
                let first = decode_client_first(m, msg)?;
                let credential =
                    lookup(&first.username).ok_or(SaslError::BadCredentials { mechanism: mech })?;
                let server_first = format!(
                    "r={}{},s={},i={}",
                    first.nonce,
                    self.server_nonce,
                    B64.encode(&credential.salt),
                    credential.iterations
                );
                let challenge = server_first.clone().into_bytes();
                self.state = ServerState::Final {
                    first,
                    server_first,
                    credential,
                };
                Ok(ServerStep::Challenge(challenge))
            }
            ServerState::Final {
                first,
                server_first,
                credential,
            } => {
                let fin = decode_client_final(m, msg)?;
                if fin.channel_binding != first.gs2_header.as_bytes() {
                    return Err(malformed(
                        mech,
                        "channel binding does not match the GS2 header",
                    ));
                }
                if fin.nonce != format!("{}{}", first.nonce, self.server_nonce) {
                    return Err(malformed(mech, "nonce does not match"));
                }
                let auth_message = format!("{},{},{}", first.bare, server_first, fin.without_proof);
                let signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
                if fin.proof.len() != signature.len() {
                    return Err(SaslError::BadCredentials { mechanism: mech });
                }
                let client_key = xor(&fin.proof, &signature);
                constant_time::verify_slices_are_equal(
                    &hash(m, &client_key),
                    &credential.stored_key,
                )
                .map_err(|_| SaslError::BadCredentials { mechanism: mech })?;
                let server_signature = hmac(m, &credential.server_key, auth_message.as_bytes());
                Ok(ServerStep::Done {
                    user: first.username,
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            ServerState::Done => Err(SaslError::Finished { mechanism: mech }),
        }
    }
}

/// The client's side (used by the admin CLI).
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    nonce: String,
    first_bare: String,
    auth_message: Option<String>,
    salted: Vec<u8>,
}

impl ScramClient {
    /// `nonce` must be fresh and random (printable ASCII, no comma).
    pub fn new(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        nonce: String,
    ) -> ScramClient {
        ScramClient {
            mechanism,
            password: password.to_string(),
            first_bare: format!("n={},r={nonce}", encode_name(user)),
            nonce,
            auth_message: None,
            salted: Vec::new(),
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// Answers the server-first message with client-final.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        let m = self.mechanism;
        let mech = m.name();
        let text = utf8(mech, server_first)?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in text.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = B64.decode(v).ok();
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = v.parse::<u32>().ok();
            } else if let Some(e) = field.strip_prefix("e=") {
                return Err(SaslError::Unsupported {
                    mechanism: mech,
                    reason: e.to_string(),
                });
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(malformed(mech, "server-first lacks r=, s= or i="));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(malformed(mech, "the server's nonce does not extend ours"));
        }
        if iterations < ScramMechanism::MIN_ITERATIONS as u32 {
            return Err(malformed(mech, "fewer than 4096 iterations"));
        }
        self.salted = salted_password(m, &self.password, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let client_key = hmac(m, &self.salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let proof = xor(&client_key, &hmac(m, &stored_key, auth_message.as_bytes()));
        self.auth_message = Some(auth_message);
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proves it knows our credential too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let m = self.mechanism;
        let mech = m.name();
        let text = utf8(mech, server_final)?;
        let auth = self
            .auth_message
            .as_ref()
            .ok_or(SaslError::Finished { mechanism: mech })?;
        let got = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| malformed(mech, "expected v=<signature>"))?;
        let server_key = hmac(m, &self.salted, b"Server Key");
        constant_time::verify_slices_are_equal(&got, &hmac(m, &server_key, auth.as_bytes()))
            .map_err(|_| SaslError::BadCredentials { mechanism: mech })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: user "user", password "pencil".
    const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = B64.decode(RFC7677_SALT).unwrap();
        credential(ScramMechanism::Sha256, "pencil", &salt, 4096)
    }

    #[test]
    fn rfc7677_server_side() {
        let mut server = ScramServer::new(ScramMechanism::Sha256, SERVER_NONCE.into());
        let step = server
            .step(CLIENT_FIRST.as_bytes(), |u| {
                (u == "user").then(rfc_credential)
            })
            .unwrap();
        assert_eq!(
            step,
            ServerStep::Challenge(SERVER_FIRST.as_bytes().to_vec())
        );
        let step = server.step(CLIENT_FINAL.as_bytes(), |_| None).unwrap();
        assert_eq!(
            step,
            ServerStep::Done {
                user: "user".into(),
                response: SERVER_FINAL.as_bytes().to_vec()
            }
        );
        assert!(matches!(
            server.step(b"again", |_| None),
            Err(SaslError::Finished { .. })
        ));
    }

    #[test]
    fn rfc7677_client_side() {
        let mut client = ScramClient::new(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(client.client_first(), CLIENT_FIRST.as_bytes());
        let fin = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(fin, CLIENT_FINAL.as_bytes());
        client.verify_server_final(SERVER_FINAL.as_bytes()).unwrap();
        assert!(client.verify_server_final(b"v=AAAA").is_err());
    }

    fn exchange(
        m: ScramMechanism,
        stored: &ScramCredential,
        password: &str,
    ) -> Result<String, SaslError> {
        let mut client = ScramClient::new(m, "a=b,c", password, "clientnonce".into());
        let mut server = ScramServer::new(m, "servernonce".into());
        let ServerStep::Challenge(first) = server.step(&client.client_first(), |u| {
            (u == "a=b,c").then(|| stored.clone())
        })?
        else {
            panic!("expected a challenge");
        };
        let fin = client.client_final(&first)?;
        match server.step(&fin, |_| None)? {
            ServerStep::Done { user, response } => {
                client.verify_server_final(&response)?;
                Ok(user)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sha512_and_sha256_round_trip_with_escaped_names() {
        for m in ScramMechanism::ALL {
            let stored = credential(m, "secret", b"salty", 4096);
            assert_eq!(exchange(m, &stored, "secret").unwrap(), "a=b,c");
            assert_eq!(
                exchange(m, &stored, "wrong"),
                Err(SaslError::BadCredentials {
                    mechanism: m.name()
                })
            );
        }
    }

    #[test]
    fn unknown_user_and_bad_messages() {
        let mut s = ScramServer::new(ScramMechanism::Sha256, "x".into());
        assert!(matches!(
            s.step(CLIENT_FIRST.as_bytes(), |_| None),
            Err(SaslError::BadCredentials { .. })
        ));
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=,r=x",
            b"n,,n=u",
            b"p=tls-unique,,n=u,r=x",
            b"q,,n=u,r=x",
            b"n,,n=u=ZZ,r=x",
            b"n,a=other,n=u,r=x",
            b"n,,n=u,r=x,m=ext",
            b"n,,n=u,r=x,tokenauth=true",
            b"n,,n=u,r=a\x01b",
        ] {
            let mut s = ScramServer::new(ScramMechanism::Sha512, "x".into());
            assert!(s.step(bad, |_| Some(rfc_credential())).is_err(), "{bad:?}");
        }
        // A final message with the wrong nonce or channel binding.
        for fin in [
            "c=biws,r=rOprNGfwEbeRWgbNEkqOWRONG,p=AAAA",
            "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
        ] {
            let mut s = ScramServer::new(ScramMechanism::Sha256, SERVER_NONCE.into());
            s.step(CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
                .unwrap();
            assert!(s.step(fin.as_bytes(), |_| None).is_err(), "{fin}");
        }
    }
}
