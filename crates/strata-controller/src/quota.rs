//! Client quotas in the metadata image, as Kafka keeps them (KIP-13, KIP-55, KIP-124,
//! KIP-599, KIP-612; managed with KIP-546's AlterClientQuotas): a quota entity is a user,
//! a client id, or a user and a client id, where either may be the `<default>` entity,
//! each with values for some of [`QUOTA_KEYS`]; or an IP address (or the `<default>` IP),
//! whose only key is [`IP_QUOTA_KEY`] (KIP-612: the entity types do not combine).
//!
//! Owns: [`QuotaEntity`], [`ClientQuota`] and the AlterClientQuotas transition, called by
//! `image::apply`. Pure: every voter applies the same changes to the same image. Which
//! entity's quota applies to a connection (Kafka's precedence) is the broker's business
//! (`strata::quota`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{ApplyError, MetadataImage};

/// The quota keys Strata enforces, with Kafka's names.
pub const QUOTA_KEYS: [&str; 4] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
];

/// KIP-612's per-IP quota: new connections per second from one address.
pub const IP_QUOTA_KEY: &str = "connection_creation_rate";

/// A named entity, or the default entity of its type (Kafka's `<default>`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Named(String),
}

impl std::fmt::Display for EntityName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntityName::Default => f.write_str("<default>"),
            EntityName::Named(n) => f.write_str(n),
        }
    }
}

/// `user`, `client-id`, or both; never neither.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
    /// KIP-612's `ip` entity; never with `user` or `client_id`. Absent in images written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The `ip` entity of `name` (`None`: the `<default>` IP).
    pub fn ip(name: Option<&str>) -> QuotaEntity {
        QuotaEntity {
            user: None,
            client_id: None,
            ip: Some(name.map_or(EntityName::Default, |n| EntityName::Named(n.to_string()))),
        }
    }
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = &self.ip {
            return write!(f, "ip={ip}");
        }
        match (&self.user, &self.client_id) {
            (Some(u), Some(c)) => write!(f, "user={u}, client-id={c}"),
            (Some(u), None) => write!(f, "user={u}"),
            (None, Some(c)) => write!(f, "client-id={c}"),
            (None, None) => f.write_str("(no entity)"),
        }
    }
}

/// One entity's quota values, by key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub values: BTreeMap<String, f64>,
}

/// Sets (`Some`) or removes (`None`) one value of one entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    pub key: String,
    pub value: Option<f64>,
}

/// Checks one change as AlterClientQuotas validates it; the message is the client's.
pub fn validate(change: &QuotaChange) -> Result<(), String> {
    let e = &change.entity;
    if let Some(ip) = &e.ip {
        if e.user.is_some() || e.client_id.is_some() {
            return Err("the ip entity type cannot be combined with user or client-id".into());
        }
        if let EntityName::Named(n) = ip {
            if n.parse::<std::net::IpAddr>().is_err() {
                return Err(format!("{n} is not a valid IP address"));
            }
        }
        if change.key != IP_QUOTA_KEY {
            return Err(format!(
                "invalid quota key {} for {e}; the key is {IP_QUOTA_KEY}",
                change.key
            ));
        }
    } else if e.user.is_none() && e.client_id.is_none() {
        return Err("a quota entity names a user, a client id, or both".into());
    } else if !QUOTA_KEYS.contains(&change.key.as_str()) {
        return Err(format!(
            "invalid quota key {} for {e}; the keys are {}",
            change.key,
            QUOTA_KEYS.join(", ")
        ));
    }
    match change.value {
        Some(v) if !(v.is_finite() && v > 0.0) => Err(format!(
            "quota {} of {e} must be a positive number, not {v}",
            change.key
        )),
        _ => Ok(()),
    }
}

