//! DescribeTopicPartitions (KIP-966): Metadata's partition view for tools, paged. Topics
//! are answered in name order, from the request's cursor on, and at most
//! `response_partition_limit` partitions (capped by `max.request.partition.size.limit`)
//! per response; `next_cursor` names the first partition left out. An empty topic list
//! means every topic the principal may describe; a named topic the principal may not
//! describe gets TOPIC_AUTHORIZATION_FAILED, an unknown one UNKNOWN_TOPIC_OR_PARTITION.
//!
//! Strata has no eligible leader replicas (KIP-966's ELR): those fields are null.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, ResourceType};

use super::metadata::partition_view;
use super::{str_bytes, Ctx};

pub fn handle(
    ctx: &Ctx<'_>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = ctx.broker.image();
    let listing_all = req.topics.is_empty();
    let mut names: Vec<String> = if listing_all {
        image.topics.keys().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &req.cursor {
        Some(c) => (c.topic_name.0.to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let limit = req.response_partition_limit.clamp(
        1,
        ctx.metadata
            .config()
            .max_request_partition_size_limit
            .max(1),
    );
    let mut budget = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let allowed = ctx.topic_allowed(AclOperation::Describe, &name);
        if listing_all && !allowed {
            continue;
        }
        let base = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name.clone()))))
            .with_topic_authorized_operations(i32::MIN);
        let meta = match image.topics.get(&name) {
            _ if !allowed => {
                topics.push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            None => {
                topics.push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            }
            Some(meta) => meta,
        };
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        for p in first..meta.partitions {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(str_bytes(name.clone())))
                        .with_partition_index(p),
                );
                break;
            }
            budget -= 1;
            let v = partition_view(ctx, &image, meta, p);
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(v.error)
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(v.leader))
                    .with_leader_epoch(v.leader_epoch)
                    .with_replica_nodes(v.replicas)
                    .with_isr_nodes(v.isr)
                    .with_offline_replicas(v.offline),
            );
        }
        topics.push(
            base.with_topic_id(meta.id)
                .with_is_internal(meta.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(
                    ctx.authorized_operations(ResourceType::Topic, &name),
                ),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
