//! Parsing and validating one raw string value against its definition.
//!
//! Values are kept as the strings the operator wrote (trimmed), as Kafka does;
//! typed views parse them again after validation.

use crate::defs::{ConfigDef, ConfigType, Validator};
use crate::listener::parse_listeners;

/// Checks `raw` against `def`; the error is a reason that says what is allowed.
pub(crate) fn check(def: &ConfigDef, raw: &str) -> Result<(), String> {
    let raw = raw.trim();
    match def.ty {
        ConfigType::Boolean => match (parse_bool(raw), def.validator) {
            (None, _) => Err("expected true or false".to_string()),
            // A setting Strata serves one way only (`preallocate`): the other is refused.
            (Some(b), Validator::OneOf(options)) if !options.contains(&b.to_string().as_str()) => {
                Err(format!("expected {}", allowed(def)))
            }
            (Some(_), _) => Ok(()),
        },
        ConfigType::Int | ConfigType::Short | ConfigType::Long => check_integer(def, raw),
        ConfigType::Double => check_double(def, raw),
        ConfigType::String | ConfigType::Password | ConfigType::List => check_text(def, raw),
    }
}

/// What `def` allows, in words, for error messages and the reference docs.
pub(crate) fn allowed(def: &ConfigDef) -> String {
    let ty = match def.ty {
        ConfigType::Boolean => {
            return match def.validator {
                Validator::OneOf(options) => format!("only {}", options.join(" or ")),
                _ => "true or false".to_string(),
            }
        }
        ConfigType::Int => "an int",
        ConfigType::Short => "a short",
        ConfigType::Long => "a long",
        ConfigType::Double => "a number",
        ConfigType::String | ConfigType::Password => "a string",
        ConfigType::List => "a comma-separated list",
    };
    match def.validator {
        Validator::Any => ty.to_string(),
        Validator::AtLeast(min) => format!("{ty} >= {min}"),
        Validator::Between(min, max) => format!("{ty} in [{min}, {max}]"),
        Validator::DoubleBetween(min, max) => format!("{ty} in [{min}, {max}]"),
        Validator::OneOf(options) => format!("one of {}", options.join(", ")),
        Validator::ListOf(options) => {
            format!("a non-empty comma-separated list of {}", options.join(", "))
        }
        Validator::NonEmptyList => "a non-empty comma-separated list".to_string(),
        Validator::Listeners => {
            "a comma-separated list of NAME://host:port with distinct names".to_string()
        }
        Validator::ThrottledReplicas => {
            "empty, * or a comma-separated list of partition:broker".to_string()
        }
    }
}

/// Kafka's boolean parsing: `true`/`false`, any case.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("true") {
        Some(true)
    } else if raw.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The items of a comma-separated list, trimmed, empty items dropped.
