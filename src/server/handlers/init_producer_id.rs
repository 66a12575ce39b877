//! InitProducerId: a producer id and epoch for an idempotent producer, or, with a
//! `transactional_id`, from the transaction coordinator, which fences an earlier
//! producer with the same id by bumping the epoch.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::server::{error_code, txn_code};
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
        // v3+ (KIP-360) names the producer id and epoch the producer holds.
        let expected = (ctx.version >= 3 && req.producer_id.0 >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        let r = ctx
            .txns
            .init_producer_id(&id.0, req.transaction_timeout_ms, expected)
            .await;
        return match r {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            // PRODUCER_FENCED from v4 on (KIP-588).
            Err(e) => failed(txn_code(&e, ctx.version >= 4)),
        };
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
