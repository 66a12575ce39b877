//! Whom the console speaks for. With a SASL_PLAINTEXT listener the console asks the
//! browser for a user name and password (HTTP basic auth) and logs in to that listener
//! with them, for every Kafka request a page makes, so the broker's ACLs apply to the page
//! as to any client of that user. A request without credentials gets 401; so does one
//! whose credentials the broker refuses (see `super::failed`). Nothing is cached: each
//! page connects and authenticates anew.
//!
//! The credentials travel from the middleware to `Console::connection` in a task-local:
//! a page's handler runs inside the middleware's future, and every Kafka connection a
//! page opens (to the listener and to partition leaders) takes them from there.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use strata_config::{ListenerSecurity, SecurityProtocol};
use strata_controller::ScramMechanism;

use super::Console;
use crate::cli::PresetSecurity;
use crate::protocol::client_security::{ClientSasl, ClientSecurity};

/// How the console logs in to a SASL listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    Plain,
    Scram(ScramMechanism),
}

/// The listener the console reads the cluster through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some` for a SASL_PLAINTEXT listener: pages need the user's credentials.
    pub login: Option<Login>,
}

impl Target {
    /// The first SASL_PLAINTEXT listener with PLAIN or SCRAM (the first of those in its
    /// `sasl.enabled.mechanisms`), else the first PLAINTEXT one: once SASL is on, the
    /// console speaks for its users even if an unauthenticated listener remains. `addrs`
    /// are the listeners' bound addresses, in the same order. TLS listeners are not used
    /// (the console would need the cluster's truststore and a host name to verify).
    pub fn choose(listeners: &[ListenerSecurity], addrs: &[SocketAddr]) -> Option<Target> {
        let sasl = listeners.iter().zip(addrs).find_map(|(l, a)| {
            if l.protocol != SecurityProtocol::SaslPlaintext {
                return None;
            }
            let login = l.sasl.as_ref()?.mechanisms.iter().find_map(|m| {
                if m == "PLAIN" {
                    Some(Login::Plain)
                } else {
                    ScramMechanism::from_name(m).map(Login::Scram)
                }
            })?;
            Some(Target {
                addr: *a,
                login: Some(login),
            })
        });
        sasl.or_else(|| {
            listeners
                .iter()
                .zip(addrs)
                .find(|(l, _)| l.protocol == SecurityProtocol::Plaintext)
                .map(|(_, a)| Target {
                    addr: *a,
                    login: None,
                })
        })
    }
}

tokio::task_local! {
    /// The security of the Kafka connections of the page being served.
    static USER: PresetSecurity;
}

/// The current page's user, when the console speaks for one.
pub(super) fn current() -> Option<PresetSecurity> {
    USER.try_with(Clone::clone).ok()
}

/// `user:password` of an `Authorization: Basic` header.
fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    (!u.is_empty()).then(|| (u.to_string(), p.to_string()))
}

fn security(login: Login, username: String, password: String) -> ClientSecurity {
    let sasl = match login {
        Login::Plain => ClientSasl::Plain { username, password },
        Login::Scram(mechanism) => ClientSasl::Scram {
            mechanism,
            username,
            password,
        },
    };
    ClientSecurity {
        protocol: SecurityProtocol::SaslPlaintext,
        tls: None,
        sasl: Some(sasl),
    }
}

/// The 401 that makes a browser ask for credentials.
pub(super) fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"Strata console\", charset=\"UTF-8\"",
        )],
        format!("{why}\n"),
    )
        .into_response()
}

/// Middleware: with a SASL listener, runs the page with the request's credentials, or
/// answers 401 when there are none.
pub(super) async fn require(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let Some(login) = c.target.login else {
        return next.run(req).await;
    };
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic);
    match creds {
        Some((u, p)) => {
            USER.scope(PresetSecurity(security(login, u, p)), next.run(req))
                .await
        }
        None => unauthorized("The console needs a Kafka user name and password (SASL)."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str, protocol: SecurityProtocol, mechanisms: &[&str]) -> ListenerSecurity {
        ListenerSecurity {
            listener: strata_config::Listener {
                name: name.into(),
                host: "127.0.0.1".into(),
                port: 0,
            },
            protocol,
            ssl: None,
            sasl: (!mechanisms.is_empty()).then(|| strata_config::SaslConfig {
                mechanisms: mechanisms.iter().map(|m| m.to_string()).collect(),
                plain_users: Default::default(),
                oauth: None,
                plain_login: None,
            }),
            max_connections: i32::MAX,
            max_reauth_ms: 0,
        }
    }

    #[test]
    fn a_sasl_listener_wins_over_plaintext_and_tls_is_never_chosen() {
        let a: Vec<SocketAddr> = (1..=4)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let plain = listener("PLAINTEXT", SecurityProtocol::Plaintext, &[]);
        let oauth = listener("OAUTH", SecurityProtocol::SaslPlaintext, &["OAUTHBEARER"]);
        let scram = listener(
            "SASL_PLAINTEXT",
            SecurityProtocol::SaslPlaintext,
            &["OAUTHBEARER", "SCRAM-SHA-512", "PLAIN"],
        );
        let tls = listener("SSL", SecurityProtocol::Ssl, &[]);
        let ls = [plain.clone(), oauth.clone(), scram, tls.clone()];
        assert_eq!(
            Target::choose(&ls, &a),
            Some(Target {
                addr: a[2],
                login: Some(Login::Scram(ScramMechanism::Sha512))
            })
        );
        let ls = [oauth.clone(), plain];
        assert_eq!(
            Target::choose(&ls, &a),
            Some(Target {
                addr: a[1],
                login: None
            })
        );
        assert_eq!(Target::choose(&[tls, oauth], &a), None);
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "alice:pw:with:colons"
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pw:with:colons")
        );
        assert_eq!(basic(&v), Some(("alice".into(), "pw:with:colons".into())));
        assert_eq!(basic("Bearer abc"), None);
        assert_eq!(basic("Basic !!!"), None);
        let no_user = base64::engine::general_purpose::STANDARD.encode(":pw");
        assert_eq!(basic(&format!("Basic {no_user}")), None);
    }
}
