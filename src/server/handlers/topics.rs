//! CreateTopics, DeleteTopics, CreatePartitions: validate, propose to the controller,
//! answer per topic.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use crate::broker::{BrokerError, NewTopic};
use crate::server::error_code;
use strata_controller::AclOperation;

pub async fn create_topics(ctx: &Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let mut throttle = Throttle::default();
    let mut seen = std::collections::HashSet::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default().with_name(t.name.clone());
        if !seen.insert(name.clone()) {
            results.push(
                base.with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "topic '{name}' appears twice in the request"
                    )))),
            );
            continue;
        }
        if !ctx.cluster_allowed(AclOperation::Create)
            && !ctx.topic_allowed(AclOperation::Create, &name)
        {
            results.push(failed_code(
                base,
                ResponseError::TopicAuthorizationFailed,
                &ctx.principal.to_string(),
                "CREATE",
                &name,
            ));
            continue;
        }
        let partitions = match (t.num_partitions, t.assignments.len()) {
            (-1, 0) => ctx.metadata.config().num_partitions,
            (-1, n) => n as i32,
            (n, _) => n,
        };
        if let Err(ms) = ctx.admit_mutation(partitions, ctx.version >= 6) {
            let message = throttle.refuse(ms, &name);
            results.push(
                base.with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let assignments = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let new = NewTopic {
            name: name.clone(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments,
            configs: configs.clone(),
        };
        let result = match ctx.broker.create_topic(new, req.validate_only).await {
            Ok((partitions, rf)) => {
                let described = ctx
                    .metadata
                    .configs
                    .describe_topic(&ctx.metadata.dynamic_broker_configs(), &configs);
                let configs = described
                    .into_iter()
                    .map(|d| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(d.name))
                            .with_value(d.value.map(str_bytes))
                            .with_read_only(d.read_only)
                            .with_config_source(d.source.kafka_code())
                            .with_is_sensitive(d.sensitive)
                    })
                    .collect();
                let id = ctx
                    .broker
                    .image()
                    .topics
                    .get(&name)
                    .map(|m| m.id)
                    .unwrap_or_default();
                base.with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf)
                    .with_configs(Some(configs))
            }
            Err(e) => failed(base, &e),
        };
        results.push(result);
    }
    CreateTopicsResponse::default()
        .with_topics(results)
        .with_throttle_time_ms(throttle.ms)
}

/// The largest wait of the topics a request's mutation quota refused.
#[derive(Default)]
struct Throttle {
    ms: i32,
}

impl Throttle {
    /// Notes a refusal; answers its message.
    fn refuse(&mut self, ms: u64, topic: &str) -> String {
        self.ms = self.ms.max(i32::try_from(ms).unwrap_or(i32::MAX));
        format!("topic {topic}: the controller_mutation_rate quota is exhausted; retry in {ms} ms")
    }
}

fn failed_code(
    base: CreatableTopicResult,
    code: ResponseError,
    principal: &str,
    op: &str,
    topic: &str,
) -> CreatableTopicResult {
    base.with_error_code(code.code())
        .with_error_message(Some(str_bytes(refusal(principal, op, topic))))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// The message of a TOPIC_AUTHORIZATION_FAILED answer.
fn refusal(principal: &str, op: &str, topic: &str) -> String {
    format!("{principal} may not {op} topic {topic}")
}

fn failed(base: CreatableTopicResult, e: &BrokerError) -> CreatableTopicResult {
    base.with_error_code(error_code(e).code())
        .with_error_message(Some(str_bytes(e.to_string())))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

pub async fn delete_topics(ctx: &Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6 names topics by name or id in `topics`; earlier versions use `topic_names`.
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    let mut throttle = Throttle::default();
    for (name, id) in wanted {
        let name = name.or_else(|| ctx.metadata.topic_name_by_id(id).map(|n| n.to_string()));
        let base = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id);
        let result = match name {
            None => base.with_error_code(ResponseError::UnknownTopicId.code()),
            Some(name) if !ctx.topic_allowed(AclOperation::Delete, &name) => base
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(Some(str_bytes(refusal(
                    &ctx.principal.to_string(),
                    "DELETE",
                    &name,
                )))),
            Some(name) if let Err(ms) = admit_delete(ctx, &name) => base
                .with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                .with_error_message(Some(str_bytes(throttle.refuse(ms, &name)))),
            Some(name) => match ctx.broker.delete_topic(&name).await {
                Ok(id) => {
                    tracing::info!(topic = %name, %id, "deleted topic");
                    base.with_topic_id(id)
                }
                Err(e) => base
                    .with_error_code(error_code(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            },
        };
        responses.push(result);
    }
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle.ms)
}

/// Deleting a topic deletes its partitions: they count against the mutation quota.
fn admit_delete(ctx: &Ctx<'_>, topic: &str) -> Result<(), u64> {
    let image = ctx.broker.image();
    let partitions = image.topics.get(topic).map_or(0, |m| m.partitions);
    ctx.admit_mutation(partitions, ctx.version >= 5)
}

pub async fn create_partitions(
    ctx: &Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    let mut throttle = Throttle::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let current = ctx
            .broker
            .image()
            .topics
            .get(&name)
            .map(|m| m.partitions)
            .unwrap_or(0);
        let assignments: BTreeMap<i32, Vec<i32>> = t
            .assignments
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, a)| {
                (
                    current + i as i32,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        let base = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !ctx.topic_allowed(AclOperation::Alter, &name) {
            let msg = refusal(&ctx.principal.to_string(), "ALTER", &name);
            results.push(
                base.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes(msg))),
            );
            continue;
        }
        if let Err(ms) = ctx.admit_mutation(t.count - current, ctx.version >= 3) {
            let message = throttle.refuse(ms, &name);
            results.push(
                base.with_error_code(ResponseError::ThrottlingQuotaExceeded.code())
                    .with_error_message(Some(str_bytes(message))),
            );
            continue;
        }
        let result = match ctx
            .broker
            .create_partitions(&name, t.count, &assignments, req.validate_only)
            .await
        {
            Ok(()) => base,
            Err(e) => base
                .with_error_code(error_code(&e).code())
                .with_error_message(Some(str_bytes(e.to_string()))),
        };
        results.push(result);
    }
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(throttle.ms)
}