pub(crate) fn list_items(raw: &str) -> Vec<&str> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn check_integer(def: &ConfigDef, raw: &str) -> Result<(), String> {
    let (lo, hi) = match def.ty {
        ConfigType::Int => (i32::MIN as i64, i32::MAX as i64),
        ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    let out_of_range = || format!("expected {}", allowed(def));
    let value: i64 = raw.parse().map_err(|_| out_of_range())?;
    if value < lo || value > hi {
        return Err(format!("{} (out of range for the type)", out_of_range()));
    }
    let ok = match def.validator {
        Validator::AtLeast(min) => value >= min,
        Validator::Between(min, max) => (min..=max).contains(&value),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(out_of_range())
    }
}

fn check_double(def: &ConfigDef, raw: &str) -> Result<(), String> {
    let expected = || format!("expected {}", allowed(def));
    let value: f64 = raw.parse().map_err(|_| expected())?;
    let ok = match def.validator {
        Validator::DoubleBetween(min, max) => value.is_finite() && (min..=max).contains(&value),
        _ => value.is_finite(),
    };
    if ok {
        Ok(())
    } else {
        Err(expected())
    }
}

fn check_text(def: &ConfigDef, raw: &str) -> Result<(), String> {
    let expected = || format!("expected {}", allowed(def));
    match def.validator {
        Validator::OneOf(options) if !options.contains(&raw) => Err(expected()),
        Validator::ListOf(options) => {
            let items = list_items(raw);
            if items.is_empty() || items.iter().any(|i| !options.contains(i)) {
                Err(expected())
            } else {
                Ok(())
            }
        }
        Validator::NonEmptyList if list_items(raw).is_empty() => Err(expected()),
        Validator::Listeners => parse_listeners(raw)
            .map(|_| ())
            .map_err(|e| format!("{e}; expected {}", allowed(def))),
        Validator::ThrottledReplicas => crate::ThrottledReplicas::parse(raw)
            .map(|_| ())
            .map_err(|e| format!("{e}; expected {}", allowed(def))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{broker_def, topic_def};

    fn topic(name: &str, raw: &str) -> Result<(), String> {
        check(topic_def(name).unwrap(), raw)
    }

    fn broker(name: &str, raw: &str) -> Result<(), String> {
        check(broker_def(name).unwrap(), raw)
    }

    #[test]
    fn integers_respect_type_and_validator() {
        assert!(topic("segment.bytes", "14").is_ok());
        assert_eq!(
            topic("segment.bytes", "13").unwrap_err(),
            "expected an int >= 14"
        );
        assert!(topic("segment.bytes", "abc").is_err());
        assert!(topic("segment.bytes", "4294967296")
            .unwrap_err()
            .contains("out of range"));
        assert!(topic("retention.ms", "-1").is_ok());
        assert!(topic("retention.ms", "-2").is_err());
        assert!(topic("local.retention.ms", "-2").is_ok());
        assert!(topic("local.retention.ms", "-3").is_err());
        assert!(topic("flush.messages", "0").is_err());
        assert!(broker("default.replication.factor", "32767").is_ok());
        assert!(broker("default.replication.factor", "32768").is_err());
        assert!(broker("default.replication.factor", "0").is_err());
        assert!(topic("retention.ms", " 1000 ").is_ok());
    }

    #[test]
    fn booleans_enums_lists_doubles() {
        assert!(topic("remote.storage.enable", "TRUE").is_ok());
        assert_eq!(
            topic("remote.storage.enable", "yes").unwrap_err(),
            "expected true or false"
        );
        assert!(topic("message.timestamp.type", "LogAppendTime").is_ok());
        let err = topic("message.timestamp.type", "logappendtime").unwrap_err();
        assert_eq!(err, "expected one of CreateTime, LogAppendTime");
        for ok in ["delete", "compact", "compact,delete", "delete, compact"] {
            assert!(topic("cleanup.policy", ok).is_ok(), "{ok}");
        }
        for bad in ["", "remove", "compact,,x"] {
            assert!(topic("cleanup.policy", bad).is_err(), "{bad}");
        }
        assert!(topic("compression.type", "zstd").is_ok());
        assert!(topic("compression.type", "brotli").is_err());
        assert!(topic("min.cleanable.dirty.ratio", "0.25").is_ok());
        assert!(topic("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(topic("min.cleanable.dirty.ratio", "NaN").is_err());
        assert!(broker("log.dirs", " , ").is_err());
        for ok in ["", "*", "0:1", "0:1, 1:2"] {
            assert!(
                topic("leader.replication.throttled.replicas", ok).is_ok(),
                "{ok}"
            );
        }
        let err = topic("follower.replication.throttled.replicas", "0-1").unwrap_err();
        assert!(err.contains("partition:broker"), "{err}");
        assert!(broker("leader.replication.throttled.rate", "-1").is_err());
        assert!(broker("follower.replication.throttled.rate", "1048576").is_ok());
    }

    #[test]
    fn listeners_are_checked() {
        assert!(broker("listeners", "PLAINTEXT://127.0.0.1:9092,INTERNAL://:9093").is_ok());
        let err = broker("listeners", "127.0.0.1:9092").unwrap_err();
        assert!(err.contains("NAME://host:port"), "{err}");
        assert!(broker("listeners", "A://h:1,A://h:2").is_err());
    }
}
