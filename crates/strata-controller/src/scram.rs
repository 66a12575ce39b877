//! SCRAM credentials in the metadata image, as Kafka stores them (KIP-554): per user and
//! mechanism, the salt, the iteration count, StoredKey and ServerKey (RFC 5802). Never the
//! password, nor the salted password: a copy of the metadata log lets no one log in.
//!
//! Owns: [`ScramMechanism`], [`ScramCredential`] and the two commands' transitions, called
//! by `image::apply`. Pure: the proposer (the broker's AlterUserScramCredentials handler)
//! derives the keys; every voter applies the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{ApplyError, MetadataImage};

/// Kafka's SCRAM mechanisms; the numbers are Kafka's `ScramMechanism` wire codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name, `SCRAM-SHA-256`.
    pub fn name(&self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's wire code: 1 for SHA-256, 2 for SHA-512 (0 is UNKNOWN).
    pub fn code(&self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Kafka's bounds on the iteration count: at least 4096 (RFC 7677's minimum), at most
    /// 16384.
    pub const MIN_ITERATIONS: i32 = 4096;
    pub const MAX_ITERATIONS: i32 = 16384;
}

/// One user's credential for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// User name -> mechanism -> credential.
pub type ScramCredentials = BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>;

/// Adds or replaces `user`'s credential for `mechanism`.
pub(crate) fn upsert(
    image: &mut MetadataImage,
    user: &str,
    mechanism: ScramMechanism,
    credential: &ScramCredential,
) -> Result<(), ApplyError> {
    let valid_iterations = (ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS)
        .contains(&credential.iterations);
    if user.is_empty() || !valid_iterations || credential.salt.is_empty() {
        return Err(ApplyError::InvalidScramCredential {
            user: user.to_string(),
            mechanism: mechanism.name().to_string(),
        });
    }
    image
        .scram
        .entry(user.to_string())
        .or_default()
        .insert(mechanism, credential.clone());
    Ok(())
}

/// Removes `user`'s credential for `mechanism`; the user disappears with its last one.
pub(crate) fn delete(
    image: &mut MetadataImage,
    user: &str,
    mechanism: ScramMechanism,
) -> Result<(), ApplyError> {
    let missing = || ApplyError::UnknownScramCredential {
        user: user.to_string(),
        mechanism: mechanism.name().to_string(),
    };
    let creds = image.scram.get_mut(user).ok_or_else(missing)?;
    creds.remove(&mechanism).ok_or_else(missing)?;
    if creds.is_empty() {
        image.scram.remove(user);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{apply, MetadataCommand};

    fn cred(iterations: i32) -> ScramCredential {
        ScramCredential {
            salt: vec![1, 2, 3],
            stored_key: vec![4; 32],
            server_key: vec![5; 32],
            iterations,
        }
    }

    #[test]
    fn upsert_replace_and_delete() {
        let mut image = MetadataImage::default();
        let set = |iterations| MetadataCommand::UpsertScramCredential {
            user: "alice".into(),
            mechanism: ScramMechanism::Sha256,
            credential: cred(iterations),
        };
        apply(&mut image, &set(4096)).unwrap();
        apply(&mut image, &set(8192)).unwrap();
        assert_eq!(
            image.scram["alice"][&ScramMechanism::Sha256].iterations,
            8192
        );
        assert!(matches!(
            apply(&mut image, &set(100)),
            Err(ApplyError::InvalidScramCredential { .. })
        ));
        let del = |m| MetadataCommand::DeleteScramCredential {
            user: "alice".into(),
            mechanism: m,
        };
        assert!(matches!(
            apply(&mut image, &del(ScramMechanism::Sha512)),
            Err(ApplyError::UnknownScramCredential { .. })
        ));
        apply(&mut image, &del(ScramMechanism::Sha256)).unwrap();
        assert!(image.scram.is_empty());
    }

    #[test]
    fn images_without_scram_still_load() {
        let old = r#"{"cluster_id":"c","topics":{},"broker_configs":{},"brokers":{}}"#;
        let image: MetadataImage = serde_json::from_str(old).unwrap();
        assert!(image.scram.is_empty());
        let json = serde_json::to_string(&MetadataCommand::UpsertScramCredential {
            user: "u".into(),
            mechanism: ScramMechanism::Sha512,
            credential: cred(4096),
        })
        .unwrap();
        assert!(json.contains("SCRAM-SHA-512"), "{json}");
    }
}
