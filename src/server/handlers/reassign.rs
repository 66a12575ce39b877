//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455): move partitions
//! between brokers. Each partition's change is one metadata command; the controller's rules
//! (`strata_controller::reassign`) decide, and the brokers follow the committed metadata
//! (adding replicas start fetching, removed ones are deleted once the move completes).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, MetadataImage, PartitionMeta};

use super::{str_bytes, Ctx};
use crate::server::error_code;

pub async fn alter(
    ctx: &Ctx<'_>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allowed = ctx.cluster_allowed(AclOperation::Alter);
    let allow_rf_change = ctx.version < 1 || req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut out = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let result = if allowed {
                reassign(ctx, &name, p.partition_index, target, allow_rf_change).await
            } else {
                Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "ALTER on the cluster is required to reassign partitions".to_string(),
                ))
            };
            let r =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            out.push(match result {
                Ok(()) => r,
                Err((code, message)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(out),
        );
    }
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses);
    if allowed {
        resp
    } else {
        resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code())
    }
}

/// Checks one partition's change against the current image, then proposes it.
async fn reassign(
    ctx: &Ctx<'_>,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_rf_change: bool,
) -> Result<(), (ResponseError, String)> {
    let image = ctx.broker.image();
    let meta = image
        .topics
        .get(topic)
        .and_then(|t| t.partition(partition))
        .ok_or_else(|| {
            (
                ResponseError::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            )
        })?;
    match &target {
        None if !meta.is_reassigning() => {
            return Err((
                ResponseError::NoReassignmentInProgress,
                format!("{topic}-{partition} has no reassignment in progress to cancel"),
            ))
        }
        Some(t) if !allow_rf_change && t.len() != meta.original_replicas().len() => {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "{topic}-{partition}: {} replicas asked for {} current ones, and the request \
                     does not allow a replication factor change",
                    t.len(),
                    meta.original_replicas().len()
                ),
            ))
        }
        _ => {}
    }
    ctx.broker
        .alter_reassignment(topic, partition, target)
        .await
        .map_err(|e| (error_code(&e), e.to_string()))
}

pub fn list(
    ctx: &Ctx<'_>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !ctx.cluster_allowed(AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "DESCRIBE on the cluster is required to list reassignments",
            )));
    }
    let image = ctx.broker.image();
    let wanted: Vec<(String, Option<Vec<i32>>)> = match req.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), Some(t.partition_indexes)))
            .collect(),
        None => image.topics.keys().map(|n| (n.clone(), None)).collect(),
    };
    let topics = wanted
        .into_iter()
        .filter_map(|(name, partitions)| ongoing(&image, &name, partitions))
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// The running reassignments of `name` (of `partitions` only, if given); `None` if there are
/// none (Kafka leaves out partitions that are not moving, and unknown ones).
fn ongoing(
    image: &MetadataImage,
    name: &str,
    partitions: Option<Vec<i32>>,
) -> Option<OngoingTopicReassignment> {
    let topic = image.topics.get(name)?;
    let asked: Vec<i32> = partitions.unwrap_or_else(|| (0..topic.partitions).collect());
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let moving: Vec<OngoingPartitionReassignment> = asked
        .into_iter()
        .filter_map(|i| topic.partition(i).map(|p| (i, p)))
        .filter(|(_, p)| p.is_reassigning())
        .map(|(i, p): (i32, &PartitionMeta)| {
            OngoingPartitionReassignment::default()
                .with_partition_index(i)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding))
                .with_removing_replicas(ids(&p.removing))
        })
        .collect();
    (!moving.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(TopicName(str_bytes(name)))
            .with_partitions(moving)
    })
}
