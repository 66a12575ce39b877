//! The `strata` command line: `serve` runs a broker; `topic`, `group`, `tier` and `user` are
//! admin commands that speak the Kafka protocol to any node (see `strata::cli`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// See `strata::alloc`: hostile array lengths in requests must not abort the broker.
#[global_allocator]
static ALLOC: strata::alloc::LazyHugeAlloc = strata::alloc::LazyHugeAlloc;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "A Kafka-compatible broker with tiered storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. With no flags: 127.0.0.1:9092, data under ./data.
    Serve {
        /// A TOML file of Kafka-named settings, e.g. "log.dirs" = "/var/lib/strata".
        #[arg(long, short, env = "STRATA_CONFIG")]
        config: Option<PathBuf>,
        /// Override one setting: --set log.segment.bytes=1048576 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Create, list, describe, alter and delete topics on a running cluster.
    Topic {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::TopicCommand,
    },
    /// List and describe consumer groups.
    Group {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::GroupCommand,
    },
    /// SCRAM users: `strata user scram set alice --password-file pw.txt`.
    User {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::UserCommand,
    },
    /// ACLs: `strata acl add --allow-principal User:alice --operation Read --topic orders`.
    Acl {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::AclCommand,
    },
    /// Client quotas: `strata quota set --client-id app producer_byte_rate=1048576`.
    Quota {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::QuotaCommand,
    },
    /// The cluster: `strata cluster describe` shows voters, observers, brokers and racks.
    Cluster {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(subcommand)]
        cmd: strata::cli::ClusterCommand,
    },
    /// Writes a topic, or an offset or time range of it, to local Parquet files (one per
    /// partition, the Iceberg table's columns) from any tier, read over the Kafka
    /// protocol: `strata export orders --out ./orders --from-offset 1000`.
    Export {
        #[command(flatten)]
        conn: strata::cli::Connection,
        #[command(flatten)]
        args: strata::cli::export::ExportArgs,
    },
    /// Restores tiered topics from the bucket after the data dir was lost: their
    /// ids, partition counts, configs and offsets. Run it with the broker stopped,
    /// with the broker's own config, then start `strata serve`.
    Recover {
        #[arg(long, short, env = "STRATA_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Only these topics (default: every topic in the bucket).
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Show what would be restored; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The remote tier, per partition.
    Tier {
        #[command(subcommand)]
        cmd: TierCmd,
    },
}

#[derive(Subcommand)]
enum TierCmd {
    /// Asks a running broker over the Kafka protocol: which offsets are remote-only
    /// and which are local, per partition.
    Status {
        #[command(flatten)]
        conn: strata::cli::Connection,
        /// Topics to show (default: all).
        topics: Vec<String>,
        /// Then what the remote tier cost since the broker started, per topic: object
        /// store requests by kind, bytes, requests per GB uploaded and read, objects per
        /// segment; read from the broker's metrics (`--metrics`).
        #[arg(long)]
        costs: bool,
        /// The broker's `metrics.listener` (`host:port`), for `--costs`.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics: String,
    },
    /// Reads the bucket and the log dirs of a config directly (works with the broker
    /// stopped): local and remote offsets and bytes, manifest version, closed segments
    /// not yet uploaded.
    Inspect {
        #[arg(long, short, env = "STRATA_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
}

/// The admin commands print to stdout; piped into `head`, a write after the reader left would
/// make `println!` panic, because Rust ignores SIGPIPE. A command-line tool should end quietly
/// there, as `cat` does, so they take the default action back. `serve` keeps ignoring it: a
/// broker must not die because whoever read its stdout went away.
fn restore_sigpipe() {
    // SAFETY: called once at start, before any thread exists; it only resets a signal
    // disposition to the default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The admin commands print results on stdout and progress on stderr; their logs
    // default to warnings only. `serve` sets up logging after reading its config,
    // which may turn on OTLP span export.
    if !matches!(cli.command, Command::Serve { .. }) {
        strata::logging::init("warn", None);
        restore_sigpipe();
    }
    match cli.command {
        Command::Serve { config, set } => serve(config, set),
        Command::Topic { conn, cmd } => strata::cli::topic(conn, cmd),
        Command::Group { conn, cmd } => strata::cli::group(conn, cmd),
        Command::User { conn, cmd } => strata::cli::user(conn, cmd),
        Command::Acl { conn, cmd } => strata::cli::acl(conn, cmd),
        Command::Quota { conn, cmd } => strata::cli::quota(conn, cmd),
        Command::Cluster { conn, cmd } => strata::cli::cluster(conn, cmd),
        Command::Export { conn, args } => strata::cli::export(conn, args),
        Command::Tier {
            cmd:
                TierCmd::Status {
                    conn,
                    topics,
                    costs,
                    metrics,
                },
        } => strata::cli::tier(
            conn,
            strata::cli::TierCommand::Status {
                topics,
                costs: costs.then_some(metrics),
            },
        ),
        Command::Tier {
            cmd: TierCmd::Inspect { config, set },
        } => tier_status(config, set),
        Command::Recover {
            config,
            set,
            topics,
            dry_run,
        } => recover(
            config,
            set,
            strata::broker::RecoverOptions { topics, dry_run },
        ),
    }
}

fn recover(
    config: Option<PathBuf>,
    set: Vec<String>,
    opts: strata::broker::RecoverOptions,
) -> ExitCode {
    let Some(configs) = load(config, set) else {
        return ExitCode::from(2);
    };
    let runtime = match strata::cli::runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(strata::recover::recover(configs, &opts)) {
        Ok(report) => {
            print!("{report}");
            if report.has_failures() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tier_status(config: Option<PathBuf>, set: Vec<String>) -> ExitCode {
    let Some(configs) = load(config, set) else {
        return ExitCode::from(2);
    };
    let runtime = match strata::cli::runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(strata::tier_status::status(&configs)) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the config layers; prints the error and returns `None` on failure.
fn load(config: Option<PathBuf>, set: Vec<String>) -> Option<strata_config::Configs> {
    let mut cli = Vec::with_capacity(set.len());
    for s in set {
        match s.split_once('=') {
            Some((k, v)) => cli.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("error: --set expects NAME=VALUE, got '{s}'");
                return None;
            }
        }
    }
    match strata_config::Configs::load(config.as_deref(), &strata_config::env_pairs(), &cli) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn serve(config: Option<PathBuf>, set: Vec<String>) -> ExitCode {
    strata::alloc::tune_malloc();
    let mut cli = Vec::with_capacity(set.len());
    for s in set {
        match s.split_once('=') {
            Some((k, v)) => cli.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("error: --set expects NAME=VALUE, got '{s}'");
                return ExitCode::from(2);
            }
        }
    }
    let configs =
        match strata_config::Configs::load(config.as_deref(), &strata_config::env_pairs(), &cli) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    // Telemetry is set up before the runtime: the OTLP exporters use a blocking HTTP
    // client on their own threads, which must not be created inside the runtime.
    let export = match configs.broker(&Default::default()) {
        Ok(b) => strata::metrics::ExportConfig {
            otlp_endpoint: b.otlp_endpoint,
            node_id: b.node_id,
        },
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match strata::metrics::install(&export) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    strata::logging::init("info", telemetry.tracer_provider());
    if let Some(endpoint) = &telemetry.otlp {
        tracing::info!(%endpoint, "exporting traces and metrics over OTLP/HTTP");
    }
    let code = run_broker(configs);
    telemetry.shutdown();
    code
}

fn run_broker(configs: strata_config::Configs) -> ExitCode {
    let runtime = match strata::cli::runtime(true) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(strata::startup::run(configs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
