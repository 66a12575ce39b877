//! WriteTxnMarkers (API 27): a transaction coordinator asks this node, as partition leader,
//! to write COMMIT/ABORT markers. Decode -> [`ReplicaManager::write_txn_markers`] -> encode,
//! one error code per partition (`server::errors::replica_code`: NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS, INVALID_PRODUCER_EPOCH,
//! TRANSACTION_COORDINATOR_FENCED, REQUEST_TIMED_OUT).
//!
//! Kafka allows this API only to other brokers: with an authorizer on, the principal needs
//! CLUSTER_ACTION on the cluster, or every partition gets CLUSTER_AUTHORIZATION_FAILED.
//!
//! [`ReplicaManager::write_txn_markers`]: crate::replica::ReplicaManager::write_txn_markers

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::Ctx;
use crate::replica::TxnMarker;
use crate::server::replica_code;
use strata_controller::AclOperation;

/// How long the markers wait for the in-sync replicas: Kafka's default `request.timeout.ms`,
/// which its WriteTxnMarkers handler uses.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn handle(ctx: &Ctx<'_>, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    if !ctx.cluster_allowed(AclOperation::ClusterAction) {
        let code = kafka_protocol::ResponseError::ClusterAuthorizationFailed.code();
        let codes = req
            .markers
            .iter()
            .map(|m| {
                let n = m.topics.iter().map(|t| t.partition_indexes.len()).sum();
                vec![code; n]
            })
            .collect();
        return encode(req, codes);
    }
    let markers: Vec<TxnMarker> = req
        .markers
        .iter()
        .map(|m| TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.transaction_result,
            partitions: m
                .topics
                .iter()
                .flat_map(|t| {
                    let name: Arc<str> = Arc::from(t.name.0.as_str());
                    t.partition_indexes.iter().map(move |p| (name.clone(), *p))
                })
                .collect(),
        })
        .collect();
    let results = ctx
        .replicas
        .write_txn_markers(markers, MARKER_TIMEOUT)
        .await;
    let codes = req
        .markers
        .iter()
        .zip(results)
        .map(|(m, r)| {
            r.partitions
                .into_iter()
                .map(|o| {
                    if o.result.is_ok() && *o.topic == *crate::group::OFFSETS_TOPIC {
                        // The group coordinator applies or drops the producer's
                        // transactional offsets (Kafka's onTransactionCompleted).
                        let (pid, commit) = (m.producer_id.0, m.transaction_result);
                        if let Err(e) = ctx.groups.complete_txn(pid, o.partition, commit) {
                            tracing::warn!(producer_id = pid, error = %e, "could not complete transactional offsets");
                        }
                    }
                    o.result.err().map_or(0, |e| replica_code(&e).code())
                })
                .collect()
        })
        .collect();
    encode(req, codes)
}

/// The response: `codes[i]` holds an error code for each partition of marker `i`, in
/// request order.
fn encode(req: WriteTxnMarkersRequest, codes: Vec<Vec<i16>>) -> WriteTxnMarkersResponse {
    let markers = req
        .markers
        .into_iter()
        .zip(codes)
        .map(|(m, codes)| {
            let mut codes = codes.into_iter();
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .zip(codes.by_ref())
                        .map(|(p, code)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(code)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
