//! DeleteRecords, DescribeCluster, DescribeLogDirs.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use super::{str_bytes, Ctx};
use crate::cleaner::CleanerView;
use crate::protocol::cleaner_state::{
    CleanerFailure, CleanerPass, PartitionCleanerState, CLEANER_STATE_TAG,
};
use crate::protocol::tagged::TaggedState;
use crate::protocol::tier_state::TIER_STATE_TAG;
use crate::server::replica_code;
use kafka_protocol::ResponseError;
use strata_controller::AclOperation;

pub async fn delete_records(ctx: &Ctx<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            partitions
                .push(delete_partition_records(ctx, &name, p.partition_index, p.offset).await);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The answer's low watermark is the partition's log start offset over both tiers.
async fn delete_partition_records(
    ctx: &Ctx<'_>,
    topic: &str,
    index: i32,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    let base = DeleteRecordsPartitionResult::default().with_partition_index(index);
    if !ctx.topic_allowed(AclOperation::Delete, topic) {
        return base
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_low_watermark(-1);
    }
    match ctx.replicas.delete_records(topic, index, offset).await {
        Ok(low) => {
            tracing::info!(
                topic,
                partition = index,
                log_start_offset = low,
                "deleted records"
            );
            base.with_low_watermark(low)
        }
        Err(e) => {
            tracing::info!(error = %e, "delete records refused");
            base.with_error_code(replica_code(&e).code())
                .with_low_watermark(-1)
        }
    }
}

/// The live brokers; the controller named is this node, which forwards admin requests (as
/// Metadata does, see `metadata.rs`).
pub fn describe_cluster(ctx: &Ctx<'_>, req: DescribeClusterRequest) -> DescribeClusterResponse {
    if !ctx.cluster_allowed(AclOperation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(format!(
                "{} may not DESCRIBE the cluster",
                ctx.principal
            ))))
            .with_endpoint_type(1);
    }
    let b = &ctx.broker;
    let image = b.image();
    let brokers = image
        .brokers
        .values()
        .filter(|m| !m.fenced)
        .map(|m| {
            let (host, port) = m.endpoint(ctx.listener);
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(m.node_id))
                .with_host(str_bytes(host))
                .with_port(port as i32)
                .with_rack(m.rack.clone().map(str_bytes))
        })
        .collect();
    let ops = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(
            strata_controller::ResourceType::Cluster,
            strata_controller::acl::CLUSTER_NAME,
        )
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_authorized_operations(ops)
        .with_cluster_id(str_bytes(image.cluster_id.clone()))
        .with_controller_id(BrokerId(b.node_id()))
        .with_brokers(brokers)
        .with_endpoint_type(1)
}

pub fn describe_log_dirs(ctx: &Ctx<'_>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    if !ctx.cluster_allowed(AclOperation::Describe) {
        // As Kafka: v3+ carries the error, older versions get no directories.
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // Which partitions were asked for: all of them when `topics` is null.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    // Tagged fields exist from v2 on: an older request gets no Strata state, so the
    // state is not even computed for it.
    let tagged = ctx.version >= 2;
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in ctx.replicas.all_partitions() {
        let asked = wanted.as_ref().is_none_or(|w| {
            w.get(&*p.tp.topic)
                .is_some_and(|ps| ps.contains(&p.tp.partition))
        });
        if asked {
            let mut part = DescribeLogDirsPartition::default()
                .with_partition_index(p.tp.partition)
                .with_partition_size(p.local_bytes() as i64)
                .with_offset_lag(0);
            // Strata's tier and cleaner states ride in tagged fields (see
            // protocol::tier_state and protocol::cleaner_state).
            let tier = ctx.rlm.as_ref().filter(|_| tagged);
            if let Some(state) = tier.and_then(|r| r.tier_state(&p)) {
                part.unknown_tagged_fields
                    .insert(TIER_STATE_TAG, state.encode());
            }
            // `None` unless the topic is compacted.
            if let Some(view) = tagged.then(|| ctx.cleaner.partition_state(&p)).flatten() {
                part.unknown_tagged_fields
                    .insert(CLEANER_STATE_TAG, cleaner_state(view).encode());
            }
            by_topic
                .entry(p.tp.topic.to_string())
                .or_default()
                .push(part);
        }
    }
    let topics: Vec<DescribeLogDirsTopic> = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    // All partitions live in the first log dir (see `ReplicaManager::partition_dir`); the
    // others are listed, empty, so operators see every configured dir.
    let results = ctx
        .metadata
        .config()
        .log_dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let total = fs4::total_space(dir).map(|b| b as i64).unwrap_or(-1);
            let usable = fs4::available_space(dir).map(|b| b as i64).unwrap_or(-1);
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(dir.display().to_string()))
                .with_topics(if i == 0 { topics.clone() } else { Vec::new() })
                .with_total_bytes(total)
                .with_usable_bytes(usable)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

/// The cleaner's view of a partition as `strata topic describe` reads it.
fn cleaner_state(view: CleanerView) -> PartitionCleanerState {
    let s = &view.stats;
    PartitionCleanerState {
        first_dirty_offset: s.first_dirty_offset,
        clean_bytes: s.clean_bytes,
        dirty_bytes: s.dirty_bytes,
        uncleanable_bytes: s.uncleanable_bytes,
        dirty_ratio: s.dirty_ratio(),
        last_pass: view.last.map(|p| CleanerPass {
            ended_ms: p.ended_ms,
            duration_ms: p.duration.as_millis().min(u64::MAX as u128) as u64,
            start_offset: p.stats.start_offset,
            end_offset: p.stats.end_offset,
            bytes_before: p.bytes_before,
            bytes_after: p.bytes_after,
            records_removed: p.stats.records_removed(),
            tombstones_removed: p.stats.tombstones_removed,
        }),
        uncleanable: view.uncleanable.map(|u| CleanerFailure {
            reason: u.reason,
            since_ms: u.since_ms,
            retry_at_ms: u.retry_at_ms,
        }),
    }
}