/// AlterClientQuotas: all changes or none. An entity left with no value disappears.
pub(crate) fn alter(image: &mut MetadataImage, changes: &[QuotaChange]) -> Result<(), ApplyError> {
    for c in changes {
        validate(c).map_err(|reason| ApplyError::InvalidQuota { reason })?;
    }
    for c in changes {
        let at = image.quotas.binary_search_by(|q| q.entity.cmp(&c.entity));
        match (at, c.value) {
            (Ok(i), Some(v)) => {
                image.quotas[i].values.insert(c.key.clone(), v);
            }
            (Ok(i), None) => {
                image.quotas[i].values.remove(&c.key);
                if image.quotas[i].values.is_empty() {
                    image.quotas.remove(i);
                }
            }
            (Err(i), Some(v)) => image.quotas.insert(
                i,
                ClientQuota {
                    entity: c.entity.clone(),
                    values: BTreeMap::from([(c.key.clone(), v)]),
                },
            ),
            (Err(_), None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> QuotaEntity {
        QuotaEntity {
            user: Some(EntityName::Named(name.into())),
            client_id: None,
            ip: None,
        }
    }

    fn set(entity: QuotaEntity, key: &str, value: Option<f64>) -> QuotaChange {
        QuotaChange {
            entity,
            key: key.into(),
            value,
        }
    }

    #[test]
    fn values_are_set_and_removed_and_empty_entities_disappear() {
        let mut image = MetadataImage::default();
        alter(
            &mut image,
            &[
                set(user("bob"), "producer_byte_rate", Some(1024.0)),
                set(user("alice"), "consumer_byte_rate", Some(2048.0)),
            ],
        )
        .unwrap();
        assert_eq!(image.quotas.len(), 2);
        assert_eq!(image.quotas[0].entity, user("alice"), "kept sorted");
        alter(
            &mut image,
            &[set(user("alice"), "consumer_byte_rate", None)],
        )
        .unwrap();
        assert_eq!(image.quotas.len(), 1);
        assert_eq!(image.quotas[0].values["producer_byte_rate"], 1024.0);
    }

    #[test]
    fn a_bad_change_rejects_the_whole_request() {
        let mut image = MetadataImage::default();
        let err = alter(
            &mut image,
            &[
                set(user("bob"), "producer_byte_rate", Some(1024.0)),
                set(user("bob"), "consumer_byte_rate", Some(-1.0)),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("positive"), "{err}");
        assert!(image.quotas.is_empty());
        let none = QuotaEntity {
            user: None,
            client_id: None,
            ip: None,
        };
        assert!(validate(&set(none, "producer_byte_rate", Some(1.0))).is_err());
        assert!(validate(&set(user("a"), "connection_creation_rate", Some(1.0))).is_err());
    }

    #[test]
    fn ip_entities_take_only_connection_creation_rate_and_never_combine() {
        let rate = |e: QuotaEntity, key: &str| validate(&set(e, key, Some(5.0)));
        assert_eq!(
            rate(QuotaEntity::ip(Some("127.0.0.1")), IP_QUOTA_KEY),
            Ok(())
        );
        assert_eq!(rate(QuotaEntity::ip(Some("::1")), IP_QUOTA_KEY), Ok(()));
        assert_eq!(rate(QuotaEntity::ip(None), IP_QUOTA_KEY), Ok(()));
        assert!(rate(QuotaEntity::ip(Some("not-an-ip")), IP_QUOTA_KEY).is_err());
        assert!(rate(QuotaEntity::ip(None), "producer_byte_rate").is_err());
        let mut both = QuotaEntity::ip(None);
        both.user = Some(EntityName::Default);
        assert!(rate(both, IP_QUOTA_KEY).is_err());
        // Images written before the ip entity read back unchanged.
        let old: QuotaEntity =
            serde_json::from_str(r#"{"user":"Default","client_id":null}"#).unwrap();
        assert_eq!(old.ip, None);
        assert!(!serde_json::to_string(&user("a")).unwrap().contains("ip"));
    }
}
