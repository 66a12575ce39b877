//! DescribeProducers (key 61): the active producers of partitions this node leads, read
//! from their producer state, as Kafka's `ReplicaManager.activeProducerState`. DESCRIBE on
//! the topic; a partition led elsewhere answers NOT_LEADER_OR_FOLLOWER.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;
use strata_controller::AclOperation;
use strata_log::producer_state::ProducerEntry;

use super::{str_bytes, Ctx};
use crate::server::replica_code;

pub fn handle(ctx: &Ctx<'_>, req: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let refused = !ctx.topic_allowed(AclOperation::Describe, &t.name.0);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    if refused {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    match ctx.replicas.leader_partition(&t.name.0, index) {
                        Ok(p) => base.with_active_producers(
                            p.log.producers().into_iter().map(producer_state).collect(),
                        ),
                        Err(e) => base
                            .with_error_code(replica_code(&e).code())
                            .with_error_message(Some(str_bytes(e.to_string()))),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

/// One producer as Kafka describes it: -1 for what it does not have (no batch left, no
/// marker written, no ongoing transaction).
fn producer_state((id, e): (i64, ProducerEntry)) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(i32::from(e.epoch))
        .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
        .with_last_timestamp(e.last_timestamp)
        .with_coordinator_epoch(e.coordinator_epoch)
        .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
}
