//! `strata recover`: restores tiered topics from the bucket into a broker's data
//! dir, with the broker stopped. It opens the metadata log and the remote tier as
//! `serve` does, re-creates through the controller every topic the bucket holds and
//! the controller lacks ([`crate::broker::Broker::recover_from_bucket`]), closes
//! everything cleanly and prints what it did. Then `strata serve` starts as usual.
//!
//! Why a command and not automatic recovery at startup: see docs/architecture.md
//! ("Recovery from the bucket").

use std::path::PathBuf;

use strata_config::{Configs, Listener};

use crate::broker::{Broker, RecoverError, RecoverOptions, RecoveryReport};
use crate::startup::OpenDataError;

#[derive(Debug, thiserror::Error)]
pub enum RecoverCommandError {
    #[error(transparent)]
    Config(#[from] strata_config::ConfigError),
    #[error("cannot create log dir {dir}: {source}; check log.dirs and permissions")]
    LogDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the metadata log in {dir}: {source}; is a broker still running on this data dir? Stop it first")]
    Controller {
        dir: PathBuf,
        source: strata_controller::ControllerError,
    },
    #[error(transparent)]
    Security(crate::server::auth::AuthSetupError),
    #[error(transparent)]
    Tier(#[from] crate::rlm::TierOpenError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error(transparent)]
    Recover(#[from] RecoverError),
}

impl From<OpenDataError> for RecoverCommandError {
    fn from(e: OpenDataError) -> Self {
        match e {
            OpenDataError::LogDir { dir, source } => RecoverCommandError::LogDir { dir, source },
            OpenDataError::Controller { dir, source } => {
                RecoverCommandError::Controller { dir, source }
            }
            OpenDataError::Security(e) => RecoverCommandError::Security(e),
        }
    }
}

/// Runs recovery for the broker described by `configs` (which must not be running).
pub async fn recover(
    configs: Configs,
    opts: &RecoverOptions,
) -> Result<RecoveryReport, RecoverCommandError> {
    let config = configs.broker(&Default::default())?;
    if !config.remote.enabled {
        return Err(RecoverError::NoTier.into());
    }
    // The same data dirs and controller `startup::start` opens: in a cluster this node joins
    // the quorum as a voter (a majority of the voters must be running) and the restored
    // topics are committed for every node.
    let controller = crate::startup::open_data(&config).await?;
    let listener = config.listeners.first().cloned().unwrap_or(Listener {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 0,
    });
    let remote = match crate::startup::open_remote(&config).await {
        Ok(r) => r,
        Err(e) => {
            if let Err(e) = controller.shutdown().await {
                tracing::warn!(error = %e, "controller shutdown failed");
            }
            return Err(e.into());
        }
    };
    let broker = Broker::new(configs, config, controller, listener, remote);
    let result = async {
        broker.apply_image(&broker.image())?;
        Ok::<_, RecoverCommandError>(broker.recover_from_bucket(opts).await?)
    }
    .await;
    broker.close_logs();
    if let Err(e) = broker.controller.shutdown().await {
        tracing::warn!(error = %e, "controller shutdown failed");
    }
    result
}
