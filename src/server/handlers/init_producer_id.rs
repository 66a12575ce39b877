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
        tracing::warn!(transactional_id = %id.0, "InitProducerId for a transactional producer: transactions are not supported yet");
        return failed(ResponseError::CoordinatorNotAvailable);
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
