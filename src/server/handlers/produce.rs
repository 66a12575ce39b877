//! Produce: decode each partition's records, hand them to the replica manager, encode its
//! answers. acks=0 sends no response at all.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;

use std::sync::Arc;
use std::time::Duration;

use super::{str_bytes, Ctx};
use crate::replica::verify::{first_batch_producer, Verification};
use crate::replica::{AppendEntry, AppendRequest, ReplicaError, TxnCheck};
use crate::server::replica_code;
use strata_controller::{AclOperation, ResourceType};

/// Returns `None` for acks=0: the client expects no response at all.
pub async fn handle(ctx: &Ctx<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    if !matches!(acks, -1..=1) {
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
                            .with_error_code(ResponseError::InvalidRequiredAcks.code())
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(t.name)
                    .with_partition_responses(partitions)
            })
            .collect();
        return Some(ProduceResponse::default().with_responses(responses));
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
    let refused = match (&ctx.txn_verifier, &req.transactional_id) {
        (Some(verifier), Some(id)) if !txn_refused => {
            verify_txn_entries(ctx, verifier, &id.0, &mut entries).await
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

/// An entry to ask the coordinator about: its index, partition and guard.
type Ask = (usize, Arc<crate::replica::Partition>, u64);

/// Marks each transactional entry for the guarded append and asks the coordinator about
/// the partitions where the producer has no verified or ongoing transaction yet; returns
/// per entry the refusal of those it said no to (or could not answer for).
async fn verify_txn_entries(
    ctx: &Ctx<'_>,
    verifier: &crate::txn::verify::TxnVerifier,
    id: &str,
    entries: &mut [AppendEntry],
) -> Vec<Option<ReplicaError>> {
    let mut refused: Vec<Option<ReplicaError>> = (0..entries.len()).map(|_| None).collect();
    // (producer id, epoch) -> (entry index, partition, guard) to ask about.
    let mut asks: Vec<((i64, i16), Vec<Ask>)> = Vec::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        let Some((pid, epoch, true)) = first_batch_producer(&entry.records) else {
            continue;
        };
        // Not the leader: the append answers NOT_LEADER_OR_FOLLOWER.
        let Ok(part) = ctx.replicas.leader_partition(&entry.topic, entry.partition) else {
            continue;
        };
        let token = match part.txn_verification(pid, epoch) {
            None => None,
            Some(Verification::Cached(t)) => Some(t),
            Some(Verification::Ask(t)) => {
                match asks.iter_mut().find(|(k, _)| *k == (pid, epoch)) {
                    Some((_, v)) => v.push((i, part, t)),
                    None => asks.push(((pid, epoch), vec![(i, part, t)])),
                }
                Some(t)
            }
        };
        entry.txn_check = Some(TxnCheck {
            producer_id: pid,
            epoch,
            token,
        });
    }
    for ((pid, epoch), parts) in asks {
        let names = parts
            .iter()
            .map(|(_, p, _)| (p.tp.topic.to_string(), p.tp.partition))
            .collect();
        let verdicts = verifier.verify(id, (pid, epoch), names).await;
        for ((i, part, token), (_, code)) in parts.into_iter().zip(verdicts) {
            part.txn_verified(pid, token, code == 0);
            if code != 0 {
                let code = produce_code(code);
                let e = ReplicaError::TxnNotVerified {
                    tp: part.tp.clone(),
                    producer_id: pid,
                    epoch,
                    code: code.code(),
                    reason: format!(
                        "the transaction coordinator of '{id}' did not confirm the partition is in its transaction ({code:?})"
                    ),
                };
                tracing::debug!(error = %e, "transactional produce refused");
                refused[i] = Some(e);
            }
        }
    }
    refused
}

/// What a producer gets for the coordinator's answer: INVALID_TXN_STATE when the
/// partition is not in the transaction, INVALID_PRODUCER_EPOCH when the epoch is stale,
/// and NOT_ENOUGH_REPLICAS (retriable for every producer) when the coordinator could not
/// answer, as Kafka does for Produce.
fn produce_code(code: i16) -> ResponseError {
    use ResponseError as E;
    match E::try_from_code(code) {
        Some(E::ProducerFenced | E::InvalidProducerEpoch) => E::InvalidProducerEpoch,
        Some(E::TransactionalIdAuthorizationFailed) => E::TransactionalIdAuthorizationFailed,
        Some(
            E::CoordinatorNotAvailable
            | E::NotCoordinator
            | E::CoordinatorLoadInProgress
            | E::ConcurrentTransactions
            | E::RequestTimedOut,
        ) => E::NotEnoughReplicas,
        _ => E::InvalidTxnState,
    }
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
