//! Metadata: brokers, and the topics asked for (all when the list is null), creating
//! unknown ones when the client allows it and `auto.create.topics.enable` is on. Topics the
//! principal may not DESCRIBE are hidden from "all topics" and refused when named.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use strata_controller::MetadataImage;

use super::{str_bytes, Ctx};
use crate::broker::{validate_topic_name, BrokerError, NewTopic};
use crate::server::error_code;
use strata_controller::{AclOperation, ResourceType};

pub async fn handle(ctx: &Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let listing_all = match &req.topics {
        None => true,
        // v0 used an empty list to mean "all topics".
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    let names: Vec<Result<String, ResponseError>> = match &req.topics {
        _ if listing_all => all(ctx),
        None => Vec::new(),
        Some(topics) => topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => Ok(n.0.to_string()),
                None => ctx
                    .metadata
                    .topic_name_by_id(t.topic_id)
                    .map(|n| n.to_string())
                    .ok_or(ResponseError::UnknownTopicId),
            })
            .collect(),
    };
    // Versions before 4 have no allow flag: the broker config alone decides.
    let auto_create = (ctx.version < 4 || req.allow_auto_topic_creation)
        && ctx.metadata.config().auto_create_topics_enable;
    // Topics the principal may not DESCRIBE: left out of "all topics", refused when named
    // (and never auto-created).
    let names: Vec<Result<String, ResponseError>> = names
        .into_iter()
        .filter(|n| !listing_all || n.as_ref().is_ok_and(|n| describable(ctx, n)))
        .collect();
    let refused: Vec<bool> = names
        .iter()
        .map(|n| n.as_ref().is_ok_and(|n| !describable(ctx, n)))
        .collect();
    let mut create_errors = Vec::with_capacity(names.len());
    for (name, refused) in names.iter().zip(&refused) {
        create_errors.push(match name {
            Ok(name) if !refused => ensure_topic(ctx, name, auto_create).await,
            _ => None,
        });
    }
    let include_ops = req.include_topic_authorized_operations;
    // One image for brokers and partitions: a client must never see a leader that is not
    // in the broker list (kafka-python's producer then stops sending for good).
    let image = broker.image();
    let topics = names
        .into_iter()
        .zip(create_errors)
        .zip(refused)
        .map(|((name, create_error), refused)| match name {
            Ok(name) if refused => MetadataResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(name))))
                .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
            Ok(name) => topic(ctx, &image, &name, auto_create, create_error, include_ops),
            Err(code) => MetadataResponseTopic::default().with_error_code(code.code()),
        })
        .collect();
    // Kafka lists the live (unfenced) brokers.
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            // The addresses of the listener this client connected to, as Kafka answers.
            let (host, port) = b.endpoint(ctx.listener);
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(host))
                .with_port(port as i32)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    // Fields outside the request's version must stay at their defaults (v8-10 carry it).
    let cluster_ops =
        if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
            ctx.authorized_operations(ResourceType::Cluster, strata_controller::acl::CLUSTER_NAME)
        } else {
            i32::MIN
        };
    MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_ops)
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(image.cluster_id.clone())))
        // As a KRaft broker does (KIP-590): any node takes admin requests and forwards the
        // metadata change to the active controller, so clients are pointed at this one.
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics)
}

fn describable(ctx: &Ctx<'_>, topic: &str) -> bool {
    ctx.topic_allowed(AclOperation::Describe, topic)
}

fn all(ctx: &Ctx<'_>) -> Vec<Result<String, ResponseError>> {
    ctx.broker.image().topics.keys().cloned().map(Ok).collect()
}

/// Creates `name` when it is unknown and the client and the config allow it; the error
/// code of a failed creation.
async fn ensure_topic(ctx: &Ctx<'_>, name: &str, auto_create: bool) -> Option<i16> {
    if ctx.metadata.topic(name).is_some() || validate_topic_name(name).is_err() || !auto_create {
        return None;
    }
    // Auto-creation needs CREATE on the cluster or on the topic, as CreateTopics does.
    if !ctx.cluster_allowed(AclOperation::Create) && !ctx.topic_allowed(AclOperation::Create, name)
    {
        return Some(ResponseError::TopicAuthorizationFailed.code());
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: -1,
        replication_factor: -1,
        assignments: Default::default(),
        configs: Default::default(),
    };
    match ctx.broker.create_topic(new, false).await {
        Ok(_) => tracing::info!(topic = name, "auto-created topic"),
        Err(BrokerError::Controller(strata_controller::ControllerError::Rejected(
            strata_controller::ApplyError::TopicAlreadyExists { .. },
        ))) => {}
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creation failed");
            return Some(error_code(&e).code());
        }
    }
    None
}

fn topic(
    ctx: &Ctx<'_>,
    image: &MetadataImage,
    name: &str,
    auto_create: bool,
    create_error: Option<i16>,
    include_ops: bool,
) -> MetadataResponseTopic {
    let base = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    let Some(meta) = image.topics.get(name) else {
        let code = match (validate_topic_name(name), create_error) {
            (Err(e), _) => error_code(&e).code(),
            (Ok(()), Some(code)) => code,
            // Created by another request, not in this image yet.
            (Ok(()), None) if auto_create => ResponseError::LeaderNotAvailable.code(),
            (Ok(()), None) => ResponseError::UnknownTopicOrPartition.code(),
        };
        return base.with_error_code(code);
    };
    let partitions = (0..meta.partitions)
        .map(|p| {
            let v = partition_view(ctx, image, meta, p);
            // Fields newer than the request's version must stay at their defaults.
            let mut out = MetadataResponsePartition::default()
                .with_error_code(v.error)
                .with_partition_index(p)
                .with_leader_id(BrokerId(v.leader))
                .with_replica_nodes(v.replicas)
                .with_isr_nodes(v.isr);
            if ctx.version >= 5 {
                out = out.with_offline_replicas(v.offline);
            }
            if ctx.version >= 7 {
                out = out.with_leader_epoch(v.leader_epoch);
            }
            out
        })
        .collect();
    base.with_topic_id(meta.id)
        .with_is_internal(meta.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(if ctx.version >= 8 && include_ops {
            ctx.authorized_operations(ResourceType::Topic, name)
        } else {
            i32::MIN
        })
}

/// One partition as Metadata and DescribeTopicPartitions describe it.
pub(super) struct PartitionView {
    pub error: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

pub(super) fn partition_view(
    ctx: &Ctx<'_>,
    image: &MetadataImage,
    meta: &strata_controller::TopicMeta,
    p: i32,
) -> PartitionView {
    let m = ctx.metadata.partition_meta(meta, p);
    // As Kafka's metadata cache: a leader that is not a live broker is no leader.
    let leader = if m.leader != strata_controller::NO_LEADER
        && (image.brokers.is_empty() || image.is_live(m.leader))
    {
        m.leader
    } else {
        strata_controller::NO_LEADER
    };
    let error = if leader == strata_controller::NO_LEADER {
        ResponseError::LeaderNotAvailable.code()
    } else {
        0
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    PartitionView {
        error,
        leader,
        leader_epoch: m.leader_epoch,
        replicas: ids(&m.replicas),
        isr: ids(&m.isr),
        offline: ids(&m.offline(|b| !image.is_live(b))),
    }
}
