//! The admin commands of the `strata` binary: `topic`, `group`, `tier`, `user`, `acl` and
//! `cluster`. They
//! speak the Kafka protocol to any node (`--bootstrap-server`), so they work against
//! Strata and against any Kafka-compatible broker; `--command-config FILE` gives them
//! Kafka client security properties (TLS, SASL), as Kafka's own tools take them.
//!
//! One module per command group; `protocol::client` owns the connection and version
//! negotiation. Features a broker does not serve are detected through ApiVersions and
//! reported as "not supported by this broker", never as a protocol error.
//! This module depends on nothing else in Strata but the wire protocol: it is a client.

mod acl;
mod cleaner;
pub mod cluster;
mod cluster_decommission;
mod cluster_voters;
pub mod export;
pub mod group;
pub mod log_dirs;
mod progress;
mod quota;
mod reassign;
mod rebalance;
mod throttle;
pub mod tier;
pub mod tier_costs;
pub mod topic;
mod user;

pub use acl::AclCommand;
pub use cluster::ClusterCommand;
pub use quota::QuotaCommand;
pub use user::UserCommand;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub use crate::protocol::client::{Client, ClientError};

/// How the admin commands name themselves to brokers.
const CLIENT_ID: &str = "strata-cli";

/// Where to connect, shared by every admin command.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Broker address(es), host:port[,host:port...]; any node of the cluster will do.
    // No environment variable: every STRATA_* variable names a broker setting.
    #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// How long to wait for a connection, an answer, or a long operation (partitions
    /// getting leaders, topics disappearing), in milliseconds.
    #[arg(long, global = true, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Kafka client properties for secured listeners (security.protocol, sasl.mechanism,
    /// sasl.jaas.config or sasl.username/sasl.password, ssl.truststore.location, ...), as
    /// kafka-topics.sh --command-config takes them.
    #[arg(long, global = true, value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
    /// Security settings given in code instead of a file (the web console's, with the
    /// credentials of the user it serves); wins over `command_config`.
    #[arg(skip)]
    pub preset: Option<PresetSecurity>,
}

/// [`ClientSecurity`](crate::protocol::client_security::ClientSecurity) set by code; its
/// `Debug` does not show the password.
#[derive(Clone)]
pub struct PresetSecurity(pub crate::protocol::client_security::ClientSecurity);

impl std::fmt::Debug for PresetSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresetSecurity({})", self.0.protocol.name())
    }
}

