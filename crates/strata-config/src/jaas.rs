//! Kafka's `sasl.jaas.config` value: one JAAS login module line.
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required
//!     username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";
//! ```
//!
//! Only the grammar Kafka's `JaasConfig` accepts for one module: a class name, a control
//! flag, `key=value` options (values quoted with `"`, `\"` and `\\` escaped, or bare words),
//! and a closing `;`. Pure parsing; which options mean what is decided by the caller.

use std::collections::BTreeMap;

/// One parsed login module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasModule {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// The class Kafka's PLAIN server reads `user_<name>` options from.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// Parses one module line; the error says what was expected where.
pub fn parse_jaas(text: &str) -> Result<JaasModule, String> {
    let mut p = Parser {
        rest: text.trim_start(),
    };
    let class = p.word().ok_or("expected a login module class name")?;
    let flag = p
        .word()
        .ok_or("expected a control flag (required, requisite, sufficient, optional)")?;
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!(
            "`{flag}` is not a control flag (required, requisite, sufficient, optional)"
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        p.skip_ws();
        if let Some(after) = p.rest.strip_prefix(';') {
            if !after.trim().is_empty() {
                return Err("only one login module is allowed; text follows the `;`".into());
            }
            break;
        }
        if p.rest.is_empty() {
            return Err("missing `;` at the end of the login module".into());
        }
        let key = p.word().ok_or("expected an option name")?;
        p.skip_ws();
        p.rest = p
            .rest
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `=` after option `{key}`"))?;
        p.skip_ws();
        let value = p.value().map_err(|e| format!("option `{key}`: {e}"))?;
        if options.insert(key.clone(), value).is_some() {
            return Err(format!("option `{key}` is given twice"));
        }
    }
    Ok(JaasModule {
        class,
        flag,
        options,
    })
}

/// The PLAIN users of a `PlainLoginModule` line: its `user_<name>` options.
pub fn plain_users(module: &JaasModule) -> Result<BTreeMap<String, String>, String> {
    if module.class != PLAIN_LOGIN_MODULE {
        return Err(format!(
            "PLAIN users come from {PLAIN_LOGIN_MODULE}, not {}",
            module.class
        ));
    }
    let users: BTreeMap<String, String> = module
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
        .filter(|(name, _)| !name.is_empty())
        .collect();
    if users.is_empty() {
        return Err("it defines no user_<name>=\"<password>\" entries".into());
    }
    Ok(users)
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// A bare word: class names, flags, option names and unquoted values.
    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == ';' || c == '"')
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(word.to_string())
    }

    fn value(&mut self) -> Result<String, String> {
        let Some(quoted) = self.rest.strip_prefix('"') else {
            return self.word().ok_or_else(|| "expected a value".to_string());
        };
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &quoted[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated quoted value".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_plain_example() {
        let m = parse_jaas(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret"
               user_admin="admin-secret" user_alice="al\"ice";"#,
        )
        .unwrap();
        assert_eq!(m.flag, "required");
        let users = plain_users(&m).unwrap();
        assert_eq!(users["admin"], "admin-secret");
        assert_eq!(users["alice"], "al\"ice");
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (bad, want) in [
            ("", "class name"),
            ("X wanted a=b;", "control flag"),
            ("X required a=\"b;", "unterminated"),
            ("X required a=b", "missing `;`"),
            ("X required a=b; Y required;", "one login module"),
            ("X required a b;", "expected `=`"),
            ("X required a=1 a=2;", "twice"),
        ] {
            let err = parse_jaas(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        let m = parse_jaas("X required user_a=b;").unwrap();
        assert!(plain_users(&m).unwrap_err().contains("PlainLoginModule"));
        let m = parse_jaas(&format!("{PLAIN_LOGIN_MODULE} required username=a;")).unwrap();
        assert!(plain_users(&m).unwrap_err().contains("no user_"));
    }
}
