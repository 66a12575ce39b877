//! Produce: decode each partition's records, hand them to the replica manager, encode its
//! answers. acks=0 sends no response at all.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use std::sync::Arc;
use std::time::Duration;

use super::{str_bytes, Ctx};
use crate::replica::{AppendEntry, AppendRequest};
use crate::server::replica_code;
use strata_controller::{AclOperation, ResourceType};

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(ctx: &Ctx<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
        return Some(refuse_all(req, ResponseError::InvalidRequiredAcks, None));
    }
    // Kafka checks the transactional id first, then WRITE on each topic; a refused topic's
    // partitions are answered with the refusal and never reach the log.
    let txn_refused = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !ctx.allowed(AclOperation::Write, ResourceType::TransactionalId, id));
    let mut shape = Vec::with_capacity(req.topic_data.len());
    let mut entries = Vec::new();
    for topic in req.topic_data {
        let name: Arc<str> = Arc::from(topic.name.0.as_str());
        let indexes: Vec<i32> = topic.partition_data.iter().map(|p| p.index).collect();
        let refusal = if txn_refused {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !ctx.topic_allowed(AclOperation::Write, &name) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        if refusal.is_some() {
            shape.push((topic.name, indexes, refusal));
            continue;
        }
        for p in topic.partition_data {
            entries.push(AppendEntry {
                topic: name.clone(),
                partition: p.index,
                records: p.records.unwrap_or_default(),
                txn_check: None,
            });
        }
        shape.push((topic.name, indexes, None));
    }
    // KIP-890 part 1: a transaction's first batch on a partition waits for the
    // coordinator's yes; refused entries are answered here and never reach the log.
    // Part 2: Produce v12+ comes from a transaction version 2 producer, which sends no
    // AddPartitionsToTxn; the coordinator adds the partition (as Kafka 4.0 does).
    let add = ctx.version >= 12;
    let refused = match &req.transactional_id {
        Some(id) if !txn_refused && (add || ctx.txn_verify) => {
            ctx.replicas
                .verify_txn_entries(ctx.txn_verifier.as_ref(), &id.0, &mut entries, add)
                .await
        }
        _ => (0..entries.len()).map(|_| None).collect(),
    };
    let to_append: Vec<AppendEntry> = entries
        .into_iter()
        .zip(&refused)
        .filter(|(_, r)| r.is_none())
        .map(|(e, _)| e)
        .collect();
    let appended = ctx
        .replicas
        .append(AppendRequest {
            acks,
            timeout: Duration::from_millis(req.timeout_ms.max(0) as u64),
            entries: to_append,
        })
        .await;
    let mut appended = appended.into_iter();
    let mut results = refused
        .into_iter()
        .map(|r| match r {
            Some(e) => Err(e),
            None => appended.next().expect("one append result per entry"),
        })
        .collect::<Vec<_>>()
        .into_iter();
    if acks == 0 {
        return None;
    }
    let responses = shape
        .into_iter()
        .map(|(name, indexes, refusal)| {
            let partitions: Vec<_> = match refusal {
                Some(code) => indexes
                    .into_iter()
                    .map(|index| {
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(code.code())
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                    })
                    .collect(),
                None => answered(indexes, results.by_ref()),
            };
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}

fn answered(
    indexes: Vec<i32>,
    results: &mut impl Iterator<Item = Result<strata_log::AppendInfo, crate::replica::ReplicaError>>,
) -> Vec<PartitionProduceResponse> {
    indexes
        .into_iter()
        .zip(results)
        .map(|(index, result)| {
            let base = PartitionProduceResponse::default().with_index(index);
            match result {
                Ok(info) => base
                    .with_base_offset(info.base_offset)
                    .with_log_append_time_ms(info.log_append_time)
                    .with_log_start_offset(info.log_start_offset),
                Err(e) => base
                    .with_error_code(replica_code(&e).code())
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect()
}

/// Every partition of `req` answered with `code` (and `message`), nothing written.
pub(crate) fn refuse_all(
    req: ProduceRequest,
    code: ResponseError,
    message: Option<&str>,
) -> ProduceResponse {
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_data
                .iter()
                .map(|p| {
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code.code())
                        .with_base_offset(-1)
                        .with_error_message(message.map(str_bytes))
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
