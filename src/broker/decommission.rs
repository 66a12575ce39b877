//! The drain of decommissioned brokers, run by the active controller: each round asks
//! `strata_controller::decommission::next_moves` (pure) for the partition reassignments to
//! start and proposes them (they complete by themselves once the new replicas are in sync).
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

/// Drain moves (reassignments) that may be copying at once.
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
                if let MetadataCommand::AlterPartitionReassignment {
                    topic,
                    partition,
                    target: Some(target),
                } = &cmd
                {
                    tracing::info!(
                        %topic, partition, ?target,
                        "draining a decommissioned broker: reassigning the partition"
                    );
                }
                if let Err(e) = self.controller.propose(cmd).await {
                    tracing::warn!(error = %e, "replica move not committed; will retry");
                    break;
                }
            }
        }
    }
}