impl Connection {
    /// Connects to `addr` (a bootstrap list or one broker) with this connection's timeout
    /// and security properties.
    pub async fn connect(&self, addr: &str) -> Result<Client, CliError> {
        let security = match (&self.preset, &self.command_config) {
            (Some(preset), _) => preset.0.clone(),
            (None, Some(path)) => crate::protocol::client_security::ClientSecurity::from_file(path)
                .map_err(|e| CliError::Usage(format!("--command-config: {e}")))?,
            (None, None) => Default::default(),
        };
        Ok(Client::connect_secure(addr, self.timeout(), CLIENT_ID, &security).await?)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic and wait until every partition has a leader.
    Create {
        name: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic setting, e.g. --config retention.ms=86400000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE")]
        configs: Vec<String>,
    },
    /// List topic names, one per line.
    List,
    /// Show partitions, leaders, replicas, the cleanup policy and the settings that differ
    /// from the default; for compacted topics, each partition's log cleaner state.
    Describe {
        /// Topics to describe (default: all).
        names: Vec<String>,
    },
    /// Add partitions and/or change settings.
    Alter {
        name: String,
        /// New total number of partitions (can only grow).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Set a topic setting (repeatable).
        #[arg(long = "config", short = 'c', value_name = "NAME=VALUE")]
        configs: Vec<String>,
        /// Remove a topic setting, returning it to the broker default (repeatable).
        #[arg(long = "delete-config", value_name = "NAME")]
        delete_configs: Vec<String>,
    },
    /// Delete topics and wait until they are gone.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Move leadership back to each partition's preferred replica (Kafka's
    /// kafka-leader-election.sh), or with --unclean give leaderless partitions any live replica.
    ElectLeaders {
        /// Topics (default: all).
        names: Vec<String>,
        /// Only this partition (with exactly one topic).
        #[arg(long, short = 'p')]
        partition: Option<i32>,
        /// Unclean election: may lose records the old ISR had.
        #[arg(long)]
        unclean: bool,
    },
    /// Move one partition to the given brokers (AlterPartitionReassignments) and follow the
    /// copy until it is done, with the bytes left to move; or cancel a running move.
    Reassign {
        name: String,
        #[arg(long, short = 'p')]
        partition: i32,
        /// The new replicas, the first being the preferred leader, e.g. --replicas 2,3,4.
        #[arg(long, value_delimiter = ',', required_unless_present_any = ["cancel", "verify"])]
        replicas: Vec<i32>,
        /// Cancel the running reassignment: back to the original replicas (and its throttle
        /// removed).
        #[arg(long, conflicts_with_all = ["replicas", "verify"])]
        cancel: bool,
        /// Limit the copy to BYTES per second (KIP-73 replication throttles, on the leaders'
        /// and the new replicas' side); removed when the move completes, or by --verify.
        #[arg(long, value_name = "BYTES", conflicts_with_all = ["cancel", "verify"])]
        throttle: Option<i64>,
        /// Tell whether the move is done; once it is, remove its throttle (as
        /// kafka-reassign-partitions --verify).
        #[arg(long, conflicts_with = "replicas")]
        verify: bool,
        /// Return once the move started instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a consumer group's state and members.
    Describe { group: String },
}

#[derive(Subcommand, Debug)]
pub enum TierCommand {
    /// Per partition: whether it is tiered, and which offsets are remote-only and local.
    Status {
        /// Topics to show (default: all).
        topics: Vec<String>,
        /// Then the cost table, read from the broker's Prometheus endpoint at this
        /// `host:port` (its `metrics.listener`).
        costs: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{source}{hint}", hint = client_hint(source))]
    Client {
        #[from]
        source: ClientError,
    },
    #[error("unexpected answer from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{what} is not supported by this broker ({addr}): {why}")]
    Unsupported {
        addr: String,
        what: String,
        why: String,
    },
    #[error("unknown topic '{name}'")]
    UnknownTopic { name: String },
    #[error("unknown group '{name}'")]
    UnknownGroup { name: String },
    #[error("{what} failed: {error}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        what: String,
        error: String,
        message: Option<String>,
    },
    #[error("{what} did not finish within {seconds} s: {state}")]
    Timeout {
        what: String,
        seconds: u64,
        state: String,
    },
}

/// What to check when a broker cannot be reached at all.
fn client_hint(e: &ClientError) -> &'static str {
    match e {
        ClientError::Unreachable { .. } => {
            " (is `strata serve` running there? set --bootstrap-server)"
        }
        ClientError::NoAddress => " (--bootstrap-server is empty)",
        _ => "",
    }
}

/// Why an API-based feature check failed.
const NOT_IN_API_VERSIONS: &str = "the broker's ApiVersions does not list it";

impl CliError {
    /// A Kafka error code in a response, with what was being done.
    pub fn kafka(what: impl Into<String>, code: i16, message: Option<&StrBytes>) -> CliError {
        let error = match ResponseError::try_from_code(code) {
            Some(ResponseError::Unknown(_)) | None => format!("error code {code}"),
            Some(e) => format!("{e:?}"),
        };
        CliError::Kafka {
            what: what.into(),
            error,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Splits NAME=VALUE arguments.
fn parse_pairs(pairs: &[String]) -> Result<Vec<(String, String)>, CliError> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(CliError::Usage(format!(
                "--config expects NAME=VALUE, got '{p}'"
            ))),
        })
        .collect()
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Runs one admin command to completion on a small runtime and maps the outcome to an
/// exit code: 0 success, 1 failure, 2 usage.
pub fn run<F, Fut>(conn: Connection, f: F) -> ExitCode
where
    F: FnOnce(Client, Connection) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let runtime = match runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let client = conn.connect(&conn.bootstrap_server).await?;
        f(client, conn).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

pub fn topic(conn: Connection, cmd: TopicCommand) -> ExitCode {
    run(conn, |client, conn| topic::run(client, conn, cmd))
}

pub fn group(conn: Connection, cmd: GroupCommand) -> ExitCode {
    run(conn, |client, conn| group::run(client, conn, cmd))
}

pub fn tier(conn: Connection, cmd: TierCommand) -> ExitCode {
    run(conn, |client, conn| tier::run(client, conn, cmd))
}

pub fn user(conn: Connection, cmd: UserCommand) -> ExitCode {
    run(conn, |client, conn| user::run(client, conn, cmd))
}

pub fn acl(conn: Connection, cmd: AclCommand) -> ExitCode {
    run(conn, |client, conn| acl::run(client, conn, cmd))
}

pub fn quota(conn: Connection, cmd: QuotaCommand) -> ExitCode {
    run(conn, |client, conn| quota::run(client, conn, cmd))
}

pub fn export(conn: Connection, args: export::ExportArgs) -> ExitCode {
    run(conn, |client, conn| export::run(client, conn, args))
}

pub fn cluster(conn: Connection, cmd: ClusterCommand) -> ExitCode {
    run(conn, |client, conn| cluster::run(client, conn, cmd))
}

/// A tokio runtime for a command (multi-threaded for the broker and recovery), or the exit
/// code after printing why it could not start.
pub fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_on_the_first_equals_and_name_bad_ones() {
        let got = parse_pairs(&["a.b=1".into(), " c = x=y ".into()]).unwrap();
        assert_eq!(
            got,
            [("a.b".into(), "1".into()), ("c".into(), "x=y".into())]
        );
        for bad in ["novalue", "=1"] {
            let err = parse_pairs(&[bad.to_string()]).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn kafka_errors_carry_the_code_name_and_the_broker_message() {
        let e = CliError::kafka("creating topic 't'", 36, Some(&str_bytes("it exists")));
        assert_eq!(
            e.to_string(),
            "creating topic 't' failed: TopicAlreadyExists (it exists)"
        );
        let e = CliError::kafka("x", 9999, None);
        assert_eq!(e.to_string(), "x failed: error code 9999");
    }
}
