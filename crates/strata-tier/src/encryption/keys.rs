//! Master keys: the named 256-bit keys that wrap each object's data key.
//!
//! They come from `remote.storage.encryption.key.file`, one key a line:
//!
//! ```text
//! # comments and blank lines are ignored
//! k2026-01=q0vRh0G3m0W8J1Nf9t9fB2m0c6kPjJm1HnX2u0Yl8aQ=
//! k2026-06=2bOQmUu8wNc5oQ3nP8m9Cj1xv5y4l9T0r6e1Ww7zZkA=
//! ```
//!
//! The id (1 to 64 of `A-Z a-z 0-9 . _ -`) is written into every object's header; the
//! value is the base64 of 32 random bytes. The key named by
//! `remote.storage.encryption.key.id`, or else the last line, wraps the data keys of
//! new objects; every key in the file unwraps. Rotation is therefore adding a line
//! (and restarting): objects written under an older key name it and stay readable as
//! long as its line stays.
//!
//! Errors name the file and line, never key material. Raw key bytes are zeroed once
//! the AES key schedule is built.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Result, TierError};

/// Longest master key id: the header keeps a fixed-size field for it.
pub const MAX_KEY_ID: usize = 64;
/// A data key wrapped by a master key: 32 bytes of key and a 16-byte GCM tag.
pub const WRAPPED_LEN: usize = 32 + 16;

/// The master keys of a broker; `Debug` shows the ids only.
pub struct MasterKeys {
    keys: HashMap<String, LessSafeKey>,
    active: String,
    /// Where they came from, for messages.
    source: PathBuf,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("MasterKeys")
            .field("source", &self.source)
            .field("active", &self.active)
            .field("ids", &ids)
            .finish()
    }
}

/// Why a wrapped data key could not be opened.
#[derive(Debug, PartialEq, Eq)]
pub enum UnwrapError {
    /// No key of that id.
    Unknown,
    /// The GCM tag does not verify: another key under the same id, or a changed header.
    Authentication,
}

impl MasterKeys {
    /// Reads `path`; `active` picks the key for new objects (default: the last line).
    pub fn load(path: &Path, active: Option<&str>) -> Result<MasterKeys> {
        let err = |reason: String| TierError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?,
        );
        warn_if_readable_by_others(path);
        MasterKeys::parse(&text, path, active)
    }

    /// Parses the text of a key file (see the module docs); `source` is for messages.
    pub fn parse(text: &str, source: &Path, active: Option<&str>) -> Result<MasterKeys> {
        let err = |reason: String| TierError::KeyFile {
            path: source.to_path_buf(),
            reason,
        };
        let mut keys = HashMap::new();
        let mut last = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: &str| err(format!("line {}: {what}", n + 1));
            let (id, value) = line
                .split_once('=')
                .ok_or_else(|| at("expected id=base64key"))?;
            let (id, value) = (id.trim(), value.trim());
            check_id(id).map_err(|reason| at(&reason))?;
            let raw = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .map_err(|_| at("the key is not valid base64"))?,
            );
            if raw.len() != 32 {
                return Err(at(&format!(
                    "the key is {} bytes, not 32 (generate one with `openssl rand -base64 32`)",
                    raw.len()
                )));
            }
            let key =
                UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| at("not a usable AES-256 key"))?;
            if keys.insert(id.to_string(), LessSafeKey::new(key)).is_some() {
                return Err(at(&format!("key id '{id}' appears twice")));
            }
            last = Some(id.to_string());
        }
        let active = match active {
            Some(id) if keys.contains_key(id) => id.to_string(),
            Some(id) => {
                return Err(err(format!(
                    "remote.storage.encryption.key.id is '{id}', which the file does not hold"
                )))
            }
            None => last.ok_or_else(|| err("holds no key".to_string()))?,
        };
        Ok(MasterKeys {
            keys,
            active,
            source: source.to_path_buf(),
        })
    }

    /// Keys given directly (tests and benchmarks): `(id, key)`, the active one last
    /// unless `active` names another.
    pub fn from_keys(keys: &[(&str, [u8; 32])], active: Option<&str>) -> Result<MasterKeys> {
        let text: String = keys
            .iter()
            .map(|(id, k)| {
                format!(
                    "{id}={}\n",
                    base64::engine::general_purpose::STANDARD.encode(k)
                )
            })
            .collect();
        let text = Zeroizing::new(text);
        MasterKeys::parse(&text, Path::new("<in memory>"), active)
    }

    /// The id of the key that wraps new data keys.
    pub fn active_id(&self) -> &str {
        &self.active
    }

    /// Every id, sorted.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// Wraps `data_key` under the active key with a random nonce, binding `aad`.
    /// Returns (key id, nonce, wrapped key).
    pub(crate) fn wrap(
        &self,
        data_key: &[u8; 32],
        aad: &[u8],
    ) -> Result<([u8; NONCE_LEN], [u8; WRAPPED_LEN]), aws_lc_rs::error::Unspecified> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or(aws_lc_rs::error::Unspecified)?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)?;
        let mut out = [0u8; WRAPPED_LEN];
        out[..32].copy_from_slice(data_key);
        let tag = key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[..32],
        )?;
        out[32..].copy_from_slice(tag.as_ref());
        Ok((nonce, out))
    }

    /// Opens a data key wrapped by [`MasterKeys::wrap`] under key `id`.
    pub(crate) fn unwrap(
        &self,
        id: &str,
        nonce: [u8; NONCE_LEN],
        wrapped: &[u8; WRAPPED_LEN],
        aad: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, UnwrapError> {
        let key = self.keys.get(id).ok_or(UnwrapError::Unknown)?;
        let mut buf = Zeroizing::new(*wrapped);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[..],
            )
            .map_err(|_| UnwrapError::Authentication)?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(plain);
        Ok(out)
    }
}

