//! Fetch: decode the partitions asked for, resolve the fetch session (KIP-227,
//! `server::fetch_session`), hand the session's partitions to the replica manager (which
//! reads both tiers and long-polls), and encode its answers: all of them for a full
//! fetch, only the changed ones for an incremental fetch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::replica::{
    FetchOrigin, FetchParams, FetchRecords, FetchedPartition, PartitionFetch, TopicRef,
};
use crate::server::fetch_session::{Begun, Key, Told, Wanted};
use crate::server::parts::Slices;
use crate::server::replica_code;
use strata_controller::AclOperation;

pub async fn handle(ctx: &Ctx<'_>, req: FetchRequest) -> FetchResponse {
    let replica_id = if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let (listed, forgotten) = session_lists(ctx.version, &req);
    let listed_count = listed.len();
    let now = crate::now_ms();
    let begun =
        ctx.fetch_sessions
            .lock()
            .begin(req.session_id, req.session_epoch, listed, forgotten, now);
    let begun = match begun {
        Ok(b) => b,
        Err(code) => return FetchResponse::default().with_error_code(code.code()),
    };
    // Followers need CLUSTER_ACTION on the cluster, consumers READ on each topic of the
    // session (including partitions an earlier request added); a refused topic's
    // partitions answer TOPIC_AUTHORIZATION_FAILED and are not read (Kafka's rule).
    let refused = refused_partitions(ctx, &begun, replica_id);
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
        zero_copy: ctx.zero_copy(),
        // Client metadata (KIP-392) comes with Fetch v11+; followers are not clients.
        client_rack: (replica_id < 0 && ctx.version >= 11).then(|| req.rack_id.to_string()),
        partitions: begun
            .partitions
            .iter()
            .zip(&refused)
            .filter(|(_, r)| !**r)
            .map(|(((topic, partition), w), _)| PartitionFetch {
                topic: topic.clone(),
                partition: *partition,
                fetch_offset: w.fetch_offset,
                max_bytes: w.max_bytes,
                current_leader_epoch: w.current_leader_epoch,
            })
            .collect(),
    };
    let mut fetched = ctx.replicas.fetch(params).await.into_iter();
    // One answer per session partition; `None` for a refused one.
    let answers: Vec<Option<FetchedPartition>> = refused
        .iter()
        .map(|r| if *r { None } else { fetched.next() })
        .collect();
    let include = if begun.session_id == 0 {
        vec![true; answers.len()]
    } else {
        let told: Vec<(Told, bool)> = answers.iter().map(told).collect();
        ctx.fetch_sessions.lock().finish(&begun, &told)
    };
    let kind = match (begun.session_id, begun.incremental) {
        (0, _) => "sessionless",
        (_, false) => "full",
        (_, true) => "incremental",
    };
    let left_out = include.iter().filter(|k| !**k).count();
    crate::metrics::fetch_session(kind, listed_count, left_out);
    let mut slices = ctx.slices.lock();
    FetchResponse::default()
        .with_session_id(begun.session_id)
        .with_responses(responses(
            &begun,
            answers,
            &include,
            read_committed,
            &mut slices,
        ))
}

/// Per partition of the session: whether the principal may not read it.
fn refused_partitions(ctx: &Ctx<'_>, begun: &Begun, replica_id: i32) -> Vec<bool> {
    if !ctx.authorizer_on() {
        return vec![false; begun.partitions.len()];
    }
    let follower_refused = replica_id >= 0 && !ctx.cluster_allowed(AclOperation::ClusterAction);
    let mut decided: std::collections::HashMap<&TopicRef, bool> = Default::default();
    begun
        .partitions
        .iter()
        .map(|((topic, _), _)| {
            *decided.entry(topic).or_insert_with(|| {
                let name = match topic {
                    TopicRef::Id(id) => ctx.metadata.topic_name_by_id(*id).map(|n| n.to_string()),
                    TopicRef::Name(n) => Some(n.to_string()),
                };
                follower_refused
                    || (replica_id < 0
                        && name.is_some_and(|n| !ctx.topic_allowed(AclOperation::Read, &n)))
            })
        })
        .collect()
}

