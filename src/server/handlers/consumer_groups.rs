//! KIP-848 consumer group APIs: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe
//! (69). Topic ids of the wire are translated to names for `group::consumer` and back.

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::messages::consumer_group_describe_response as cgd;
use kafka_protocol::messages::consumer_group_heartbeat_response as cgh;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{str_bytes, Ctx};
use crate::group::consumer::{Assignment, Heartbeat};
use crate::group::GroupError;
use crate::server::group_code;
use strata_controller::AclOperation;

/// Topic ids and names of the current metadata image.
struct TopicIds {
    by_id: HashMap<Uuid, String>,
    by_name: HashMap<String, Uuid>,
}

impl TopicIds {
    fn new(ctx: &Ctx<'_>) -> TopicIds {
        let image = ctx.broker.image();
        TopicIds {
            by_id: image
                .topics
                .values()
                .map(|t| (t.id, t.name.clone()))
                .collect(),
            by_name: image
                .topics
                .values()
                .map(|t| (t.name.clone(), t.id))
                .collect(),
        }
    }

    /// Partitions by topic id to partitions by name; unknown ids (deleted topics) are
    /// dropped, the member owns nothing of them here.
    fn names(&self, parts: impl IntoIterator<Item = (Uuid, Vec<i32>)>) -> Assignment {
        let mut out = Assignment::new();
        for (id, ps) in parts {
            if let Some(name) = self.by_id.get(&id) {
                out.entry(name.clone())
                    .or_default()
                    .extend(ps.into_iter().filter(|p| *p >= 0));
            }
        }
        out
    }

    fn ids(&self, a: &Assignment) -> Vec<(Uuid, String, Vec<i32>)> {
        a.iter()
            .filter_map(|(t, ps)| {
                let id = self.by_name.get(t)?;
                Some((*id, t.clone(), ps.iter().copied().collect()))
            })
            .collect()
    }
}

fn error_response(e: &GroupError) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(group_code(e).code())
        .with_error_message(Some(str_bytes(e.to_string())))
}

pub async fn heartbeat(
    ctx: &Ctx<'_>,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    if group.is_empty() {
        return error_response(&GroupError::InvalidRequest {
            reason: "GroupId must not be empty".to_string(),
        });
    }
    if !ctx.group_allowed(AclOperation::Read, &group) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let ids = TopicIds::new(ctx);
    let hb = Heartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|v| v.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned: req
            .topic_partitions
            .map(|v| ids.names(v.into_iter().map(|tp| (tp.topic_id, tp.partitions)))),
    };
    match ctx.groups.consumer_heartbeat(&group, hb).await {
        Err(e) => error_response(&e),
        Ok(r) => {
            let assignment = r.assignment.map(|a| {
                let tps = ids
                    .ids(&a)
                    .into_iter()
                    .map(|(id, _, ps)| {
                        cgh::TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect();
                cgh::Assignment::default().with_topic_partitions(tps)
            });
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(str_bytes(r.member_id)))
                .with_member_epoch(r.member_epoch)
                .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
                .with_assignment(assignment)
        }
    }
}

fn describe_assignment(ids: &TopicIds, a: &Assignment) -> cgd::Assignment {
    let tps = ids
        .ids(a)
        .into_iter()
        .map(|(id, name, ps)| {
            cgd::TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(str_bytes(name)))
                .with_partitions(ps)
        })
        .collect();
    cgd::Assignment::default().with_topic_partitions(tps)
}

pub fn describe(ctx: &Ctx<'_>, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let ids = TopicIds::new(ctx);
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = cgd::DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !ctx.group_allowed(AclOperation::Describe, &id.0) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let d = match ctx.groups.consumer_describe(&id.0) {
                Ok(d) => d,
                Err(e) => {
                    return base
                        .with_error_code(group_code(&e).code())
                        .with_error_message(Some(str_bytes(e.to_string())))
                }
            };
            let members = d
                .members
                .iter()
                .zip(&d.targets)
                .map(|(m, target)| {
                    let mut topics: BTreeSet<String> = m.topic_names.iter().cloned().collect();
                    topics.retain(|t| !t.is_empty());
                    cgd::Member::default()
                        .with_member_id(str_bytes(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(str_bytes))
                        .with_rack_id(m.rack_id.clone().map(str_bytes))
                        .with_member_epoch(m.epoch)
                        .with_client_id(str_bytes(m.client_id.clone()))
                        .with_client_host(str_bytes(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            topics
                                .into_iter()
                                .map(|t| TopicName(str_bytes(t)))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(m.regex.clone().map(str_bytes))
                        .with_assignment(describe_assignment(&ids, &m.assigned))
                        .with_target_assignment(describe_assignment(&ids, target))
                        .with_member_type(if m.classic.is_some() { 0 } else { 1 })
                })
                .collect();
            base.with_group_state(str_bytes(d.state))
                .with_group_epoch(d.epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(str_bytes(d.assignor))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