/// A new line for a key file: `id=` and the base64 of 32 bytes from the system's
/// CSPRNG (what `openssl rand -base64 32` gives).
pub fn new_key_line(id: &str) -> Result<String> {
    let err = |reason: String| TierError::KeyFile {
        path: PathBuf::from("<new key>"),
        reason,
    };
    check_id(id).map_err(err)?;
    let mut raw = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| err("no random bytes".into()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw[..]);
    Ok(format!("{id}={b64}\n"))
}

/// A key id is written into object headers: short, printable, no `=`.
fn check_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_KEY_ID {
        return Err(format!("key id must be 1 to {MAX_KEY_ID} characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "key id '{id}' may only hold letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Master keys readable by group or others are worth a warning, not a refusal: the
/// operator may have reasons (a secrets mount with its own access control).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "remote.storage.encryption.key.file is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(k: [u8; 32]) -> String {
        base64::engine::general_purpose::STANDARD.encode(k)
    }

    #[test]
    fn parses_ids_and_picks_the_last_or_the_named_key() {
        let text = format!(
            "# master keys\n\nold={}\n  new = {}  \n",
            b64([1; 32]),
            b64([2; 32])
        );
        let keys = MasterKeys::parse(&text, Path::new("k"), None).expect("parse");
        assert_eq!(keys.active_id(), "new");
        assert_eq!(keys.ids(), ["new", "old"]);
        let keys = MasterKeys::parse(&text, Path::new("k"), Some("old")).expect("parse");
        assert_eq!(keys.active_id(), "old");
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(&b64([1; 32])), "no key material in Debug");
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_no_key_material() {
        let cases = [
            ("", "holds no key"),
            ("# only a comment\n", "holds no key"),
            ("novalue\n", "line 1: expected id=base64key"),
            ("a=!!!\n", "line 1: the key is not valid base64"),
            (
                &format!(
                    "a={}\n",
                    base64::engine::general_purpose::STANDARD.encode([1u8; 16])
                ),
                "16 bytes, not 32",
            ),
            (&format!("a b={}\n", b64([1; 32])), "may only hold"),
            (
                &format!("a={}\na={}\n", b64([1; 32]), b64([2; 32])),
                "line 2: key id 'a' appears twice",
            ),
        ];
        for (text, want) in cases {
            let err = MasterKeys::parse(text, Path::new("/etc/k"), None)
                .expect_err(text)
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("/etc/k"), "names the file: {err}");
        }
        let text = format!("a={}\n", b64([7; 32]));
        let err = MasterKeys::parse(&text, Path::new("k"), Some("b")).expect_err("unknown id");
        assert!(err.to_string().contains("'b'"), "{err}");
        assert!(!err.to_string().contains(&b64([7; 32])));
    }

    #[test]
    fn new_key_lines_parse_and_differ() {
        let a = new_key_line("a").expect("a");
        let b = new_key_line("b").expect("b");
        assert_ne!(a[2..], b[2..], "fresh random keys");
        let keys = MasterKeys::parse(&(a + &b), Path::new("k"), None).expect("parse");
        assert_eq!((keys.ids(), keys.active_id()), (vec!["a", "b"], "b"));
        assert!(new_key_line("bad id").is_err());
    }

    #[test]
    fn wrap_and_unwrap_round_trip_and_bind_the_aad() {
        let keys = MasterKeys::from_keys(&[("a", [1; 32]), ("b", [2; 32])], None).expect("keys");
        let dk = [9u8; 32];
        let (nonce, wrapped) = keys.wrap(&dk, b"path/x").expect("wrap");
        assert_eq!(
            *keys.unwrap("b", nonce, &wrapped, b"path/x").expect("open"),
            dk
        );
        assert_eq!(
            keys.unwrap("b", nonce, &wrapped, b"path/y").map(|_| ()),
            Err(UnwrapError::Authentication)
        );
        assert_eq!(
            keys.unwrap("a", nonce, &wrapped, b"path/x").map(|_| ()),
            Err(UnwrapError::Authentication)
        );
        assert_eq!(
            keys.unwrap("c", nonce, &wrapped, b"path/x").map(|_| ()),
            Err(UnwrapError::Unknown)
        );
    }
}
