//! UnregisterBroker (key 64), served as Strata's decommission (`strata cluster decommission`):
//! the broker is marked so that no new replica is placed on it, and the active controller
//! moves each of its replicas to another broker (the new replica catches up and joins the ISR
//! before the old one leaves; `strata_controller::decommission`). Needs ALTER on the cluster.
//!
//! Departure from Kafka, where UnregisterBroker drops the registration of a broker that is
//! gone and leaves its replicas offline: Strata keeps the registration (marked) and drains it
//! first, so no partition loses a replica. The answer comes once the mark is committed; the
//! drain continues in the background (`strata cluster decommission` waits for it).
//! A drain that cannot finish (fewer placeable brokers than a topic's replication factor) is
//! refused up front with INVALID_REPLICATION_FACTOR.
//!
//! With Strata's tagged field [`CANCEL_DECOMMISSION_TAG`] (`strata cluster decommission
//! --cancel`) the request cancels the decommission instead: the broker takes replicas again and
//! the drain's moves still copying are cancelled (`strata_controller::decommission`); a broker
//! that is not decommissioned gets INVALID_REQUEST.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::ResponseError;
use strata_controller::{AclOperation, ApplyError, ControllerError, MetadataCommand};

use super::{str_bytes, Ctx};
use crate::protocol::tagged::CANCEL_DECOMMISSION_TAG;
use crate::server::controller_code;

pub async fn handle(ctx: &Ctx<'_>, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    let fail = |e: ResponseError, m: String| {
        UnregisterBrokerResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(m)))
    };
    if !ctx.cluster_allowed(AclOperation::Alter) {
        return fail(
            ResponseError::ClusterAuthorizationFailed,
            format!("{} may not ALTER the cluster", ctx.principal),
        );
    }
    let node = req.broker_id.0;
    if req
        .unknown_tagged_fields
        .contains_key(&CANCEL_DECOMMISSION_TAG)
    {
        return match ctx
            .broker
            .controller
            .propose(MetadataCommand::CancelDecommission { node_id: node })
            .await
        {
            Ok(_) => {
                tracing::info!(broker = node, "decommission cancelled");
                UnregisterBrokerResponse::default()
            }
            Err(e) => fail(controller_code(&e), e.to_string()),
        };
    }
    let image = ctx.broker.image();
    if !image.brokers.contains_key(&node) {
        return fail(
            ResponseError::BrokerIdNotRegistered,
            format!("broker {node} is not registered"),
        );
    }
    if let Err(reason) = can_drain(&image, node) {
        return fail(ResponseError::InvalidReplicationFactor, reason);
    }
    match ctx
        .broker
        .controller
        .propose(MetadataCommand::DecommissionBroker { node_id: node })
        .await
    {
        Ok(_) => {
            tracing::info!(
                broker = node,
                "broker decommissioned: its replicas move to other brokers"
            );
            UnregisterBrokerResponse::default()
        }
        Err(ControllerError::Rejected(ApplyError::UnknownBroker { .. })) => fail(
            ResponseError::BrokerIdNotRegistered,
            format!("broker {node} is not registered"),
        ),
        Err(e) => fail(controller_code(&e), e.to_string()),
    }
}

/// Whether every partition on `node` has somewhere to go: each of its topics needs as many
/// placeable brokers (registered, unfenced, not decommissioned) as its replication factor.
fn can_drain(image: &strata_controller::MetadataImage, node: i32) -> Result<(), String> {
    let placeable = image
        .brokers
        .values()
        .filter(|b| b.node_id != node && !b.fenced && !image.decommissioned.contains(&b.node_id))
        .count();
    for t in image.topics.values() {
        let on_node = t.assignment.iter().any(|p| p.replicas.contains(&node));
        if on_node && (t.replication_factor.max(1) as usize) > placeable {
            return Err(format!(
                "topic {} has replication factor {} but only {placeable} live brokers would remain \
                 to hold its replicas; add a broker first",
                t.name, t.replication_factor
            ));
        }
    }
    Ok(())
}
