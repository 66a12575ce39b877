//! InitProducerId: a producer id and epoch for an idempotent producer.
//!
//! A non-null `transactional_id` needs the transaction coordinator, which Strata
//! does not have yet: it is answered with COORDINATOR_NOT_AVAILABLE, what Kafka
//! answers while the coordinator of a transactional id is unavailable. Clients
//! treat it as retriable, so the answer stays correct once a coordinator exists.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::server::error_code;
use strata_controller::{AclOperation, ResourceType};

pub async fn handle(ctx: &Ctx<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(code.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = &req.transactional_id {
        if id.0.is_empty() {
            // As Kafka's transaction coordinator: an empty id is not "no id".
            return failed(ResponseError::InvalidRequest);
        }
        if !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, &id.0) {
            return failed(ResponseError::TransactionalIdAuthorizationFailed);
        }
        tracing::warn!(transactional_id = %id.0, "InitProducerId for a transactional producer: transactions are not supported yet");
        return failed(ResponseError::CoordinatorNotAvailable);
    }
    // KIP-679: an idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on
    // at least one topic.
    if !ctx.cluster_allowed(AclOperation::IdempotentWrite)
        && !ctx.any_allowed(AclOperation::Write, ResourceType::Topic)
    {
        return failed(ResponseError::ClusterAuthorizationFailed);
    }
    match ctx
        .broker
        .init_producer_id((req.producer_id.0, req.producer_epoch))
        .await
    {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => {
            tracing::warn!(error = %e, "could not allocate a producer id");
            failed(error_code(&e))
        }
    }
}
