//! `NAME://host:port` listeners, as in Kafka's `listeners` and `advertised.listeners`.
//!
//! Parsing a listener list is value parsing, like a boolean or a list: it
//! depends on nothing else in the crate. [`crate::value`] uses it to validate a
//! `Validator::Listeners` setting, and [`crate::typed`] to build
//! [`crate::BrokerConfig`]'s listeners.

use std::fmt;

/// One listener: `PLAINTEXT://127.0.0.1:9092`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The listener name, upper-cased (`PLAINTEXT`).
    pub name: String,
    /// Host name or IP; empty means all interfaces. IPv6 without brackets.
    pub host: String,
    /// 0 means an ephemeral port chosen at bind time.
    pub port: u16,
}

impl Listener {
    /// Whether the host is a bind-everything address that clients cannot use.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host.as_str(), "" | "0.0.0.0" | "::")
    }

    /// `host:port` for binding a socket (IPv6 in brackets).
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.socket_addr())
    }
}

/// Parses a comma-separated listener list; names must be distinct.
pub(crate) fn parse_listeners(raw: &str) -> Result<Vec<Listener>, String> {
    let mut listeners: Vec<Listener> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let listener = parse_listener(item)?;
        if listeners.iter().any(|l| l.name == listener.name) {
            return Err(format!("listener name {} is used twice", listener.name));
        }
        listeners.push(listener);
    }
    if listeners.is_empty() {
        return Err("no listener given".to_string());
    }
    Ok(listeners)
}

fn parse_listener(item: &str) -> Result<Listener, String> {
    let (name, address) = item
        .split_once("://")
        .ok_or_else(|| format!("`{item}` has no NAME:// prefix"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("`{item}` has an invalid listener name `{name}`"));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{item}` has no :port"))?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("`{item}` has an unclosed `[`"))?,
        None if host.contains(':') => {
            return Err(format!("`{item}`: put an IPv6 host in brackets"))
        }
        None => host,
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{item}` has an invalid port `{port}`"))?;
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_forms() {
        let ls =
            parse_listeners("PLAINTEXT://127.0.0.1:9092, internal://:0,V6://[::1]:9093").unwrap();
        assert_eq!(
            ls[0],
            Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(
            ls[1],
            Listener {
                name: "INTERNAL".into(),
                host: "".into(),
                port: 0
            }
        );
        assert_eq!(ls[2].host, "::1");
        assert_eq!(ls[2].to_string(), "V6://[::1]:9093");
        assert!(ls[1].is_wildcard());
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "localhost:9092",
            "P://host",
            "P://host:99999",
            "P://::1:9092",
            "P://[::1:9092",
            "P Q://h:1",
        ] {
            assert!(parse_listeners(bad).is_err(), "{bad}");
        }
        assert!(parse_listeners("A://h:1,a://h:2")
            .unwrap_err()
            .contains("twice"));
    }
}
