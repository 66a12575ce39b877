//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics and the broker.
//!
//! Topic overrides and dynamic broker overrides live in the controller's metadata;
//! every change is validated by `strata-config` before it is proposed, so an unknown
//! name or a bad value is INVALID_CONFIG and never stored.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_config::DescribedConfig;

use super::{str_bytes, Ctx};
use crate::broker::BrokerError;
use crate::server::error_code;
use strata_controller::AclOperation;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const CONFIG_TYPE_LIST: i8 = 7;

/// A resource named in a request, checked.
enum Resource {
    Topic(String),
    Broker,
}

/// An error for one resource: the code and a message for the client.
struct Failure(ResponseError, String);

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        Failure(error_code(&e), e.to_string())
    }
}

fn resource(ctx: &Ctx<'_>, kind: i8, name: &StrBytes) -> Result<Resource, Failure> {
    match kind {
        TOPIC => Ok(Resource::Topic(name.to_string())),
        // "" is the cluster-wide default entity; Strata has one broker entity per node.
        BROKER if name.is_empty() || name.as_str() == ctx.metadata.node_id().to_string() => {
            Ok(Resource::Broker)
        }
        BROKER => Err(Failure(
            ResponseError::InvalidRequest,
            format!(
                "broker '{name}' is not this broker (node.id {})",
                ctx.metadata.node_id()
            ),
        )),
        other => Err(Failure(
            ResponseError::InvalidRequest,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the topic, or on the cluster for the broker,
/// as Kafka checks it.
fn authorized(ctx: &Ctx<'_>, r: Resource, op: AclOperation) -> Result<Resource, Failure> {
    let (ok, code, what) = match &r {
        Resource::Topic(t) => (
            ctx.topic_allowed(op, t),
            ResponseError::TopicAuthorizationFailed,
            format!("topic {t}"),
        ),
        Resource::Broker => (
            ctx.cluster_allowed(op),
            ResponseError::ClusterAuthorizationFailed,
            "the cluster".to_string(),
        ),
    };
    if ok {
        Ok(r)
    } else {
        let msg = format!("{} may not {} {what}", ctx.principal, op.name());
        Err(Failure(code, msg))
    }
}

fn describe_resource(ctx: &Ctx<'_>, r: &Resource) -> Result<Vec<DescribedConfig>, Failure> {
    let dynamic = ctx.metadata.dynamic_broker_configs();
    match r {
        Resource::Topic(name) => {
            let image = ctx.broker.image();
            let meta = image
                .topics
                .get(name)
                .ok_or_else(|| BrokerError::UnknownTopic {
                    topic: name.clone(),
                })?;
            Ok(ctx.metadata.configs.describe_topic(&dynamic, &meta.configs))
        }
        Resource::Broker => Ok(ctx.metadata.configs.describe_broker(&dynamic)),
    }
}

pub fn describe(ctx: &Ctx<'_>, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = req
        .resources
        .iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let described = resource(ctx, res.resource_type, &res.resource_name)
                .and_then(|r| authorized(ctx, r, AclOperation::DescribeConfigs))
                .and_then(|r| describe_resource(ctx, &r));
            match described {
                Ok(configs) => {
                    let wanted = |name: &str| {
                        res.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
                    };
                    let configs = configs
                        .into_iter()
                        .filter(|d| wanted(&d.name))
                        .map(|d| {
                            encode_described(d, req.include_synonyms, req.include_documentation)
                        })
                        .collect();
                    base.with_configs(configs)
                }
                Err(Failure(code, msg)) => base
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn encode_described(
    d: DescribedConfig,
    synonyms: bool,
    docs: bool,
) -> DescribeConfigsResourceResult {
    let synonyms = if synonyms {
        d.synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(value.map(str_bytes))
                    .with_source(source.kafka_code())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(d.name))
        .with_value(if d.sensitive {
            None
        } else {
            d.value.map(str_bytes)
        })
        .with_read_only(d.read_only)
        .with_config_source(d.source.kafka_code())
        .with_is_sensitive(d.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(d.config_type)
        .with_documentation(docs.then(|| str_bytes(d.documentation)))
}

/// The current overrides of a resource: the starting point of an incremental change.
fn current_overrides(ctx: &Ctx<'_>, r: &Resource) -> Result<BTreeMap<String, String>, Failure> {
    match r {
        Resource::Topic(name) => ctx
            .broker
            .image()
            .topics
            .get(name)
            .map(|m| m.configs.clone())
            .ok_or_else(|| {
                BrokerError::UnknownTopic {
                    topic: name.clone(),
                }
                .into()
            }),
        Resource::Broker => Ok(ctx.metadata.dynamic_broker_configs()),
    }
}

async fn replace(
    ctx: &Ctx<'_>,
    r: &Resource,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    match r {
        Resource::Topic(name) => {
            ctx.broker
                .set_topic_configs(name, configs, validate_only)
                .await?
        }
        Resource::Broker => {
            ctx.broker
                .set_broker_configs(configs, validate_only)
                .await?
        }
    }
    Ok(())
}

pub async fn alter(ctx: &Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in &req.resources {
        let outcome = async {
            let r = resource(ctx, res.resource_type, &res.resource_name)?;
            let r = authorized(ctx, r, AclOperation::AlterConfigs)?;
            current_overrides(ctx, &r)?;
            // AlterConfigs replaces the whole set of overrides.
            let configs = res
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            replace(ctx, &r, configs, req.validate_only).await
        }
        .await;
        let (code, message) = error_fields(outcome);
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter(
    ctx: &Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in &req.resources {
        let outcome = async {
            let r = resource(ctx, res.resource_type, &res.resource_name)?;
            let r = authorized(ctx, r, AclOperation::AlterConfigs)?;
            let mut configs = current_overrides(ctx, &r)?;
            let described = describe_resource(ctx, &r)?;
            for op in &res.configs {
                apply_op(
                    &mut configs,
                    &described,
                    op.config_operation,
                    op.name.as_str(),
                    op.value.as_ref().map(|v| v.as_str()),
                )?;
            }
            replace(ctx, &r, configs, req.validate_only).await
        }
        .await;
        let (code, message) = error_fields(outcome);
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone())
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The error code and message of one resource's outcome (0 and none on success).
fn error_fields(outcome: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(Failure(code, msg)) => (code.code(), Some(str_bytes(msg))),
    }
}

/// Applies one IncrementalAlterConfigs operation: SET 0, DELETE 1, APPEND 2, SUBTRACT 3.
fn apply_op(
    configs: &mut BTreeMap<String, String>,
    described: &[DescribedConfig],
    op: i8,
    name: &str,
    value: Option<&str>,
) -> Result<(), Failure> {
    let invalid = |msg: String| Failure(ResponseError::InvalidConfig, msg);
    let current = || -> Vec<String> {
        let v = configs
            .get(name)
            .cloned()
            .or_else(|| {
                described
                    .iter()
                    .find(|d| d.name == name)
                    .and_then(|d| d.value.clone())
            })
            .unwrap_or_default();
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let is_list = described
        .iter()
        .any(|d| d.name == name && d.config_type == CONFIG_TYPE_LIST);
    match op {
        0 => {
            let v = value.ok_or_else(|| invalid(format!("SET of '{name}' needs a value")))?;
            configs.insert(name.to_string(), v.to_string());
        }
        1 => {
            configs.remove(name);
        }
        2 | 3 if !is_list => {
            return Err(invalid(format!(
                "APPEND/SUBTRACT need a list config; '{name}' is not one"
            )));
        }
        2 => {
            let mut items = current();
            for v in value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                if !items.iter().any(|i| i == v) {
                    items.push(v.to_string());
                }
            }
            configs.insert(name.to_string(), items.join(","));
        }
        3 => {
            let remove: Vec<&str> = value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .collect();
            let items: Vec<String> = current()
                .into_iter()
                .filter(|i| !remove.contains(&i.as_str()))
                .collect();
            configs.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err(Failure(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}
