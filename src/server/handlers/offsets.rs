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
use kafka_protocol::ResponseError;
use strata_controller::AclOperation;

pub async fn commit(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    // READ on the group, then READ on each topic; refused topics are not committed.
    if !ctx.group_allowed(AclOperation::Read, &req.group_id.0) {
        return commit_answer(req.topics, &[], &mut std::iter::empty(), GROUP_REFUSED);
    }
    let refused: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.topic_allowed(AclOperation::Read, &t.name.0))
        .collect();
    let entries: Vec<CommitEntry> = req
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .flat_map(|(t, _)| {
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
    commit_answer(req.topics, &refused, &mut codes, 0)
}

const GROUP_REFUSED: i16 = ResponseError::GroupAuthorizationFailed.code();

/// The answer in the request's shape: `codes` for committed partitions in order,
/// TOPIC_AUTHORIZATION_FAILED for refused topics, `fallback` when `codes` runs out.
fn commit_answer(
    topics: Vec<kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic>,
    refused: &[bool],
    codes: &mut dyn Iterator<Item = i16>,
    fallback: i16,
) -> OffsetCommitResponse {
    let topics = topics
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let topic_refused = refused.get(i).copied().unwrap_or(false);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if topic_refused {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else {
                        codes.next().unwrap_or(fallback)
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
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
type TopicOffsets = (String, Vec<(i32, Result<Option<OffsetValue>, i16>)>);

/// Groups the coordinator's answer by topic, keeping the order it came in, after the
/// authorizer: a topic the principal may not DESCRIBE is dropped from "all topics" and
/// answered TOPIC_AUTHORIZATION_FAILED when named (`Err` rows).
fn by_topic(
    ctx: &Ctx<'_>,
    rows: Vec<(String, i32, Option<OffsetValue>)>,
    named: bool,
) -> Vec<TopicOffsets> {
    let mut out: Vec<TopicOffsets> = Vec::new();
    for (t, p, v) in rows {
        let v = if ctx.topic_allowed(AclOperation::Describe, &t) {
            Ok(v)
        } else if named {
            Err(ResponseError::TopicAuthorizationFailed.code())
        } else {
            continue;
        };
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
                if !ctx.group_allowed(AclOperation::Describe, &g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(GROUP_REFUSED);
                }
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
                let named = topics.is_some();
                let rows = ctx.groups.fetch(&group, topics);
                let topics = by_topic(ctx, rows, named)
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
                                let code = v.as_ref().err().copied().unwrap_or(0);
                                let v = v.ok().flatten().unwrap_or_else(OffsetValue::none);
                                OffsetFetchResponsePartitions::default()
                                    .with_error_code(code)
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
    if !ctx.group_allowed(AclOperation::Describe, &req.group_id.0) {
        return OffsetFetchResponse::default().with_error_code(GROUP_REFUSED);
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
    let named = topics.is_some();
    let rows = ctx.groups.fetch(&req.group_id.0, topics);
    let topics = by_topic(ctx, rows, named)
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
                    let code = v.as_ref().err().copied().unwrap_or(0);
                    let v = v.ok().flatten().unwrap_or_else(OffsetValue::none);
                    let r = OffsetFetchResponsePartition::default()
                        .with_error_code(code)
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
    // DELETE on the group, READ on each topic (Kafka's rule for OffsetDelete).
    if !ctx.group_allowed(AclOperation::Delete, &req.group_id.0) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_REFUSED);
    }
    let refused: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !ctx.topic_allowed(AclOperation::Read, &t.name.0))
        .collect();
    let tps: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .flat_map(|(t, _)| {
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
                .zip(refused)
                .map(|(t, refused)| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let code = if refused {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else {
                                codes.next().unwrap_or(0)
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
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
