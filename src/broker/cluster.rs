//! The cluster loops of a broker: liveness and fencing (on the active controller), ISR changes
//! (on each partition leader), and controlled shutdown.
//!
//! Liveness: every node is broker and controller (combined mode), so the active controller hears
//! from each live broker at every Raft heartbeat. A broker not heard from for
//! `broker.session.timeout.ms` is fenced with `FenceBroker`, which moves its leaderships and
//! takes it out of every ISR; one heard from again is unfenced. Decisions are proposed to the
//! metadata log and applied like any other change: brokers act only on committed metadata.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_controller::{MetadataCommand, NO_LEADER};
use tokio::sync::watch;

use super::Broker;
use crate::now_ms;

impl Broker {
    pub(super) fn spawn_cluster_tasks(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        if self.controller.is_quorum() {
            let b = self.clone();
            let s = shutdown.clone();
            tokio::spawn(async move { b.liveness_loop(s).await });
            let b = self.clone();
            let s = shutdown.clone();
            tokio::spawn(async move { b.decommission_loop(s).await });
        }
        let b = self.clone();
        tokio::spawn(async move { b.isr_loop(shutdown).await });
    }

    async fn liveness_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut leader_since: Option<Instant> = None;
        loop {
            let config = self.config();
            let every = Duration::from_millis(config.broker_heartbeat_interval_ms.max(10) as u64);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if !self.controller.is_leader() {
                leader_since = None;
                continue;
            }
            let since = *leader_since.get_or_insert_with(Instant::now);
            let session = Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64);
            let grace = (every * 2).max(Duration::from_secs(1));
            let me = self.node_id();
            for b in self.image().brokers.values() {
                if b.node_id == me {
                    // A controller that lost its leadership may have fenced this node from a
                    // stale view; the active controller is alive by definition.
                    if b.fenced && !self.is_shutting_down() {
                        tracing::info!(
                            "this node is fenced but is the active controller; unfencing it"
                        );
                        let cmd = MetadataCommand::UnfenceBroker { node_id: me };
                        if let Err(e) = self.controller.propose(cmd).await {
                            tracing::warn!(error = %e, "could not unfence this node; will retry");
                        }
                    }
                    continue;
                }
                let last = self.controller.last_heard_from(b.node_id as u64);
                // Silence counts from the last message either way, so a former controller is
                // fenced a session after it died, not a session after the election. A new
                // controller may not have talked to the other followers yet: it gives every
                // node `grace` to answer its first heartbeats before trusting older times.
                let heard = if since.elapsed() < grace {
                    last.filter(|t| *t > since)
                } else {
                    last
                };
                let silent = heard.map_or(since.elapsed(), |t| t.elapsed());
                if heard.is_none() && since.elapsed() < grace {
                    continue;
                }
                let cmd = if !b.fenced && silent > session {
                    tracing::warn!(
                        broker = b.node_id,
                        silent_ms = silent.as_millis() as u64,
                        "broker lost: no heartbeat within broker.session.timeout.ms; fencing it"
                    );
                    MetadataCommand::FenceBroker { node_id: b.node_id }
                } else if b.fenced
                    && !b.shutting_down
                    && heard.is_some()
                    && silent < (session / 2).max(every * 2)
                {
                    tracing::info!(broker = b.node_id, "fenced broker is back; unfencing it");
                    MetadataCommand::UnfenceBroker { node_id: b.node_id }
                } else {
                    continue;
                };
                if let Err(e) = self.controller.propose(cmd).await {
                    tracing::warn!(broker = b.node_id, error = %e, "liveness change not committed; will retry");
                }
            }
            self.elect_unclean_if_allowed().await;
        }
    }

    /// Leaderless partitions of topics with `unclean.leader.election.enable` get any live replica.
    async fn elect_unclean_if_allowed(&self) {
        let image = self.image();
        for topic in image.topics.values() {
            let offline = topic.assignment.iter().any(|p| p.leader == NO_LEADER);
            if !offline {
                continue;
            }
            let unclean = self
                .metadata
                .configs
                .topic(&image.broker_configs, &topic.configs)
                .map(|c| c.unclean_leader_election_enable)
                .unwrap_or(false);
            if !unclean {
                continue;
            }
            for (i, p) in topic.assignment.iter().enumerate() {
                let live = p.replicas.iter().any(|r| image.is_live(*r));
                if p.leader != NO_LEADER || !live {
                    continue;
                }
                tracing::warn!(topic = %topic.name, partition = i, "no in-sync replica alive; unclean leader election (records may be lost)");
                let cmd = MetadataCommand::ElectLeader {
                    topic: topic.name.clone(),
                    partition: i as i32,
                    unclean: true,
                };
                if let Err(e) = self.controller.propose(cmd).await {
                    tracing::warn!(topic = %topic.name, partition = i, error = %e, "unclean election failed");
                }
            }
        }
    }

    /// Each partition this broker leads: propose ISR shrinks and expansions.
    async fn isr_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
            let lag_max = self.config().replica_lag_time_max_ms;
            let now = now_ms();
            let image = self.image();
            let fenced = |b: i32| !image.is_live(b);
            for part in self.replicas.all_partitions() {
                let wanted = part.with_replica(|r| {
                    let isr = r.wanted_isr(now, lag_max, fenced)?;
                    r.isr_change_pending = true;
                    Some((isr, r.meta.clone()))
                });
                let Some((isr, meta)) = wanted else { continue };
                tracing::info!(tp = %part.tp, from = ?meta.isr, to = ?isr, "changing the ISR");
                let cmd = MetadataCommand::AlterPartition {
                    topic: part.tp.topic.to_string(),
                    partition: part.tp.partition,
                    leader: meta.leader,
                    leader_epoch: meta.leader_epoch,
                    partition_epoch: meta.partition_epoch,
                    isr,
                };
                let result = self.controller.propose(cmd).await;
                if let Err(e) = &result {
                    tracing::warn!(tp = %part.tp, error = %e, "ISR change refused; will retry with fresh metadata");
                }
                // Either way the next decision waits for fresh metadata or a retry.
                part.with_replica(|r| {
                    if result.is_err() || r.meta.partition_epoch != meta.partition_epoch {
                        r.isr_change_pending = false;
                    }
                });
            }
        }
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Controlled shutdown: fence this broker first, so its partitions get new leaders before
    /// it stops answering (clients see NOT_LEADER_OR_FOLLOWER and move at once instead of
    /// waiting for `broker.session.timeout.ms`).
    pub async fn controlled_shutdown(&self) {
        if !self.controller.is_quorum() || !self.config().controlled_shutdown_enable {
            return;
        }
        let node_id = self.node_id();
        let leads = self
            .replicas
            .all_partitions()
            .iter()
            .filter(|p| p.is_leader())
            .count();
        tracing::info!(leads, "controlled shutdown: moving leadership away");
        match self
            .controller
            .propose(MetadataCommand::ShutdownBroker { node_id })
            .await
        {
            Ok(image) => {
                if let Err(e) = self.apply_image(&image) {
                    tracing::warn!(error = %e, "could not apply metadata during shutdown");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "controlled shutdown could not commit; stopping anyway")
            }
        }
    }
}
