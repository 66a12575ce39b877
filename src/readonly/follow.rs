//! Following the bucket: every `remote.log.manifest.poll.interval.ms` the node lists the
//! topics of the bucket and the latest manifest version of each partition, reads the
//! manifests that changed (`strata_tier::topics::discover_since`, the discovery
//! `strata recover` uses), and publishes a new [`Catalog`]. Fetches waiting at the end of a
//! partition wake on the publication.
//!
//! A failed poll keeps the previous catalog (the node goes on serving what it had) and is
//! retried at the next interval. For read_committed, the last stable offset of a partition
//! whose manifest changed is read from the producer snapshot uploaded with its last segment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata_tier::object_store::ObjectStore;
use strata_tier::{PartitionKey, PartitionManifest, RemoteReader, TierError};
use tokio::sync::watch;

use super::catalog::Catalog;

/// Polls the bucket and publishes catalogs.
pub struct Follower {
    store: Arc<dyn ObjectStore>,
    reader: RemoteReader,
    /// The last stable offset found for each manifest version read, so an unchanged
    /// manifest costs no snapshot GET.
    stable: HashMap<PartitionKey, (u64, Option<i64>)>,
}

impl Follower {
    pub fn new(store: Arc<dyn ObjectStore>, reader: RemoteReader) -> Follower {
        Follower {
            store,
            reader,
            stable: HashMap::new(),
        }
    }

    /// One poll: the bucket's catalog, reusing the manifests of `previous` that did not
    /// change.
    pub async fn poll(&mut self, previous: &Catalog) -> Result<Catalog, TierError> {
        let topics = strata_tier::topics::discover_since(&self.store, |pk| {
            previous.manifest(pk).map(|m| PartitionManifest::clone(&m))
        })
        .await?;
        let mut stable = HashMap::new();
        for t in &topics {
            for (p, m) in &t.partitions {
                let pk = PartitionKey {
                    topic: t.topic.clone(),
                    topic_id: t.topic_id,
                    partition: *p,
                };
                let lso = match self.stable.get(&pk) {
                    Some((version, lso)) if *version == m.version => *lso,
                    _ => self.last_stable(&pk, m).await?,
                };
                stable.insert(pk, (m.version, lso));
            }
        }
        self.stable = stable;
        Ok(Catalog::build(topics, |pk| {
            self.stable.get(pk).and_then(|(_, lso)| *lso)
        }))
    }

    /// The first offset of the oldest transaction open at the remote end, from the producer
    /// snapshot of the last remote segment; `None` when none is open or the segment has no
    /// snapshot (it was uploaded before snapshots were, when no transaction could be open).
    async fn last_stable(
        &self,
        pk: &PartitionKey,
        m: &PartitionManifest,
    ) -> Result<Option<i64>, TierError> {
        let Some(last) = m.segments.last() else {
            return Ok(None);
        };
        let bytes = self.reader.producer_snapshot(pk, last).await?;
        if bytes.is_empty() {
            return Ok(None);
        }
        strata_log::oldest_open_txn(&bytes).map_err(|reason| TierError::CorruptSegment {
            partition: pk.clone(),
            key: pk
                .segment(
                    last.base_offset,
                    last.id,
                    strata_tier::layout::SegmentFile::ProducerSnapshot,
                )
                .to_string(),
            position: 0,
            reason,
        })
    }
}

/// Polls every `interval` until `shutdown`, publishing each new catalog on `publish`.
pub async fn run(
    mut follower: Follower,
    publish: watch::Sender<Arc<Catalog>>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let previous = publish.borrow().clone();
        match follower.poll(&previous).await {
            Ok(catalog) => {
                let partitions: usize = catalog.topics().map(|(_, t)| t.partitions.len()).sum();
                tracing::debug!(partitions, "manifest poll done");
                publish.send_replace(Arc::new(catalog));
            }
            Err(e) => {
                tracing::warn!(error = %e, "manifest poll failed; serving the previous view until the next poll")
            }
        }
    }
}
