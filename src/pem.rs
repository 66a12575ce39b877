//! PEM files as Kafka's `ssl.keystore.type=PEM` and `ssl.truststore.type=PEM` mean them:
//! a keystore holds a private key (PKCS#8, PKCS#1 or SEC1, or an encrypted PKCS#8 key
//! opened with `ssl.key.password`) and its certificate chain; a truststore holds CA
//! certificates. Shared by the broker's TLS listeners (`server::auth::tls`) and the
//! client (`protocol::client_security`). Reads files; knows nothing of sockets.

use std::path::{Path, PathBuf};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;

/// Why a PEM file cannot be used; names the file and the setting it came from.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The certificate chain and private key of a PEM keystore.
pub fn load_keystore(
    path: &Path,
    password: Option<&str>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PemError> {
    const WHAT: &str = "keystore (ssl.keystore.location)";
    let pem = read(WHAT, path)?;
    let bad = |reason: String| PemError::Pem {
        what: WHAT,
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("bad certificate: {e}")))?;
    if chain.is_empty() {
        return Err(bad("no CERTIFICATE section".into()));
    }
    let key = match encrypted_key(&pem) {
        Some(der) => {
            let password = password
                .ok_or_else(|| bad("the private key is encrypted; set ssl.key.password".into()))?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                .map_err(|e| bad(format!("bad ENCRYPTED PRIVATE KEY: {e}")))?;
            let doc = info.decrypt(password).map_err(|e| {
                bad(format!(
                    "cannot decrypt the private key with ssl.key.password: {e}"
                ))
            })?;
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()))
        }
        None => {
            if password.is_some() {
                return Err(bad(
                    "ssl.key.password is set but the private key is not encrypted; remove the password or encrypt the key (PKCS#8)"
                        .into(),
                ));
            }
            PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| bad(format!("no usable private key: {e}")))?
        }
    };
    Ok((chain, key))
}

/// The DER of an `ENCRYPTED PRIVATE KEY` section, which rustls' PEM reader skips.
fn encrypted_key(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ENCRYPTED PRIVATE KEY-----")?;
    let body = &text[start + "-----BEGIN ENCRYPTED PRIVATE KEY-----".len()..];
    let end = body.find("-----END ENCRYPTED PRIVATE KEY-----")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// The CA certificates of a PEM truststore.
pub fn load_roots(path: &Path) -> Result<RootCertStore, PemError> {
    const WHAT: &str = "truststore (ssl.truststore.location)";
    let pem = read(WHAT, path)?;
    let bad = |reason: String| PemError::Pem {
        what: WHAT,
        path: PathBuf::from(path),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("bad certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no CERTIFICATE section".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "nothing").unwrap();
        let err = load_keystore(&path, None).unwrap_err().to_string();
        assert!(err.contains("no CERTIFICATE"), "{err}");
        let err = load_keystore(&dir.path().join("missing.pem"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read keystore"), "{err}");
    }
}
