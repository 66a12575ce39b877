//! The APIs a read-only node answers, each a translation of the [`Catalog`]:
//! - ApiVersions: the broker's version ranges of the APIs below only;
//! - Metadata: this node is the only broker, and the leader (and only replica) of every
//!   partition of every topic in the bucket; leader epochs are -1 (unknown), so clients do
//!   not validate positions with OffsetForLeaderEpoch, which this node does not serve;
//! - Fetch (`fetch.rs`) and ListOffsets: the remote tier's offsets;
//! - Produce: NOT_LEADER_OR_FOLLOWER for every partition (the node never writes);
//! - FindCoordinator: COORDINATOR_NOT_AVAILABLE (no group lives here; consumers read with
//!   assign() and keep their positions themselves, or commit to the cluster).

use crate::server::handlers::str_bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;

use super::catalog::{Catalog, PartitionView};
use super::Node;
use crate::protocol::{ProtocolError, SUPPORTED_APIS};

/// The APIs served; every other request closes the connection.
const SERVED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::FindCoordinator,
];

pub async fn dispatch(
    node: &Node,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: RequestKind,
    slices: &mut crate::server::parts::Slices,
) -> Result<Option<ResponseKind>, ProtocolError> {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    Ok(Some(match body {
        Rq::ApiVersions(_) => Rs::ApiVersions(api_versions(0)),
        Rq::Metadata(r) => Rs::Metadata(metadata(node, version, r)),
        Rq::Fetch(r) => Rs::Fetch(super::fetch::handle(node, version, r, slices).await),
        Rq::ListOffsets(r) => Rs::ListOffsets(list_offsets(node, version, r).await),
        Rq::Produce(r) => return Ok(produce(r).map(Rs::Produce)),
        Rq::FindCoordinator(r) => Rs::FindCoordinator(find_coordinator(version, r)),
        _ => {
            return Err(ProtocolError::Malformed {
                api,
                version,
                correlation_id,
                reason: "a read-only node (process.roles=reader) serves only Produce (refused), \
                         Fetch, ListOffsets, Metadata, ApiVersions and FindCoordinator; send \
                         other requests to the cluster"
                    .into(),
            })
        }
    }))
}

pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .filter(|(key, _, _)| SERVED.contains(key))
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

fn metadata(node: &Node, version: i16, req: MetadataRequest) -> MetadataResponse {
    let catalog = node.catalog.borrow().clone();
    let names: Vec<Result<String, ResponseError>> = match &req.topics {
        None => catalog.topics().map(|(n, _)| Ok(n.to_string())).collect(),
        Some(t) if t.is_empty() && version == 0 => {
            catalog.topics().map(|(n, _)| Ok(n.to_string())).collect()
        }
        Some(topics) => topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => Ok(n.0.to_string()),
                None => catalog
                    .name_of(t.topic_id)
                    .map(str::to_string)
                    .ok_or(ResponseError::UnknownTopicId),
            })
            .collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| match name {
            Ok(name) => topic(node, version, &catalog, &name),
            Err(code) => MetadataResponseTopic::default().with_error_code(code.code()),
        })
        .collect();
    let me = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node.id))
        .with_host(str_bytes(node.advertised.host.clone()))
        .with_port(i32::from(node.advertised.port))
        .with_rack(node.rack.clone().map(str_bytes));
    MetadataResponse::default()
        .with_brokers(vec![me])
        .with_cluster_id(None)
        // No controller here: admin requests go to the cluster.
        .with_controller_id(BrokerId(-1))
        .with_cluster_authorized_operations(i32::MIN)
        .with_topics(topics)
}

fn topic(node: &Node, version: i16, catalog: &Catalog, name: &str) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_authorized_operations(i32::MIN);
    let Some(t) = catalog.topic(name) else {
        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let me = vec![BrokerId(node.id)];
    let partitions = (0..t.partitions.len() as i32)
        .map(|p| {
            let mut out = MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node.id))
                .with_replica_nodes(me.clone())
                .with_isr_nodes(me.clone());
            if version >= 7 {
                out = out.with_leader_epoch(-1);
            }
            out
        })
        .collect();
    base.with_topic_id(t.id).with_partitions(partitions)
}

async fn list_offsets(node: &Node, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let catalog = node.catalog.borrow().clone();
    let read_committed = req.isolation_level == 1;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut out =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            if version >= 4 {
                out = out.with_leader_epoch(-1);
            }
            let found = match catalog.partition(&t.name.0, p.partition_index) {
                Ok(view) => lookup(node, view, p.timestamp, read_committed).await,
                Err(_) => Err(ResponseError::UnknownTopicOrPartition),
            };
            partitions.push(match found {
                Ok((offset, timestamp)) => out.with_offset(offset).with_timestamp(timestamp),
                Err(code) => out
                    .with_error_code(code.code())
                    .with_offset(-1)
                    .with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// ListOffsets in the remote tier: -2 (earliest) the remote start, -1 (latest) the remote
/// end (the last stable offset for read_committed), -4 (earliest local) the end, since this
/// node has no local log, -5 (latest tiered) the last remote offset, -3 (max timestamp) and
/// timestamps through the remote time indexes, as a broker looks them up.
async fn lookup(
    node: &Node,
    view: &PartitionView,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let latest = if read_committed {
        view.last_stable
    } else {
        view.end
    };
    match timestamp {
        -2 => return Ok((view.start, -1)),
        -1 => return Ok((latest, -1)),
        -4 => return Ok((view.end, -1)),
        -5 => {
            return Ok((
                if view.end > view.start {
                    view.end - 1
                } else {
                    -1
                },
                -1,
            ))
        }
        -3 | 0.. => {}
        _ => return Err(ResponseError::InvalidRequest),
    }
    let Some(m) = view.manifest.as_ref().filter(|_| view.end > view.start) else {
        return Ok((-1, -1));
    };
    let target = match timestamp {
        -3 => m
            .segments
            .iter()
            .map(|s| s.max_timestamp)
            .max()
            .unwrap_or(-1),
        ts => ts,
    };
    let batch = node
        .remote
        .reader
        .find_batch_by_timestamp(m, target)
        .await
        .map_err(|e| {
            tracing::warn!(partition = %m.partition, error = %e, "remote timestamp lookup failed");
            ResponseError::KafkaStorageError
        })?;
    let found = batch.and_then(|b| match timestamp {
        -3 => crate::replica::offsets::max_record(b),
        ts => crate::replica::offsets::first_at_or_after(b, ts),
    });
    Ok(found.unwrap_or((-1, -1)))
}

/// Every partition refused with NOT_LEADER_OR_FOLLOWER; acks=0 gets no answer, as always.
fn produce(req: ProduceRequest) -> Option<ProduceResponse> {
    if req.acks == 0 {
        return None;
    }
    Some(crate::server::handlers::produce::refuse_all(
        req,
        ResponseError::NotLeaderOrFollower,
        Some("this is a read-only node (process.roles=reader): produce to the cluster"),
    ))
}

fn find_coordinator(version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let message = "a read-only node (process.roles=reader) hosts no coordinator";
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let mut out = FindCoordinatorResponse::default()
        .with_error_code(ResponseError::CoordinatorNotAvailable.code())
        .with_node_id(BrokerId(-1))
        .with_port(-1);
    if version >= 1 {
        out = out.with_error_message(Some(str_bytes(message)));
    }
    out
}
