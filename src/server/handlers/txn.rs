//! Transaction APIs: AddPartitionsToTxn (v0-3 for producers, v4+ batched for brokers,
//! with `verify_only` for KIP-890 part 1), AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
//! DescribeTransactions and ListTransactions. Each translates the request for
//! `txn::TxnCoordinator` (or the group coordinator) and encodes its answer.
//!
//! With an authorizer on, each checks what Kafka checks: WRITE on the transactional id
//! (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn), WRITE on the topics added, READ on the
//! group (AddOffsetsToTxn, TxnOffsetCommit) and on its topics, CLUSTER_ACTION for the
//! brokers' batched AddPartitionsToTxn v4+, DESCRIBE on the transactional id to describe
//! or list it.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::group::CommitEntry;
use crate::now_ms;
use crate::server::{group_result_code, txn_code};
use crate::txn::{TxnError, TxnState};
use strata_controller::{AclOperation, ResourceType};

fn txn_id_allowed(ctx: &Ctx<'_>, op: AclOperation, id: &str) -> bool {
    ctx.allowed(op, ResourceType::TransactionalId, id)
}

/// PRODUCER_FENCED is known to clients from these versions on (KIP-588); older ones
/// get INVALID_PRODUCER_EPOCH.
fn code(e: &TxnError, version: i16, fenced_from: i16) -> i16 {
    txn_code(e, version >= fenced_from).code()
}

fn partitions(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect()
}

fn topic_results(results: Vec<((String, i32), i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((t, p), code) in results {
        let r = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(p)
            .with_partition_error_code(code);
        match out.iter_mut().find(|x| *x.name.0 == *t) {
            Some(x) => x.results_by_partition.push(r),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_results_by_partition(vec![r]),
            ),
        }
    }
    out
}

/// One transaction's partitions added (or verified): a code per partition.
async fn add_one(
    ctx: &Ctx<'_>,
    id: &str,
    producer: (i64, i16),
    parts: Vec<(String, i32)>,
    verify_only: bool,
) -> Vec<((String, i32), i16)> {
    let fenced_from = 2;
    if !txn_id_allowed(ctx, AclOperation::Write, id) {
        let c = ResponseError::TransactionalIdAuthorizationFailed.code();
        return parts.into_iter().map(|tp| (tp, c)).collect();
    }
    // A topic the principal may not write fails its partitions; the rest are not attempted.
    if parts
        .iter()
        .any(|(t, _)| !ctx.topic_allowed(AclOperation::Write, t))
    {
        return parts
            .into_iter()
            .map(|(t, p)| {
                let c = if ctx.topic_allowed(AclOperation::Write, &t) {
                    ResponseError::OperationNotAttempted
                } else {
                    ResponseError::TopicAuthorizationFailed
                };
                ((t, p), c.code())
            })
            .collect();
    }
    if verify_only {
        return ctx
            .txns
            .verify_partitions(id, producer, parts)
            .await
            .into_iter()
            .map(|(tp, r)| {
                (
                    tp,
                    r.map_or_else(|e| code(&e, ctx.version, fenced_from), |_| 0),
                )
            })
            .collect();
    }
    match ctx
        .txns
        .add_partitions(id, producer, parts.clone(), verify_only)
        .await
    {
        Ok(known) => {
            let any_unknown = known.iter().any(|(_, ok)| !ok);
            known
                .into_iter()
                .map(|(tp, ok)| {
                    let c = match (ok, any_unknown) {
                        (false, _) => ResponseError::UnknownTopicOrPartition.code(),
                        (true, true) => ResponseError::OperationNotAttempted.code(),
                        (true, false) => 0,
                    };
                    (tp, c)
                })
                .collect()
        }
        Err(e) => {
            let c = code(&e, ctx.version, fenced_from);
            parts.into_iter().map(|tp| (tp, c)).collect()
        }
    }
}

pub async fn add_partitions(
    ctx: &Ctx<'_>,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.version <= 3 {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let producer = (
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
        );
        let parts = partitions(&req.v3_and_below_topics);
        let results = add_one(ctx, &id, producer, parts, false).await;
        return AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(topic_results(results));
    }
    // v4+: a batch of transactions from a partition leader (KIP-890 part 1).
    if !ctx.cluster_allowed(AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in req.transactions {
        let id = t.transactional_id.0.to_string();
        let parts = partitions(&t.topics);
        let producer = (t.producer_id.0, t.producer_epoch);
        let results = add_one(ctx, &id, producer, parts, t.verify_only).await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id)
                .with_topic_results(topic_results(results)),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

pub async fn add_offsets(ctx: &Ctx<'_>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let refused = if !txn_id_allowed(ctx, AclOperation::Write, &req.transactional_id.0) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.group_allowed(AclOperation::Read, &req.group_id.0) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    if let Some(e) = refused {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code());
    }
    let producer = (req.producer_id.0, req.producer_epoch);
    let r = ctx
        .txns
        .add_offsets(&req.transactional_id.0, producer, &req.group_id.0)
        .await;
    let c = r.err().map_or(0, |e| code(&e, ctx.version, 2));
    AddOffsetsToTxnResponse::default().with_error_code(c)
}

