//! DescribeQuorum (KIP-595, KIP-853 observers): the metadata quorum of the cluster, answered by
//! any node from its own view (the leader's lists every member's log end; elsewhere only its
//! own is known and the others are -1). Voters are the Raft voters; observers are the learners
//! (broker-only nodes, `process.roles=broker`). Needs DESCRIBE on the cluster.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, QuorumMember};

use super::{str_bytes, Ctx};

/// Kafka's name of the metadata log.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn handle(ctx: &Ctx<'_>, _req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !ctx.cluster_allowed(AclOperation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(format!(
                "{} may not DESCRIBE the cluster",
                ctx.principal
            ))));
    }
    let view = ctx.broker.controller.quorum_view();
    let state = |m: &QuorumMember| {
        ReplicaState::default()
            .with_replica_id(BrokerId(m.node_id as i32))
            .with_log_end_offset(m.log_end.map_or(-1, |e| e as i64))
            .with_last_fetch_timestamp(-1)
            .with_last_caught_up_timestamp(-1)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(view.leader.map_or(-1, |l| l as i32)))
        .with_leader_epoch(view.term as i32)
        .with_high_watermark(view.high_watermark.map_or(-1, |h| h as i64))
        .with_current_voters(view.voters.iter().map(state).collect())
        .with_observers(view.learners.iter().map(state).collect());
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
        .with_partitions(vec![partition])])
}
