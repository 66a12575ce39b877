//! Metadata: brokers, and the topics asked for (all when the list is null), creating
//! unknown ones when the client allows it and `auto.create.topics.enable` is on.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::{validate_topic_name, BrokerError, NewTopic};
use crate::server::error_code;

pub async fn handle(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let names: Vec<Result<String, ResponseError>> = match &req.topics {
        // v0 used an empty list to mean "all topics".
        None => all(ctx),
        Some(t) if t.is_empty() && ctx.version == 0 => all(ctx),
        Some(topics) => topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => Ok(n.0.to_string()),
                None => broker
                    .topic_name_by_id(t.topic_id)
                    .map(|n| n.to_string())
                    .ok_or(ResponseError::UnknownTopicId),
            })
            .collect(),
    };
    // Versions before 4 have no allow flag: auto-creation is on.
    let allow_create = ctx.version < 4 || req.allow_auto_topic_creation;
    let mut topics = Vec::with_capacity(names.len());
    for name in names {
        topics.push(match name {
            Ok(name) => topic(ctx, &name, allow_create).await,
            Err(code) => MetadataResponseTopic::default().with_error_code(code.code()),
        });
    }
    let image = broker.image();
    // Kafka lists the live (unfenced) brokers.
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(b.port as i32)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(image.cluster_id.clone())))
        // As a KRaft broker does (KIP-590): any node takes admin requests and forwards the
        // metadata change to the active controller, so clients are pointed at this one.
        .with_controller_id(BrokerId(broker.node_id()))
        .with_topics(topics)
}

fn all(ctx: &Ctx) -> Vec<Result<String, ResponseError>> {
    ctx.broker
        .topic_names()
        .into_iter()
        .map(|n| Ok(n.to_string()))
        .collect()
}

async fn topic(ctx: &Ctx, name: &str, allow_create: bool) -> MetadataResponseTopic {
    let broker = &ctx.broker;
    let base = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    if broker.topic(name).is_none() {
        if let Err(e) = validate_topic_name(name) {
            return base.with_error_code(error_code(&e).code());
        }
        if !(allow_create && broker.config().auto_create_topics_enable) {
            return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
        }
        let new = NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            assignments: Default::default(),
            configs: Default::default(),
        };
        match broker.create_topic(new, false).await {
            Ok(_) => tracing::info!(topic = name, "auto-created topic"),
            Err(BrokerError::Controller(strata_controller::ControllerError::Rejected(
                strata_controller::ApplyError::TopicAlreadyExists { .. },
            ))) => {}
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "auto-creation failed");
                return base.with_error_code(error_code(&e).code());
            }
        }
    }
    let Some(state) = broker.topic(name) else {
        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let image = broker.image();
    let fenced = |b: i32| !image.is_live(b);
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = (0..state.meta.partitions)
        .map(|p| {
            let m = broker.partition_meta(&state.meta, p);
            let error = if m.leader == strata_controller::NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            // Fields newer than the request's version must stay at their defaults.
            let mut out = MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p)
                .with_leader_id(BrokerId(m.leader))
                .with_replica_nodes(ids(&m.replicas))
                .with_isr_nodes(ids(&m.isr));
            if ctx.version >= 5 {
                out = out.with_offline_replicas(ids(&m.offline(fenced)));
            }
            if ctx.version >= 7 {
                out = out.with_leader_epoch(m.leader_epoch);
            }
            out
        })
        .collect();
    base.with_topic_id(state.meta.id)
        .with_is_internal(state.meta.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
