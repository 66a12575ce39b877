//! Fetch: decode the partitions asked for, hand them to the replica manager (which reads
//! both tiers and long-polls), encode its answers in the request's shape.
//!
//! Fetch sessions (KIP-227) are declined by answering session id 0, which the protocol
//! allows; clients then send full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::replica::{FetchOrigin, FetchParams, FetchedPartition, PartitionFetch, TopicRef};
use crate::server::replica_code;

pub async fn handle(ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    if req.session_id != 0 && req.session_epoch > 0 {
        // We never hand out sessions (KIP-227 allows a broker to decline), so a client
        // naming one has a stale id: it will fall back to full fetches.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let by_id = ctx.version >= 13;
    let mut partitions = Vec::new();
    for t in &req.topics {
        let topic = if by_id {
            TopicRef::Id(t.topic_id)
        } else {
            TopicRef::Name(Arc::from(t.topic.0.as_str()))
        };
        for p in &t.partitions {
            partitions.push(PartitionFetch {
                topic: topic.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
            });
        }
    }
    let read_committed = req.isolation_level == 1;
    let params = FetchParams {
        origin: if replica_id >= 0 {
            FetchOrigin::Follower { replica_id }
        } else {
            FetchOrigin::Consumer
        },
        max_wait: Duration::from_millis(req.max_wait_ms.max(0) as u64),
        min_bytes: req.min_bytes.max(0) as usize,
        max_bytes: if req.max_bytes <= 0 {
            i32::MAX as usize
        } else {
            req.max_bytes as usize
        },
        read_committed,
        partitions,
    };
    let mut answers = ctx.replicas.fetch(params).await.into_iter();
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .zip(answers.by_ref())
                .map(|(p, a)| partition_data(p.partition, a))
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

fn partition_data(index: i32, a: FetchedPartition) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(index)
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(a.aborted.map(|list| {
            list.into_iter()
                .map(|t| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(t.producer_id))
                        .with_first_offset(t.first_offset)
                })
                .collect()
        }))
        .with_high_watermark(a.high_watermark)
        .with_last_stable_offset(a.last_stable_offset)
        .with_log_start_offset(a.log_start_offset);
    match a.records {
        Ok(records) => base.with_records(Some(records)),
        Err(e) => base
            .with_error_code(replica_code(&e).code())
            .with_records(Some(Bytes::new())),
    }
}
