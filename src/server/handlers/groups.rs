//! Group membership APIs: FindCoordinator (groups and transactional ids), JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups. Each translates the request
//! for `group::GroupCoordinator` and encodes its answer, setting version-specific
//! fields only for the versions that carry them.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::group::{self, GroupError};
use crate::server::{group_code, group_result_code};
use strata_controller::{AclOperation, ResourceType};

fn code(e: &GroupError) -> i16 {
    group_code(e).code()
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// The coordinator of a group is the leader of its `__consumer_offsets` partition.
pub fn find_coordinator(ctx: &Ctx<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let image = ctx.broker.image();
    // Key type 0 is a consumer group, 1 a transactional id.
    let locate = |key: &str| -> Result<(BrokerId, StrBytes, i32), ResponseError> {
        // DESCRIBE on the group (or transactional id) comes first, as in Kafka.
        if req.key_type == 0 && !ctx.group_allowed(AclOperation::Describe, key) {
            return Err(ResponseError::GroupAuthorizationFailed);
        }
        if req.key_type == 1
            && !ctx.allowed(AclOperation::Describe, ResourceType::TransactionalId, key)
        {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
        let node = match req.key_type {
            0 => ctx.groups.coordinator_of(key),
            1 => ctx.txns.coordinator_of(key),
            _ => return Err(ResponseError::InvalidRequest),
        }
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let b = image
            .brokers
            .get(&node)
            .filter(|b| !b.fenced)
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let (host, port) = b.endpoint(ctx.listener);
        Ok((BrokerId(node), str_bytes(host), port as i32))
    };
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = locate(&key);
                let c = Coordinator::default().with_key(key);
                match found {
                    Ok((node, host, port)) => c.with_node_id(node).with_host(host).with_port(port),
                    Err(e) => c
                        .with_error_code(e.code())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(&req.key) {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(node)
            .with_host(host)
            .with_port(port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

pub async fn join_group(ctx: &Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let jr = group::JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: if ctx.version >= 5 {
            opt(&req.group_instance_id)
        } else {
            None
        },
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if ctx.version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let refused = !group.is_empty() && !ctx.group_allowed(AclOperation::Read, &group);
    let r = if group.is_empty() || refused {
        group::JoinResponse::error(GroupError::UnknownMemberId, &jr.member_id)
    } else {
        ctx.groups.join(&group, jr).await
    };
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(if ctx.version >= 5 {
                    m.instance_id.map(str_bytes)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error.as_ref().map_or(0, code))
        .with_generation_id(r.generation)
        .with_leader(str_bytes(r.leader))
        .with_member_id(str_bytes(r.member_id))
        .with_members(members);
    if group.is_empty() {
        resp.error_code = ResponseError::InvalidGroupId.code();
    }
    if refused {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
    }
    if ctx.version >= 7 {
        resp.protocol_type = r.protocol_type.map(str_bytes);
        resp.protocol_name = r.protocol.map(str_bytes);
    } else {
        resp.protocol_name = Some(str_bytes(r.protocol.unwrap_or_default()));
    }
    resp
}

pub async fn sync_group(ctx: &Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    if !ctx.group_allowed(AclOperation::Read, &group) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let sr = group::SyncRequest {
        member_id: req.member_id.to_string(),
        instance_id: if ctx.version >= 3 {
            opt(&req.group_instance_id)
        } else {
            None
        },
        generation: req.generation_id,
        protocol_type: if ctx.version >= 5 {
            opt(&req.protocol_type)
        } else {
            None
        },
        protocol_name: if ctx.version >= 5 {
            opt(&req.protocol_name)
        } else {
            None
        },
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    match ctx.groups.sync(&group, sr).await {
        Ok((assignment, protocol_type, protocol)) => {
            let r = SyncGroupResponse::default().with_assignment(assignment);
            if ctx.version >= 5 {
                r.with_protocol_type(protocol_type.map(str_bytes))
                    .with_protocol_name(protocol.map(str_bytes))
            } else {
                r
            }
        }
        Err(e) => SyncGroupResponse::default().with_error_code(code(&e)),
    }
}

pub fn heartbeat(ctx: &Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.group_allowed(AclOperation::Read, &req.group_id.0) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let instance = if ctx.version >= 3 {
        opt(&req.group_instance_id)
    } else {
        None
    };
    let res = ctx.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        instance.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(group_result_code(&res))
}

pub fn leave_group(ctx: &Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !ctx.group_allowed(AclOperation::Read, &req.group_id.0) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match ctx.groups.leave(&req.group_id.0, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(code(&e)),
        Ok(results) if ctx.version < 3 => {
            let c = results.first().map_or(0, group_result_code);
            LeaveGroupResponse::default().with_error_code(c)
        }
        Ok(results) => {
            let members = members
                .into_iter()
                .zip(&results)
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(group_result_code(r))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}

pub fn list_groups(ctx: &Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = if ctx.version >= 4 {
        req.states_filter.iter().map(|s| s.to_string()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if ctx.version >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    // DESCRIBE on the cluster lists every group; otherwise those the principal may describe.
    let all = ctx.cluster_allowed(AclOperation::Describe);
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .filter(|g| all || ctx.group_allowed(AclOperation::Describe, &g.group_id))
        .filter(|g| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(g.state)))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            if ctx.version >= 4 {
                l.group_state = StrBytes::from_static_str(g.state);
            }
            if ctx.version >= 5 {
                l.group_type = StrBytes::from_static_str(g.group_type);
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub fn describe_groups(ctx: &Ctx<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let include_ops = ctx.version >= 3 && req.include_authorized_operations;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if !ctx.group_allowed(AclOperation::Describe, &id.0) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            if let Err(e) = ctx.groups.owns(&id.0) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(code(&e));
            }
            let d = ctx.groups.describe(&id.0);
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(str_bytes(m.member_id))
                        .with_group_instance_id(if ctx.version >= 4 {
                            m.instance_id.map(str_bytes)
                        } else {
                            None
                        })
                        .with_client_id(str_bytes(m.client_id))
                        .with_client_host(str_bytes(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let ops = if include_ops {
                ctx.authorized_operations(ResourceType::Group, &id.0)
            } else {
                i32::MIN
            };
            DescribedGroup::default()
                .with_authorized_operations(ops)
                .with_group_id(id)
                .with_group_state(StrBytes::from_static_str(d.state))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub fn delete_groups(ctx: &Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    // DELETE on each group; refused ones are not passed on.
    let (allowed, refused): (Vec<GroupId>, Vec<GroupId>) = req
        .groups_names
        .into_iter()
        .partition(|g| ctx.group_allowed(AclOperation::Delete, &g.0));
    let names: Vec<String> = allowed.iter().map(|g| g.0.to_string()).collect();
    let results = ctx.groups.delete_groups(&names);
    let results = allowed
        .into_iter()
        .zip(&results)
        .map(|(g, r)| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(group_result_code(r))
        })
        .chain(refused.into_iter().map(|g| {
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(ResponseError::GroupAuthorizationFailed.code())
        }))
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
