//! Committed offsets: OffsetCommit, OffsetFetch (single group before v8, a list of
//! groups from v8) and OffsetDelete.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::{str_bytes, Ctx};
use crate::group::codec::OffsetValue;
use crate::group::CommitEntry;
use crate::server::{group_code, group_result_code};

pub async fn commit(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let entries: Vec<CommitEntry> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if ctx.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let instance = if ctx.version >= 7 {
        req.group_instance_id.as_ref().map(|s| s.to_string())
    } else {
        None
    };
    let results = ctx
        .groups
        .commit(
            &req.group_id.0,
            &req.member_id,
            instance.as_deref(),
            req.generation_id_or_member_epoch,
            entries,
        )
        .await;
    let mut codes = match &results {
        Ok(r) => r
            .iter()
            .map(group_result_code)
            .collect::<Vec<_>>()
            .into_iter(),
        Err(e) => {
            let n = req.topics.iter().map(|t| t.partitions.len()).sum();
            vec![group_code(e).code(); n].into_iter()
        }
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(0))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

type Requested = Option<Vec<(String, Vec<i32>)>>;
/// A topic's partitions with their committed offsets (`None`: no commit).
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>)>);

/// Groups the coordinator's answer by topic, keeping the order it came in.
fn by_topic(rows: Vec<(String, i32, Option<OffsetValue>)>) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for (t, p, v) in rows {
        match out.last_mut() {
            Some((name, ps)) if *name == t => ps.push((p, v)),
            _ => out.push((t, vec![(p, v)])),
        }
    }
    out
}

const UNSTABLE: i16 = kafka_protocol::ResponseError::UnstableOffsetCommit.code();

/// `require_stable` (KIP-447, v7+): a partition with transactional offsets waiting for
/// their marker answers UNSTABLE_OFFSET_COMMIT, and the client retries, so a consumer
/// never starts from offsets a committing transaction is about to replace.
fn unstable(ctx: &Ctx<'_>, require_stable: bool, group: &str, topic: &str, p: i32) -> bool {
    require_stable && ctx.groups.has_pending(group, topic, p)
}

pub fn fetch(ctx: &Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                if let Err(e) = ctx.groups.owns(&g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(group_code(&e).code());
                }
                let topics: Requested = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let group = g.group_id.0.to_string();
                let rows = ctx.groups.fetch(&group, topics);
                let topics = by_topic(rows)
                    .into_iter()
                    .map(|(t, ps)| {
                        let partitions = ps
                            .into_iter()
                            .map(|(p, v)| {
                                if unstable(ctx, req.require_stable, &group, &t, p) {
                                    return OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(UNSTABLE);
                                }
                                let v = v.unwrap_or_else(OffsetValue::none);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(v.offset)
                                    .with_committed_leader_epoch(v.leader_epoch)
                                    .with_metadata(Some(str_bytes(v.metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(str_bytes(t)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    if let Err(e) = ctx.groups.owns(&req.group_id.0) {
        if ctx.version >= 2 {
            return OffsetFetchResponse::default().with_error_code(group_code(&e).code());
        }
    }
    let topics: Requested = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let rows = ctx.groups.fetch(&req.group_id.0, topics);
    let topics = by_topic(rows)
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, v)| {
                    let stable = ctx.version >= 7 && req.require_stable;
                    if unstable(ctx, stable, &req.group_id.0, &t, p) {
                        return OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_error_code(UNSTABLE);
                    }
                    let v = v.unwrap_or_else(OffsetValue::none);
                    let r = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(v.offset)
                        .with_metadata(Some(str_bytes(v.metadata)));
                    if ctx.version >= 5 {
                        r.with_committed_leader_epoch(v.leader_epoch)
                    } else {
                        r
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(str_bytes(t)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub fn delete(ctx: &Ctx<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let tps: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    match ctx.groups.delete_offsets(&req.group_id.0, &tps) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(group_code(&e).code()),
        Ok(results) => {
            let mut codes = results.iter().map(group_result_code);
            let topics = req
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(codes.next().unwrap_or(0))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
