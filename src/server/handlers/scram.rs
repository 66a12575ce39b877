//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554). The client sends
//! the salt and the salted password; the broker derives StoredKey and ServerKey and
//! proposes them to the controller, so the metadata log never holds a password. Describe
//! answers mechanisms and iteration counts only, as Kafka does.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use strata_controller::{MetadataCommand, ScramMechanism};

use super::str_bytes;
use crate::sasl::scram::credential_from_salted;
use crate::server::{controller_code, Ctx};

pub fn describe(
    ctx: &Ctx<'_>,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.cluster_allowed(strata_controller::AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(format!(
                "{} may not DESCRIBE the cluster",
                ctx.principal
            ))));
    }
    let image = ctx.broker.image();
    let names: Vec<String> = match req.users {
        Some(users) => users.into_iter().map(|u| u.name.to_string()).collect(),
        None => image.scram.keys().cloned().collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    let results = names
        .into_iter()
        .map(|name| {
            let r =
                DescribeUserScramCredentialsResult::default().with_user(str_bytes(name.clone()));
            if !seen.insert(name.clone()) {
                return r
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(str_bytes(format!(
                        "user {name} is asked for twice"
                    ))));
            }
            match image.scram.get(&name) {
                Some(creds) => r.with_credential_infos(
                    creds
                        .iter()
                        .map(|(m, c)| {
                            CredentialInfo::default()
                                .with_mechanism(m.code())
                                .with_iterations(c.iterations)
                        })
                        .collect(),
                ),
                None => r
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(str_bytes(format!(
                        "attempt to describe a user credential that does not exist: {name}"
                    )))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One requested change, checked.
enum Change {
    Upsert(MetadataCommand),
    Delete(MetadataCommand),
}

pub async fn alter(
    ctx: &Ctx<'_>,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Per user: the changes in request order, or the first reason to refuse them all.
    let mut users: BTreeMap<String, Result<Vec<Change>, (ResponseError, String)>> = BTreeMap::new();
    let mut add = |user: String, change: Result<Change, (ResponseError, String)>| {
        let entry = users.entry(user).or_insert_with(|| Ok(Vec::new()));
        match (entry.as_mut(), change) {
            (Ok(list), Ok(c)) => list.push(c),
            (Ok(_), Err(e)) => *entry = Err(e),
            (Err(_), _) => {}
        }
    };
    for d in req.deletions {
        let user = d.name.to_string();
        let change = mechanism(d.mechanism).map(|mechanism| {
            Change::Delete(MetadataCommand::DeleteScramCredential {
                user: user.clone(),
                mechanism,
            })
        });
        add(user, change);
    }
    for u in req.upsertions {
        let user = u.name.to_string();
        let change = mechanism(u.mechanism).and_then(|m| {
            if u.iterations < ScramMechanism::MIN_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    format!(
                        "too few iterations: {} (at least {})",
                        u.iterations,
                        ScramMechanism::MIN_ITERATIONS
                    ),
                ));
            }
            if u.iterations > ScramMechanism::MAX_ITERATIONS {
                return Err((
                    ResponseError::UnacceptableCredential,
                    format!(
                        "too many iterations: {} (at most {})",
                        u.iterations,
                        ScramMechanism::MAX_ITERATIONS
                    ),
                ));
            }
            if user.is_empty() || u.salt.is_empty() || u.salted_password.is_empty() {
                return Err((
                    ResponseError::UnacceptableCredential,
                    "empty user name, salt or salted password".into(),
                ));
            }
            let credential = credential_from_salted(m, &u.salted_password, &u.salt, u.iterations);
            Ok(Change::Upsert(MetadataCommand::UpsertScramCredential {
                user: user.clone(),
                mechanism: m,
                credential,
            }))
        });
        add(user, change);
    }
    // As Kafka: ALTER on the cluster, else every user answers CLUSTER_AUTHORIZATION_FAILED.
    let allowed = ctx.cluster_allowed(strata_controller::AclOperation::Alter);
    let mut results = Vec::new();
    for (user, changes) in users {
        let outcome = match changes {
            _ if !allowed => Err((
                ResponseError::ClusterAuthorizationFailed,
                format!("{} may not ALTER the cluster", ctx.principal),
            )),
            Ok(changes) => apply(ctx, changes).await,
            Err(e) => Err(e),
        };
        let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
        results.push(match outcome {
            Ok(()) => r,
            Err((code, message)) => r
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn mechanism(code: i8) -> Result<ScramMechanism, (ResponseError, String)> {
    ScramMechanism::from_code(code).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism code {code}"),
        )
    })
}

async fn apply(ctx: &Ctx<'_>, changes: Vec<Change>) -> Result<(), (ResponseError, String)> {
    for change in changes {
        let cmd = match change {
            Change::Upsert(c) | Change::Delete(c) => c,
        };
        if let Err(e) = ctx.broker.controller.propose(cmd).await {
            return Err((controller_code(&e), e.to_string()));
        }
    }
    Ok(())
}
