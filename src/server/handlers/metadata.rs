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
    let node = broker.node_id();
    let listener = &broker.advertised;
    let me = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(listener.host.clone()))
        .with_port(listener.port as i32)
        .with_rack(broker.config().broker_rack.clone().map(str_bytes));
    MetadataResponse::default()
        .with_brokers(vec![me])
        .with_cluster_id(Some(str_bytes(broker.image().cluster_id.clone())))
        .with_controller_id(BrokerId(node))
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
            Err(BrokerError::Controller(
                strata_controller::ControllerError::TopicAlreadyExists { .. },
            )) => {}
            Err(e) => {
                tracing::warn!(topic = name, error = %e, "auto-creation failed");
                return base.with_error_code(error_code(&e).code());
            }
        }
    }
    let Some(state) = broker.topic(name) else {
        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let node = BrokerId(broker.node_id());
    let partitions = (0..state.partitions.len() as i32)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    base.with_topic_id(state.meta.id)
        .with_is_internal(state.meta.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
