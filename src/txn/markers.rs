//! Writing COMMIT/ABORT markers to the leaders of a transaction's partitions.
//!
//! The coordinator hands a [`TxnMarker`] and the node that leads its partitions to a
//! [`MarkerWriter`]; the answer is per partition, and the driver retries what failed
//! (a leader that moved, a node that is down) until every partition has its marker.
//! [`ClusterMarkers`] is the real writer: partitions led by this node are written
//! through [`LocalMarkers`] (the replica manager), others by a WriteTxnMarkers request
//! to their leader through `protocol::client`. Tests substitute their own writer.
//!
//! Dependencies: `crate::protocol::client` and `crate::metadata`; nothing in `txn/`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::ResponseError;

use super::peer::Peers;
use crate::metadata::MetadataCache;

/// A COMMIT or ABORT marker for the partitions of one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The leader epoch of the coordinator's `__transaction_state` partition, so that a
    /// partition refuses markers of a deposed coordinator.
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarkerError {
    /// The partition has seen a newer producer epoch or coordinator epoch: another
    /// marker superseded this one, so it is not retried.
    #[error("{topic}-{partition} refused the marker ({reason}); a newer one superseded it")]
    Rejected {
        topic: String,
        partition: i32,
        reason: String,
    },
    #[error("{topic}-{partition} does not exist (deleted); its marker is not needed")]
    UnknownPartition { topic: String, partition: i32 },
    #[error(
        "node {node} does not lead {topic}-{partition} any more; retrying with the new leader"
    )]
    NotLeader {
        node: i32,
        topic: String,
        partition: i32,
    },
    #[error("writing the marker to {topic}-{partition} on node {node} failed: {reason}; retrying")]
    Failed {
        node: i32,
        topic: String,
        partition: i32,
        reason: String,
    },
}

/// One partition's outcome.
pub type MarkerResult = ((String, i32), Result<(), MarkerError>);

/// Writes markers to the partitions `leader` leads.
pub trait MarkerWriter: Send + Sync {
    fn write(&self, leader: i32, marker: TxnMarker) -> BoxFuture<'_, Vec<MarkerResult>>;
}

/// Writes markers to partitions this node leads (the replica manager, once the log
/// accepts control batches).
pub trait LocalMarkers: Send + Sync {
    fn write_local(&self, marker: TxnMarker) -> BoxFuture<'_, Vec<MarkerResult>>;
}

/// Markers to this node's partitions locally, to other leaders over the network.
pub struct ClusterMarkers {
    node_id: i32,
    local: Arc<dyn LocalMarkers>,
    /// One connection per leader, reused across markers.
    peers: Peers,
}

const CLIENT_ID: &str = "strata-txn-coordinator";

impl ClusterMarkers {
    pub fn new(
        node_id: i32,
        metadata: Arc<MetadataCache>,
        local: Arc<dyn LocalMarkers>,
    ) -> ClusterMarkers {
        ClusterMarkers {
            peers: Peers::new(metadata, CLIENT_ID, Duration::from_secs(5)),
            node_id,
            local,
        }
    }

    async fn write_remote(&self, leader: i32, marker: TxnMarker) -> Vec<MarkerResult> {
        let failed = |reason: String| -> Vec<MarkerResult> {
            marker
                .partitions
                .iter()
                .map(|(t, p)| {
                    let e = MarkerError::Failed {
                        node: leader,
                        topic: t.clone(),
                        partition: *p,
                        reason: reason.clone(),
                    };
                    ((t.clone(), *p), Err(e))
                })
                .collect()
        };
        let resp = match self.peers.send(leader, request(&marker), 0).await {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let mut out = Vec::new();
        for m in resp.markers {
            for t in m.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    let r = marker_outcome(leader, &tp, p.error_code);
                    out.push((tp, r));
                }
            }
        }
        // Partitions the answer left out are retried.
        for tp in &marker.partitions {
            if !out.iter().any(|(o, _)| o == tp) {
                let e = MarkerError::Failed {
                    node: leader,
                    topic: tp.0.clone(),
                    partition: tp.1,
                    reason: "missing from the WriteTxnMarkers answer".into(),
                };
                out.push((tp.clone(), Err(e)));
            }
        }
        out
    }
}

/// A WriteTxnMarkers v1 request for `marker`.
pub fn request(marker: &TxnMarker) -> WriteTxnMarkersRequest {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for (t, p) in &marker.partitions {
        match topics.iter_mut().find(|x| *x.name.0 == **t) {
            Some(x) => x.partition_indexes.push(*p),
            None => topics.push(
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(t.clone().into()))
                    .with_partition_indexes(vec![*p]),
            ),
        }
    }
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(marker.producer_id))
        .with_producer_epoch(marker.producer_epoch)
        .with_transaction_result(marker.commit)
        .with_coordinator_epoch(marker.coordinator_epoch)
        .with_topics(topics)])
}

