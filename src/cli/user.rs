//! `strata user scram set|describe|delete`: SCRAM credentials through
//! AlterUserScramCredentials and DescribeUserScramCredentials (Kafka's `kafka-configs.sh
//! --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'`). The password is salted
//! and hashed here, on the client; only the salted password travels, and the broker keeps
//! only the keys derived from it.

use clap::Subcommand;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use strata_controller::ScramMechanism;

use super::{str_bytes, CliError, Client, Connection};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// SCRAM-SHA-256 / SCRAM-SHA-512 credentials, stored salted in the metadata log.
    #[command(subcommand)]
    Scram(ScramCommand),
}

#[derive(Subcommand, Debug)]
pub enum ScramCommand {
    /// Create or replace a user's credential for one mechanism.
    Set {
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, short = 'm', default_value = "SCRAM-SHA-256")]
        mechanism: String,
        /// PBKDF2 iterations, 4096..=16384.
        #[arg(long, default_value_t = 8192)]
        iterations: i32,
        /// The password (visible to other local users in the process list: prefer
        /// --password-file).
        #[arg(long, conflicts_with = "password_file")]
        password: Option<String>,
        /// A file whose first line is the password.
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
    /// Show users' mechanisms and iteration counts (default: every user).
    Describe { users: Vec<String> },
    /// Remove a user's credential for one mechanism.
    Delete {
        user: String,
        #[arg(long, short = 'm', default_value = "SCRAM-SHA-256")]
        mechanism: String,
    },
}

pub async fn run(mut client: Client, _conn: Connection, cmd: UserCommand) -> Result<(), CliError> {
    let UserCommand::Scram(cmd) = cmd;
    match cmd {
        ScramCommand::Set {
            user,
            mechanism,
            iterations,
            password,
            password_file,
        } => {
            let m = mechanism_of(&mechanism)?;
            let password = match (password, password_file) {
                (Some(p), _) => p,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display())))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                (None, None) => {
                    return Err(CliError::Usage("give --password or --password-file".into()))
                }
            };
            if password.is_empty() {
                return Err(CliError::Usage("the password is empty".into()));
            }
            if !(ScramMechanism::MIN_ITERATIONS..=ScramMechanism::MAX_ITERATIONS)
                .contains(&iterations)
            {
                return Err(CliError::Usage(
                    "--iterations must be in 4096..=16384".into(),
                ));
            }
            let mut salt = [0u8; 32];
            let _ = aws_lc_rs::rand::fill(&mut salt);
            let salted =
                crate::sasl::scram::salted_password(m, &password, &salt, iterations as u32);
            let up = ScramCredentialUpsertion::default()
                .with_name(str_bytes(user.clone()))
                .with_mechanism(m.code())
                .with_iterations(iterations)
                .with_salt(salt.to_vec().into())
                .with_salted_password(salted.into());
            alter(
                &mut client,
                AlterUserScramCredentialsRequest::default().with_upsertions(vec![up]),
                &user,
            )
            .await?;
            println!("set {} credential for user {user}", m.name());
        }
        ScramCommand::Delete { user, mechanism } => {
            let m = mechanism_of(&mechanism)?;
            let del = ScramCredentialDeletion::default()
                .with_name(str_bytes(user.clone()))
                .with_mechanism(m.code());
            alter(
                &mut client,
                AlterUserScramCredentialsRequest::default().with_deletions(vec![del]),
                &user,
            )
            .await?;
            println!("deleted {} credential of user {user}", m.name());
        }
        ScramCommand::Describe { users } => {
            let names = (!users.is_empty()).then(|| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(str_bytes(u.clone())))
                    .collect()
            });
            let resp = client
                .send(DescribeUserScramCredentialsRequest::default().with_users(names))
                .await?;
            if resp.error_code != 0 {
                return Err(CliError::kafka(
                    "describing users",
                    resp.error_code,
                    resp.error_message.as_ref(),
                ));
            }
            for r in resp.results {
                if r.error_code != 0 {
                    return Err(CliError::kafka(
                        format!("describing user '{}'", r.user),
                        r.error_code,
                        r.error_message.as_ref(),
                    ));
                }
                for c in r.credential_infos {
                    let m = ScramMechanism::from_code(c.mechanism).map_or("UNKNOWN", |m| m.name());
                    println!("{}\t{m}\titerations={}", r.user, c.iterations);
                }
            }
        }
    }
    Ok(())
}

fn mechanism_of(name: &str) -> Result<ScramMechanism, CliError> {
    ScramMechanism::from_name(name).ok_or_else(|| {
        CliError::Usage(format!(
            "--mechanism must be SCRAM-SHA-256 or SCRAM-SHA-512, not {name}"
        ))
    })
}

async fn alter(
    client: &mut Client,
    req: AlterUserScramCredentialsRequest,
    user: &str,
) -> Result<(), CliError> {
    let resp = client.send(req).await?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("changing user '{user}'"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}
