//! AddRaftVoter and RemoveRaftVoter (KIP-853, keys 80 and 81): change the metadata quorum's
//! voters at runtime. Any node takes them and the controller forwards the change to the Raft
//! leader, which checks that it is safe (`strata_controller::voters`). Needs ALTER on the
//! cluster.
//!
//! Departures from Kafka: Strata has no directory ids (`voter_directory_id` is ignored), and
//! AddRaftVoter promotes a node that already joined as a learner (`process.roles=broker`), so its
//! `listeners` are ignored: the node's controller address is the one it joined with. A removed
//! voter stays a learner (Kafka's observer); RemoveRaftVoter with Strata's tagged field
//! [`FORGET_TAG`] drops it from the membership entirely (a dead node being replaced).

use std::time::Duration;

use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, ControllerError, VoterChange, VoterChangeError};

use super::{str_bytes, Ctx};
use crate::server::controller_code;

use crate::protocol::tagged::FORGET_VOTER_TAG as FORGET_TAG;

/// How long a change may take when the request does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn add(ctx: &Ctx<'_>, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let timeout = u64::try_from(req.timeout_ms)
        .ok()
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let node_id = req.voter_id;
    let (code, message) = change(ctx, req.cluster_id.as_ref(), node_id, timeout, |id| {
        VoterChange::Add { node_id: id }
    })
    .await;
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

pub async fn remove(ctx: &Ctx<'_>, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let forget = req.unknown_tagged_fields.contains_key(&FORGET_TAG);
    let (code, message) = change(
        ctx,
        req.cluster_id.as_ref(),
        req.voter_id,
        DEFAULT_TIMEOUT,
        |id| VoterChange::Remove {
            node_id: id,
            forget,
        },
    )
    .await;
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message)
}

async fn change(
    ctx: &Ctx<'_>,
    cluster_id: Option<&StrBytes>,
    node_id: i32,
    timeout: Duration,
    make: impl FnOnce(u64) -> VoterChange,
) -> (i16, Option<StrBytes>) {
    let fail = |e: ResponseError, m: String| (e.code(), Some(str_bytes(m)));
    if !ctx.cluster_allowed(AclOperation::Alter) {
        return fail(
            ResponseError::ClusterAuthorizationFailed,
            format!("{} may not ALTER the cluster", ctx.principal),
        );
    }
    let ours = ctx.broker.image().cluster_id.clone();
    if let Some(id) = cluster_id.filter(|id| !id.is_empty() && id.as_str() != ours) {
        return fail(
            ResponseError::InconsistentClusterId,
            format!("cluster id {id} is not this cluster's ({ours})"),
        );
    }
    let Ok(node) = u64::try_from(node_id) else {
        return fail(
            ResponseError::InvalidRequest,
            format!("voter id {node_id} is negative"),
        );
    };
    match ctx
        .broker
        .controller
        .change_voters(make(node), timeout)
        .await
    {
        Ok(view) => {
            tracing::info!(
                voters = ?view.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
                "metadata quorum voters changed by an admin request"
            );
            (0, None)
        }
        Err(e) => fail(voter_code(&e), e.to_string()),
    }
}

fn voter_code(e: &ControllerError) -> ResponseError {
    use VoterChangeError as V;
    match e {
        ControllerError::VoterChange(v) => match v {
            V::AlreadyVoter { .. } => ResponseError::DuplicateVoter,
            V::NotAVoter { .. } | V::UnknownNode { .. } => ResponseError::VoterNotFound,
            V::LastVoter { .. } => ResponseError::InvalidRequest,
            V::NoQuorumAfter { .. } | V::NotCaughtUp { .. } | V::InProgress { .. } => {
                ResponseError::RequestTimedOut
            }
        },
        ControllerError::MembershipChangeTimedOut { .. } => ResponseError::RequestTimedOut,
        ControllerError::SingleVoter => ResponseError::UnsupportedVersion,
        other => controller_code(other),
    }
}