fn marker_outcome(node: i32, tp: &(String, i32), code: i16) -> Result<(), MarkerError> {
    let (topic, partition) = (tp.0.clone(), tp.1);
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(ResponseError::UnknownTopicOrPartition) => {
            Err(MarkerError::UnknownPartition { topic, partition })
        }
        Some(
            e @ (ResponseError::InvalidProducerEpoch | ResponseError::TransactionCoordinatorFenced),
        ) => Err(MarkerError::Rejected {
            topic,
            partition,
            reason: format!("{e:?}"),
        }),
        Some(ResponseError::NotLeaderOrFollower) => Err(MarkerError::NotLeader {
            node,
            topic,
            partition,
        }),
        Some(e) => Err(MarkerError::Failed {
            node,
            topic,
            partition,
            reason: format!("{e:?}"),
        }),
    }
}

impl MarkerWriter for ClusterMarkers {
    fn write(&self, leader: i32, marker: TxnMarker) -> BoxFuture<'_, Vec<MarkerResult>> {
        Box::pin(async move {
            if leader == self.node_id {
                self.local.write_local(marker).await
            } else {
                self.write_remote(leader, marker).await
            }
        })
    }
}

/// Markers to partitions this node leads, through the replica manager. A marker for a
/// `__consumer_offsets` partition also completes the producer's transactional offsets
/// in the group coordinator, as Kafka's `GroupCoordinator.onTransactionCompleted`.
pub struct ReplicaMarkers {
    pub replicas: Arc<crate::replica::ReplicaManager>,
    pub groups: Arc<crate::group::GroupCoordinator>,
}

/// How long a local marker waits for the ISR (Kafka's `request.timeout.ms`).
const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);

impl LocalMarkers for ReplicaMarkers {
    fn write_local(&self, marker: TxnMarker) -> BoxFuture<'_, Vec<MarkerResult>> {
        Box::pin(async move {
            let spec = crate::replica::TxnMarker {
                producer_id: marker.producer_id,
                producer_epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
                commit: marker.commit,
                partitions: marker
                    .partitions
                    .iter()
                    .map(|(t, p)| (Arc::from(t.as_str()), *p))
                    .collect(),
            };
            let results = self
                .replicas
                .write_txn_markers(vec![spec], LOCAL_TIMEOUT)
                .await;
            let mut out = Vec::new();
            for r in results.into_iter().flat_map(|r| r.partitions) {
                let tp = (r.topic.to_string(), r.partition);
                let outcome = match r.result {
                    Ok(_) => {
                        complete_offsets(&self.groups, &marker, &tp);
                        Ok(())
                    }
                    Err(e) => Err(local_error(&tp, e)),
                };
                out.push((tp, outcome));
            }
            out
        })
    }
}

/// After a marker on a `__consumer_offsets` partition: the group coordinator applies or
/// drops the producer's transactional offsets (the WriteTxnMarkers handler does the
/// same for markers from other coordinators).
pub fn complete_offsets(
    groups: &crate::group::GroupCoordinator,
    marker: &TxnMarker,
    (topic, partition): &(String, i32),
) {
    if topic != crate::group::OFFSETS_TOPIC {
        return;
    }
    if let Err(e) = groups.complete_txn(marker.producer_id, *partition, marker.commit) {
        tracing::warn!(producer_id = marker.producer_id, partition, error = %e, "could not complete transactional offsets");
    }
}

fn local_error((topic, partition): &(String, i32), e: crate::replica::ReplicaError) -> MarkerError {
    use crate::replica::ReplicaError as R;
    use strata_log::{LogError, ProducerError};
    let (topic, partition) = (topic.clone(), *partition);
    match e {
        R::UnknownTopic { .. } | R::UnknownPartition { .. } => {
            MarkerError::UnknownPartition { topic, partition }
        }
        R::NotLeader { .. } => MarkerError::NotLeader {
            node: -1,
            topic,
            partition,
        },
        R::Log {
            source:
                LogError::Producer {
                    source:
                        source @ (ProducerError::InvalidProducerEpoch { .. }
                        | ProducerError::CoordinatorFenced { .. }),
                    ..
                },
            ..
        } => MarkerError::Rejected {
            topic,
            partition,
            reason: source.to_string(),
        },
        other => MarkerError::Failed {
            node: -1,
            topic,
            partition,
            reason: other.to_string(),
        },
    }
}
