//! The coordinator's side of the `strata_consumer_group_lag` gauge (`metrics::groups`):
//! committed offsets against the high watermarks of the partitions hosted here.

use std::collections::BTreeMap;

use super::driver::GroupCoordinator;
use crate::metrics::groups::{GroupLag, GroupLagSource};

impl GroupLagSource for GroupCoordinator {
    fn lags(&self) -> Vec<GroupLag> {
        // Copied under the lock, looked up after it: a scrape never holds the coordinator
        // while it reads partitions.
        let committed: Vec<(String, String, i32, i64)> = {
            let inner = self.inner.lock();
            let mut ids = inner.offsets.group_ids();
            ids.sort();
            ids.into_iter()
                .flat_map(|g| {
                    inner
                        .offsets
                        .all(&g)
                        .into_iter()
                        .map(|(t, p, v)| (g.clone(), t.to_string(), p, v.offset))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let mut sums: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (group, topic, partition, offset) in committed {
            // Partitions without a replica here are left out (see `metrics::groups`).
            let Ok(p) = self.store.replicas.partition(&topic, partition) else {
                continue;
            };
            *sums.entry((group, topic)).or_default() += (p.high_watermark() - offset).max(0);
        }
        sums.into_iter()
            .map(|((group, topic), lag)| GroupLag { group, topic, lag })
            .collect()
    }
}
