//! `ssl.principal.mapping.rules`: Kafka's `SslPrincipalMapper`. A client certificate's
//! subject DN (RFC 2253, `CN=alice,OU=eng,O=Acme`) is turned into the principal name by
//! the first rule whose pattern matches the whole DN:
//!
//! ```text
//! RULE:^CN=(.*?),OU=eng,.*$/$1/L,   ->  alice   (L: lower-case, U: upper-case)
//! DEFAULT                           ->  the DN unchanged
//! ```
//!
//! A DN that no rule matches cannot be a principal: the TLS connection is closed, as
//! Kafka refuses it. Pure; the rules are parsed once at startup.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

/// Parsed rules of one listener.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
}

impl PrincipalRules {
    /// Parses Kafka's syntax: comma-separated `DEFAULT` and `RULE:pattern/replacement/[LU]`
    /// (a comma inside a pattern or replacement belongs to it).
    pub fn parse(text: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (replacement, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Some(Case::Lower), &after[1..]),
                    Some('U') => (Some(Case::Upper), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("bad pattern {pattern}: {e}"))?;
                rules.push(Rule::Replace {
                    pattern,
                    replacement: replacement.to_string(),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("expected DEFAULT or RULE:..., found `{rest}`"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected `,` before `{rest}`")),
            }
        }
        if rules.is_empty() {
            return Err("no rule; use DEFAULT".into());
        }
        Ok(PrincipalRules { rules })
    }

    /// The principal name for `dn`, or `None` when no rule matches.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                let caps = pattern.captures(dn)?;
                let mut out = String::new();
                caps.expand(replacement, &mut out);
                Some(match case {
                    Some(Case::Lower) => out.to_lowercase(),
                    Some(Case::Upper) => out.to_uppercase(),
                    None => out,
                })
            }
        })
    }
}

/// Splits at the first unescaped `/`; `\/` stays in the text as `/`.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_examples() {
        let r = PrincipalRules::parse(r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT").unwrap();
        assert_eq!(
            r.apply("CN=kafka-1,OU=ServiceUsers,O=Org").unwrap(),
            "kafka-1"
        );
        assert_eq!(
            r.apply("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(r.apply("OU=x,cn=Bob.Smith,O=y").unwrap(), "bob.smith");
        assert_eq!(r.apply("O=only").unwrap(), "O=only");
        let strict = PrincipalRules::parse("RULE:^CN=([^,]*),O=Acme$/$1/U").unwrap();
        assert_eq!(strict.apply("CN=alice,O=Acme").unwrap(), "ALICE");
        assert_eq!(strict.apply("CN=alice,O=Other"), None);
        assert_eq!(
            PrincipalRules::parse("DEFAULT")
                .unwrap()
                .apply("CN=a")
                .unwrap(),
            "CN=a"
        );
    }

    #[test]
    fn bad_rules() {
        for bad in ["", "RULE:abc", "RULE:(/x/", "DEFAULTX", "DEFAULT RULE:a/b/"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
    }
}
