//! The drain of decommissioned brokers, run by the active controller: each round asks
//! `strata_controller::decommission::next_moves` (pure) for the next steps and proposes them.
//! The state lives in the metadata image, so a new controller continues a drain where the old
//! one stopped, and every step is validated again when applied.

use std::sync::Arc;
use std::time::Duration;

use strata_controller::decommission::next_moves;
use strata_controller::MetadataCommand;
use tokio::sync::watch;

use super::Broker;

/// How often the active controller looks at the drains.
const ROUND: Duration = Duration::from_millis(250);

/// Partitions that may be copying to their new replica at once.
pub(crate) const MAX_MOVES_IN_FLIGHT: usize = 32;

impl Broker {
    pub(super) async fn decommission_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ROUND) => {}
                _ = shutdown.changed() => return,
            }
            if !self.controller.is_leader() {
                continue;
            }
            let image = self.image();
            for cmd in next_moves(&image, MAX_MOVES_IN_FLIGHT) {
                match &cmd {
                    MetadataCommand::AddReplica {
                        topic,
                        partition,
                        node_id,
                    } => tracing::info!(
                        %topic, partition, to = node_id,
                        "draining a decommissioned broker: adding a replica"
                    ),
                    MetadataCommand::DropReplica {
                        topic,
                        partition,
                        node_id,
                        ..
                    } => {
                        tracing::info!(
                            %topic, partition, from = node_id,
                            "draining a decommissioned broker: the new replica is in sync; dropping the old one"
                        )
                    }
                    _ => {}
                }
                if let Err(e) = self.controller.propose(cmd).await {
                    tracing::warn!(error = %e, "replica move not committed; will retry");
                    break;
                }
            }
        }
    }
}