/// What a partition's answer tells the client, and whether it carries news (records or
/// an error) that an incremental response must include. A refused partition is news.
pub(crate) fn told(a: &Option<FetchedPartition>) -> (Told, bool) {
    let Some(a) = a else {
        let unknown = Told {
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        };
        return (unknown, true);
    };
    let news = a.records.as_ref().map_or(true, |r| !r.is_empty());
    let told = Told {
        high_watermark: a.high_watermark,
        last_stable_offset: a.last_stable_offset,
        log_start_offset: a.log_start_offset,
    };
    (told, news)
}

/// The partitions a Fetch lists (with what it wants of each) and the ones it tells its
/// session to forget, keyed by topic id from version 13 on and by name before.
pub(crate) fn session_lists(version: i16, req: &FetchRequest) -> (Vec<(Key, Wanted)>, Vec<Key>) {
    let by_id = version >= 13;
    let topic_ref = |name: &TopicName, id| {
        if by_id {
            TopicRef::Id(id)
        } else {
            TopicRef::Name(Arc::from(name.0.as_str()))
        }
    };
    let mut listed = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let wanted = Wanted {
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
            };
            listed.push(((topic_ref(&t.topic, t.topic_id), p.partition), wanted));
        }
    }
    let forgotten: Vec<Key> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_ref(&t.topic, t.topic_id);
            t.partitions.iter().map(move |&p| (topic.clone(), p))
        })
        .collect();
    (listed, forgotten)
}

/// The included answers, grouped into topics in the session's order (consecutive
/// partitions of one topic share an entry, as clients send them).
pub(crate) fn responses(
    begun: &Begun,
    answers: Vec<Option<FetchedPartition>>,
    include: &[bool],
    read_committed: bool,
    slices: &mut Slices,
) -> Vec<FetchableTopicResponse> {
    let mut out: Vec<FetchableTopicResponse> = Vec::new();
    let mut last: Option<&TopicRef> = None;
    for (((topic, partition), _), (a, keep)) in begun
        .partitions
        .iter()
        .zip(answers.into_iter().zip(include))
    {
        if !keep {
            continue;
        }
        let data = match a {
            Some(a) => partition_data(*partition, a, slices),
            None => refusal(*partition, read_committed),
        };
        match out.last_mut() {
            Some(t) if last == Some(topic) => t.partitions.push(data),
            _ => {
                let entry = match topic {
                    TopicRef::Name(name) => FetchableTopicResponse::default()
                        .with_topic(TopicName(name.to_string().into())),
                    TopicRef::Id(id) => FetchableTopicResponse::default().with_topic_id(*id),
                };
                out.push(entry.with_partitions(vec![data]));
            }
        }
        last = Some(topic);
    }
    out
}

fn partition_data(index: i32, a: FetchedPartition, slices: &mut Slices) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(index)
        .with_preferred_read_replica(BrokerId(a.preferred_read_replica))
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
    let records = a
        .records
        .map_err(|e| replica_code(&e))
        .and_then(|r| match r {
            // A file range becomes a placeholder the connection sends with sendfile; when
            // the response has no room for another, the bytes are read here.
            FetchRecords::File(s) if !s.is_empty() => match slices.placeholder(s.clone()) {
                Some(placeholder) => Ok(placeholder),
                None => s.read().map_err(|e| {
                    tracing::warn!(error = %e, "fetch read failed");
                    ResponseError::KafkaStorageError
                }),
            },
            FetchRecords::File(_) => Ok(Bytes::new()),
            // Remote records: written from the chunks they were read into.
            FetchRecords::Memory(p) => Ok(slices.pieces(p)),
        });
    match records {
        Ok(records) => base.with_records(Some(records)),
        Err(code) => base
            .with_error_code(code.code())
            .with_records(Some(Bytes::new())),
    }
}

fn refusal(index: i32, read_committed: bool) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_preferred_read_replica(BrokerId(-1))
        .with_aborted_transactions(read_committed.then(Vec::new))
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_records(Some(Bytes::new()))
}
