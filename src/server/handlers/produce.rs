//! Produce: append each partition's batches to its log. Offsets are assigned by the
//! log; the bytes are otherwise stored as the client sent them.
//!
//! acks=all (-1) is refused with NOT_ENOUGH_REPLICAS while the ISR is smaller than
//! `min.insync.replicas`, and otherwise answered once the high watermark passes the batch
//! (every ISR member has it), or with REQUEST_TIMED_OUT after the request's timeout.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use std::sync::Arc;
use std::time::Duration;

use super::{str_bytes, Ctx};
use crate::broker::{now_ms, AppendError, BrokerError, Partition};
use crate::server::error_code;
use crate::server::errors::log_code;

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(ctx: &Ctx, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks_valid = matches!(req.acks, -1..=1);
    let now = now_ms();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    let mut waits = Vec::new();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let name = topic.name.0.to_string();
        let partition_responses = topic
            .partition_data
            .into_iter()
            .enumerate()
            .map(|(pi, p)| {
                let base = PartitionProduceResponse::default().with_index(p.index);
                if !acks_valid {
                    return base.with_error_code(ResponseError::InvalidRequiredAcks.code());
                }
                let records = p.records.unwrap_or_default();
                let (resp, wait) = append(ctx, &name, p.index, &records, now, base, req.acks);
                if let Some(w) = wait {
                    waits.push((ti, pi, w));
                }
                resp
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    for (ti, pi, (part, offset)) in waits {
        if let Err(e) = part.wait_replicated(offset, deadline, req.timeout_ms).await {
            tracing::debug!(error = %e, "acks=all produce not confirmed");
            let r = &mut responses[ti].partition_responses[pi];
            r.error_code = error_code(&e).code();
            r.error_message = Some(str_bytes(e.to_string()));
        }
    }
    (req.acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// The partition and the offset the high watermark must pass before an acks=all answer.
type ReplicationWait = (Arc<Partition>, i64);

fn append(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    records: &[u8],
    now: i64,
    base: PartitionProduceResponse,
    acks: i16,
) -> (PartitionProduceResponse, Option<ReplicationWait>) {
    let rejected = |base: PartitionProduceResponse, err: BrokerError| {
        tracing::debug!(error = %err, "produce rejected");
        base.with_error_code(error_code(&err).code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_error_message(Some(str_bytes(err.to_string())))
    };
    let part = match ctx.broker.leader_partition(topic, partition) {
        Ok(p) => p,
        Err(e) => return (base.with_error_code(error_code(&e).code()), None),
    };
    if acks == -1 {
        let isr = part.meta().isr.len();
        let min = ctx
            .broker
            .topic(topic)
            .map_or(1, |t| t.config.min_insync_replicas);
        if (isr as i32) < min {
            let err = BrokerError::NotEnoughReplicas {
                tp: part.tp.clone(),
                isr,
                min,
            };
            return (rejected(base, err), None);
        }
    }
    match part.append(records, now) {
        Ok(info) => {
            crate::metrics::produce_bytes(&part.tp.topic, records.len());
            if info.duplicate {
                tracing::debug!(tp = %part.tp, base_offset = info.base_offset, "duplicate batch of an idempotent producer; answered with its original offsets");
            }
            let wait = (acks == -1).then(|| (part.clone(), info.last_offset + 1));
            let resp = base
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset);
            (resp, wait)
        }
        Err(AppendError::NotLeader { tp, leader }) => {
            (rejected(base, BrokerError::NotLeader { tp, leader }), None)
        }
        Err(AppendError::Log(e)) => {
            let code = log_code(&e);
            let err = BrokerError::Log {
                tp: part.tp.clone(),
                source: e,
            };
            (rejected(base, err).with_error_code(code.code()), None)
        }
    }
}
