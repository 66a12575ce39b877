//! OffsetForLeaderEpoch: where a leader epoch ends in this leader's log (KIP-101/279/320),
//! answered by the replica manager from the log's leader epoch cache: for the latest epoch
//! the log end offset, for an older one the start offset of the next epoch, and UNDEFINED
//! (-1, -1) for an epoch older than the cache.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Ctx;
use crate::server::replica_code;
use kafka_protocol::ResponseError;
use strata_controller::AclOperation;

pub fn handle(ctx: &Ctx<'_>, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    // As Kafka: CLUSTER_ACTION (replicas) answers every topic, otherwise DESCRIBE on each.
    let cluster = ctx.cluster_allowed(AclOperation::ClusterAction);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let refused = !cluster && !ctx.topic_allowed(AclOperation::Describe, &t.topic.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if refused {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let found = ctx.replicas.end_offset_for_epoch(
                        &t.topic.0,
                        p.partition,
                        p.current_leader_epoch,
                        p.leader_epoch,
                    );
                    match found {
                        Ok(Some((epoch, end))) => {
                            base.with_leader_epoch(epoch).with_end_offset(end)
                        }
                        Ok(None) => base,
                        Err(e) => base.with_error_code(replica_code(&e).code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
