//! The consumer group lag gauge, read at scrape time from a [`GroupLagSource`] (the group
//! coordinator implements it).
//!
//! | Series (Prometheus) | Kind | Labels |
//! | --- | --- | --- |
//! | `strata_consumer_group_lag` | gauge | group, topic |
//!
//! The lag of a group on a topic is the sum over its committed partitions of the
//! partition's high watermark minus the committed offset. It is reported by the node
//! coordinating the group, over the partitions that node hosts a replica of (all of them
//! on one node; in a cluster, partitions with no replica on the coordinator are left out,
//! since the coordinator does not know their high watermark without asking their leader).
//! The web console samples it for the groups page's lag chart.

use std::sync::{Arc, Weak};

use opentelemetry::KeyValue;
use parking_lot::Mutex;

use super::meter;

/// What the lag gauge reads; the group coordinator implements it.
pub trait GroupLagSource: Send + Sync {
    /// (group, topic, lag) for each group coordinated here and topic it committed.
    fn lags(&self) -> Vec<GroupLag>;
}

/// One group's lag on one topic at a scrape.
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub lag: i64,
}

static WATCHED: Mutex<Option<Weak<dyn GroupLagSource>>> = Mutex::new(None);

/// Registers the lag gauge over `source` (once per process; a later source replaces it).
pub fn watch(source: Arc<dyn GroupLagSource>) {
    let first = WATCHED.lock().replace(Arc::downgrade(&source)).is_none();
    if first {
        let _ = meter()
            .i64_observable_gauge("strata.consumer_group.lag")
            .with_description(
                "Records between the high watermark and a group's committed offsets, summed over the topic's partitions hosted on the group's coordinator",
            )
            .with_callback(|obs| {
                let source = WATCHED.lock().as_ref().and_then(Weak::upgrade);
                for l in source.map(|s| s.lags()).unwrap_or_default() {
                    obs.observe(
                        l.lag,
                        &[KeyValue::new("group", l.group), KeyValue::new("topic", l.topic)],
                    );
                }
            })
            .build();
    }
}
