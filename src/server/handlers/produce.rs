//! Produce: append each partition's batches to its log. Offsets are assigned by the
//! log; the bytes are otherwise stored as the client sent them.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::{now_ms, BrokerError};
use crate::server::error_code;
use crate::server::errors::log_code;

/// Returns `None` for acks=0: the client expects no response at all.
pub fn handle(ctx: &Ctx, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks_valid = matches!(req.acks, -1..=1);
    let now = now_ms();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let partition_responses = topic
            .partition_data
            .into_iter()
            .map(|p| {
                let base = PartitionProduceResponse::default().with_index(p.index);
                if !acks_valid {
                    return base.with_error_code(ResponseError::InvalidRequiredAcks.code());
                }
                let records = p.records.unwrap_or_default();
                append(ctx, &name, p.index, &records, now, base)
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    (req.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn append(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    records: &[u8],
    now: i64,
    base: PartitionProduceResponse,
) -> PartitionProduceResponse {
    let part = match ctx.broker.partition(topic, partition) {
        Ok(p) => p,
        Err(e) => return base.with_error_code(error_code(&e).code()),
    };
    match part.append(records, now) {
        Ok(info) => {
            crate::metrics::produce_bytes(&part.tp.topic, records.len());
            if info.duplicate {
                tracing::debug!(tp = %part.tp, base_offset = info.base_offset, "duplicate batch of an idempotent producer; answered with its original offsets");
            }
            base.with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset)
        }
        Err(e) => {
            let code = log_code(&e);
            let err = BrokerError::Log {
                tp: part.tp.clone(),
                source: e,
            };
            tracing::debug!(error = %err, "produce rejected");
            base.with_error_code(code.code())
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_error_message(Some(str_bytes(err.to_string())))
        }
    }
}
