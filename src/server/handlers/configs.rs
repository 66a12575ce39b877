//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, the broker and
//! client-metrics subscriptions (KIP-714), and ListConfigResources.
//!
//! Topic overrides, dynamic broker overrides and subscriptions live in the controller's
//! metadata; every change is validated (by `strata-config`, or
//! `telemetry::subscription`) before it is proposed, so an unknown name or a bad value
//! is INVALID_CONFIG and never stored.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_config::DescribedConfig;

use super::{str_bytes, Ctx};
use crate::broker::BrokerError;
use crate::server::error_code;
use strata_controller::{AclOperation, MetadataCommand};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;
const CONFIG_TYPE_INT: i8 = 3;
const CONFIG_TYPE_LIST: i8 = 7;

/// A resource named in a request, checked.
enum Resource {
    Topic(String),
    Broker,
    /// A client-metrics subscription, by name.
    ClientMetrics(String),
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
        CLIENT_METRICS if name.is_empty() => Err(Failure(
            ResponseError::InvalidRequest,
            "a client metrics subscription needs a name".to_string(),
        )),
        CLIENT_METRICS => Ok(Resource::ClientMetrics(name.to_string())),
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
        // Kafka authorizes client-metrics subscriptions on the cluster.
        Resource::Broker | Resource::ClientMetrics(_) => (
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
        Resource::ClientMetrics(name) => {
            let image = ctx.broker.image();
            let set = image.client_metrics.get(name).cloned().unwrap_or_default();
            Ok(describe_client_metrics(&set))
        }
    }
}

/// The three settings of a subscription, set or default.
fn describe_client_metrics(set: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    use crate::telemetry::subscription as s;
    let default_interval = s::DEFAULT_INTERVAL_MS.to_string();
    let defs: [(&str, &str, i8, &str); 3] = [
        (
            s::METRICS,
            "",
            CONFIG_TYPE_LIST,
            "Metric name prefixes the matching clients push; * for all, empty for none.",
        ),
        (
            s::INTERVAL_MS,
            &default_interval,
            CONFIG_TYPE_INT,
            "How often the matching clients push, 100 to 3600000 ms.",
        ),
        (
            s::MATCH,
            "",
            CONFIG_TYPE_LIST,
            "selector=regex pairs a client must all match: client_instance_id, client_id, client_software_name, client_software_version, client_source_address, client_source_port.",
        ),
    ];
    defs.iter()
        .map(|(name, default, ty, doc)| {
            let (value, source) = match set.get(*name) {
                Some(v) => (v.clone(), strata_config::ConfigSource::ClientMetrics),
                None => (default.to_string(), strata_config::ConfigSource::Default),
            };
            DescribedConfig {
                name: name.to_string(),
                value: Some(value.clone()),
                source,
                read_only: false,
                sensitive: false,
                synonyms: vec![(name.to_string(), Some(value), source)],
                config_type: *ty,
                documentation: doc.to_string(),
            }
        })
        .collect()
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
        Resource::ClientMetrics(name) => Ok(ctx
            .broker
            .image()
            .client_metrics
            .get(name)
            .cloned()
            .unwrap_or_default()),
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
        Resource::ClientMetrics(name) => {
            crate::telemetry::subscription::Subscription::parse(name, &configs)
                .map_err(|e| Failure(ResponseError::InvalidConfig, e.to_string()))?;
            if !validate_only {
                let cmd = MetadataCommand::SetClientMetricsConfigs {
                    name: name.clone(),
                    configs,
                };
                ctx.broker.propose_and_apply(cmd).await?;
            }
        }
    }
    Ok(())
}

/// ListConfigResources: v0 (Kafka 3.7's ListClientMetricsResources) lists the
/// client-metrics subscriptions; v1 lists the resources of the requested types (all
/// when none is given) that have configs: topics, brokers and subscriptions (Strata has
/// no group configs, so GROUP lists nothing).
pub fn list_resources(
    ctx: &Ctx<'_>,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    if !ctx.cluster_allowed(AclOperation::DescribeConfigs) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let types: Vec<i8> = if ctx.version == 0 {
        vec![CLIENT_METRICS]
    } else if req.resource_types.is_empty() {
        vec![TOPIC, BROKER, CLIENT_METRICS, GROUP]
    } else {
        req.resource_types.clone()
    };
    if let Some(bad) = types
        .iter()
        .find(|t| ![TOPIC, BROKER, CLIENT_METRICS, GROUP].contains(t))
    {
        tracing::debug!(
            resource_type = bad,
            "ListConfigResources of an unknown type"
        );
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let image = ctx.broker.image();
    let mut out = Vec::new();
    let mut add = |kind: i8, name: String| {
        out.push(
            ConfigResource::default()
                .with_resource_type(kind)
                .with_resource_name(str_bytes(name)),
        )
    };
    for t in types {
        match t {
            TOPIC => image
                .topics
                .keys()
                .filter(|n| ctx.topic_allowed(AclOperation::DescribeConfigs, n))
                .for_each(|n| add(TOPIC, n.clone())),
            BROKER => image
                .brokers
                .keys()
                .for_each(|id| add(BROKER, id.to_string())),
            CLIENT_METRICS => image
                .client_metrics
                .keys()
                .for_each(|n| add(CLIENT_METRICS, n.clone())),
            _ => {}
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
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