pub async fn end_txn(ctx: &Ctx<'_>, req: EndTxnRequest) -> EndTxnResponse {
    if !txn_id_allowed(ctx, AclOperation::Write, &req.transactional_id.0) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let producer = (req.producer_id.0, req.producer_epoch);
    // EndTxn v5+ is transaction version 2 (KIP-890 part 2): the epoch is bumped.
    let bump = ctx.version >= 5;
    let r = ctx
        .txns
        .end_txn(&req.transactional_id.0, producer, req.committed, bump)
        .await;
    match r {
        Ok((pid, epoch)) => EndTxnResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        Err(e) => EndTxnResponse::default()
            .with_error_code(code(&e, ctx.version, 2))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}

pub async fn txn_offset_commit(
    ctx: &Ctx<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let entries: Vec<CommitEntry> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if ctx.version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let tps: Vec<(String, i32)> = entries
        .iter()
        .map(|e| (e.topic.clone(), e.partition))
        .collect();
    // READ on the group, then on each topic: a refused topic's partitions fail, the rest
    // are committed (Kafka's rule).
    let group_refused = !ctx.group_allowed(AclOperation::Read, &req.group_id.0);
    let topic_refused: Vec<bool> = tps
        .iter()
        .map(|(t, _)| group_refused || !ctx.topic_allowed(AclOperation::Read, t))
        .collect();
    let entries: Vec<CommitEntry> = entries
        .into_iter()
        .zip(&topic_refused)
        .filter(|(_, r)| !**r)
        .map(|(e, _)| e)
        .collect();
    // Sent to the group's coordinator, which may not coordinate the transaction: the
    // offsets are written as the producer's transactional batch and held until its
    // transaction's marker reaches the group's partition.
    let (member, instance, generation) = if ctx.version >= 3 {
        (
            req.member_id.to_string(),
            req.group_instance_id.as_ref().map(|s| s.to_string()),
            req.generation_id,
        )
    } else {
        (String::new(), None, -1)
    };
    let r = ctx
        .groups
        .txn_commit(
            &req.group_id.0,
            (req.producer_id.0, req.producer_epoch),
            (&member, instance.as_deref(), generation),
            entries,
        )
        .await;
    let committed = topic_refused.iter().filter(|r| !**r).count();
    let mut codes_of_committed = match r {
        Ok(rs) => rs.iter().map(group_result_code).collect(),
        Err(e) => vec![group_result_code(&Err(e)); committed],
    }
    .into_iter();
    let refusal = if group_refused {
        ResponseError::GroupAuthorizationFailed
    } else {
        ResponseError::TopicAuthorizationFailed
    };
    let codes: Vec<i16> = topic_refused
        .iter()
        .map(|r| {
            if *r {
                refusal.code()
            } else {
                codes_of_committed.next().unwrap_or(0)
            }
        })
        .collect();
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for ((t, p), c) in tps.into_iter().zip(codes) {
        let part = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(c);
        match topics.iter_mut().find(|x| *x.name.0 == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(str_bytes(t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub fn describe(ctx: &Ctx<'_>, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .into_iter()
        .map(|id| {
            let base = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !txn_id_allowed(ctx, AclOperation::Describe, &id.0) {
                return base
                    .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            match ctx.txns.describe(&id.0) {
                Err(e) => base.with_error_code(code(&e, 0, 0)),
                Ok(None) => base.with_error_code(ResponseError::TransactionalIdNotFound.code()),
                Ok(Some(m)) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (t, p) in &m.partitions {
                        match topics.iter_mut().find(|x| *x.topic.0 == **t) {
                            Some(x) => x.partitions.push(*p),
                            None => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(t.clone())))
                                    .with_partitions(vec![*p]),
                            ),
                        }
                    }
                    base.with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub fn list(ctx: &Ctx<'_>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|s| !STATES.iter().any(|st| st.name() == &***s))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        None => None,
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        },
    };
    let now = now_ms();
    let listed = ctx
        .txns
        .list()
        .into_iter()
        .filter(|l| {
            req.state_filters.is_empty() || req.state_filters.iter().any(|s| &**s == l.state.name())
        })
        .filter(|l| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(l.producer_id))
        })
        .filter(|l| {
            // v1+: transactions running longer than the filter (ms).
            req.duration_filter < 0
                || (l.state == TxnState::Ongoing
                    && ctx
                        .txns
                        .start_ms(&l.id)
                        .is_some_and(|s| now - s >= req.duration_filter))
        })
        .filter(|l| pattern.as_ref().is_none_or(|r| r.is_match(&l.id)))
        .filter(|l| txn_id_allowed(ctx, AclOperation::Describe, &l.id))
        .map(|l| {
            Listed::default()
                .with_transactional_id(TransactionalId(str_bytes(l.id)))
                .with_producer_id(ProducerId(l.producer_id))
                .with_transaction_state(str_bytes(l.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
