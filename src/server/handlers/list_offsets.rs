//! ListOffsets: decode the partitions asked for, ask the replica manager (which looks in both
//! tiers), encode its answers.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::replica::OffsetQuery;
use crate::server::replica_code;
use kafka_protocol::ResponseError;
use strata_controller::AclOperation;

pub async fn handle(ctx: &Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    // DESCRIBE on each topic; a refused topic's partitions are not looked up.
    let refused: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.topic_allowed(AclOperation::Describe, &t.name.0))
        .collect();
    let read_committed = req.isolation_level == 1;
    let queries: Vec<OffsetQuery> = req
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .flat_map(|(t, _)| {
            let topic: Arc<str> = Arc::from(t.name.0.as_str());
            t.partitions.iter().map(move |p| OffsetQuery {
                topic: topic.clone(),
                partition: p.partition_index,
                timestamp: p.timestamp,
                read_committed,
            })
        })
        .collect();
    let mut answers = ctx.replicas.list_offsets(&queries).await.into_iter();
    let topics = req
        .topics
        .into_iter()
        .zip(refused)
        .map(|(t, refused)| {
            if refused {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                            .with_offset(-1)
                            .with_timestamp(-1)
                    })
                    .collect();
                return ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions);
            }
            let partitions = t
                .partitions
                .iter()
                .zip(answers.by_ref())
                .map(|(p, a)| {
                    let mut base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    if ctx.version >= 4 {
                        // The current leader epoch (KIP-320): clients fence stale answers.
                        base = base.with_leader_epoch(a.leader_epoch);
                    }
                    match a.result {
                        Ok((offset, timestamp)) => {
                            base.with_offset(offset).with_timestamp(timestamp)
                        }
                        Err(e) => base
                            .with_error_code(replica_code(&e).code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
