//! `strata topic create|list|describe|alter|delete`.
//!
//! `describe` prints, per topic, its effective `cleanup.policy` and the settings that
//! differ from the default (DescribeConfigs), and for compacted topics one `Cleaner:`
//! line per partition with the log cleaner's state, from the partition leader's
//! DescribeLogDirs (Strata's tagged field, see `protocol::cleaner_state`). A broker that
//! does not send that field (another Kafka implementation) gets no cleaner line.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::cleaner::{cleaner_line, cleaner_states, now_ms};
use super::progress::{Poll, Progress};
use super::{parse_pairs, str_bytes, CliError, Client, Connection, TopicCommand};

/// Kafka's ConfigResource type for topics.
pub(super) const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs source of a per-topic override.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn run(mut c: Client, conn: Connection, cmd: TopicCommand) -> Result<(), CliError> {
    let timeout = conn.timeout();
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = parse_pairs(&configs)?;
            create(
                &mut c,
                &name,
                partitions,
                replication_factor,
                &configs,
                timeout,
            )
            .await
        }
        TopicCommand::List => list(&mut c).await,
        TopicCommand::Describe { names } => describe(&mut c, &conn, &names).await,
        TopicCommand::Alter {
            name,
            partitions,
            configs,
            delete_configs,
        } => {
            let configs = parse_pairs(&configs)?;
            if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                return Err(CliError::Usage(
                    "nothing to alter: give --partitions, --config or --delete-config".into(),
                ));
            }
            alter(
                &mut c,
                &name,
                partitions,
                &configs,
                &delete_configs,
                timeout,
            )
            .await
        }
        TopicCommand::Delete { names } => delete(&mut c, &names, timeout).await,
        TopicCommand::ElectLeaders {
            names,
            partition,
            unclean,
        } => elect_leaders(&mut c, &names, partition, unclean).await,
        TopicCommand::Reassign {
            name,
            partition,
            replicas,
            cancel,
            throttle,
            verify,
            no_wait,
        } => {
            let action = if verify {
                super::reassign::Action::Verify
            } else if cancel {
                super::reassign::Action::Cancel
            } else {
                super::reassign::Action::Move { replicas, throttle }
            };
            super::reassign::reassign(&mut c, &conn, &name, partition, action, !no_wait).await
        }
    }
}

async fn elect_leaders(
    c: &mut Client,
    names: &[String],
    partition: Option<i32>,
    unclean: bool,
) -> Result<(), CliError> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::ElectLeadersRequest;
    if partition.is_some() && names.len() != 1 {
        return Err(CliError::Usage(
            "--partition needs exactly one topic".into(),
        ));
    }
    let md = metadata(c, (!names.is_empty()).then_some(names)).await?;
    let mut topics = Vec::new();
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if names.is_empty() && t.is_internal {
            continue;
        }
        known(&md, &name)?;
        let partitions = match partition {
            Some(p) => vec![p],
            None => t.partitions.iter().map(|p| p.partition_index).collect(),
        };
        topics.push(
            TopicPartitions::default()
                .with_topic(TopicName(str_bytes(name)))
                .with_partitions(partitions),
        );
    }
    let req = ElectLeadersRequest::default()
        .with_election_type(i8::from(unclean))
        .with_topic_partitions(Some(topics))
        .with_timeout_ms(30_000);
    let resp = c.send(req).await?;
    let mut failed = 0;
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let tp = format!("{}-{}", t.topic.0, p.partition_id);
            match ResponseError::try_from_code(p.error_code) {
                None => println!("{tp}: elected"),
                Some(ResponseError::ElectionNotNeeded) => println!("{tp}: already led as asked"),
                Some(e) => {
                    failed += 1;
                    let why = p
                        .error_message
                        .as_ref()
                        .map_or(String::new(), |m| format!(": {m}"));
                    println!("{tp}: {e:?}{why}");
                }
            }
        }
    }
    if failed > 0 {
        // A failure, not a usage error: exit code 1, as for any refused request.
        return Err(CliError::Kafka {
            what: "ElectLeaders".into(),
            error: format!("{failed} election(s) failed"),
            message: None,
        });
    }
    Ok(())
}

/// Metadata for `names`, or for every topic when `names` is `None`.
pub async fn metadata(
    c: &mut Client,
    names: Option<&[String]>,
) -> Result<MetadataResponse, CliError> {
    let topics = names.map(|names| {
        names
            .iter()
            .map(|n| {
                MetadataRequestTopic::default().with_name(Some(TopicName(str_bytes(n.clone()))))
            })
            .collect()
    });
    let req = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    Ok(c.send(req).await?)
}

/// The topic's metadata; an unknown topic is an error that names it.
pub fn known<'a>(
    md: &'a MetadataResponse,
    name: &str,
) -> Result<&'a MetadataResponseTopic, CliError> {
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name));
    match t {
        Some(t) if t.error_code == 0 => Ok(t),
        Some(t) if t.error_code != ResponseError::UnknownTopicOrPartition.code() => {
            Err(CliError::kafka(
                format!("reading metadata of topic '{name}'"),
                t.error_code,
                None,
            ))
        }
        _ => Err(CliError::UnknownTopic {
            name: name.to_string(),
        }),
    }
}

fn leaders_state(t: &MetadataResponseTopic, want_partitions: Option<usize>) -> Poll {
    let total = want_partitions.unwrap_or(t.partitions.len());
    let led = t
        .partitions
        .iter()
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .count();
    if t.partitions.len() >= total && led >= total && total > 0 {
        Poll::Done
    } else {
        Poll::Waiting(format!("{led}/{total} partitions have a leader"))
    }
}

async fn wait_for_leaders(
    c: &mut Client,
    name: &str,
    want_partitions: Option<usize>,
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let names = [name.to_string()];
    let mut progress = Progress::new(format!("waiting for the partitions of '{name}'"), timeout);
    loop {
        let md = metadata(c, Some(&names)).await?;
        let poll = match known(&md, name) {
            Ok(t) => leaders_state(t, want_partitions),
            Err(_) => Poll::Waiting("topic not in metadata yet".into()),
        };
        if progress.update(poll)? {
            return Ok(());
        }
        progress.pause().await;
    }
}

async fn create(
    c: &mut Client,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let topic = CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(partitions.unwrap_or(-1))
        .with_replication_factor(replication_factor.unwrap_or(-1))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(str_bytes(k.clone()))
                        .with_value(Some(str_bytes(v.clone())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32);
    let resp = c.send(req).await?;
    let result = resp
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == name)
        .ok_or_else(|| CliError::Protocol {
            addr: c.addr().to_string(),
            reason: format!("CreateTopics answer does not mention '{name}'"),
        })?;
    if result.error_code != 0 {
        return Err(CliError::kafka(
            format!("creating topic '{name}'"),
            result.error_code,
            result.error_message.as_ref(),
        ));
    }
    let want = (result.num_partitions > 0).then_some(result.num_partitions as usize);
    wait_for_leaders(c, name, want, timeout).await?;
    let md = metadata(c, Some(&[name.to_string()])).await?;
    let t = known(&md, name)?;
    let rf = t
        .partitions
        .first()
        .map(|p| p.replica_nodes.len())
        .unwrap_or(0);
    println!(
        "created topic '{name}' with {} partition(s), replication factor {rf}",
        t.partitions.len()
    );
    Ok(())
}

async fn list(c: &mut Client) -> Result<(), CliError> {
    let md = metadata(c, None).await?;
    let mut names: Vec<&str> = md
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    names.sort_unstable();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// What DescribeConfigs tells `describe` about a topic.
#[derive(Default)]
pub struct TopicSettings {
    /// Settings whose source is the topic itself.
    pub overrides: Vec<(String, String)>,
    /// The effective `cleanup.policy`, the topic's own or the default.
    pub cleanup_policy: Option<String>,
    /// Every setting's effective value (sensitive ones hidden), and whether the topic
    /// sets it itself.
    pub all: Vec<(String, String, bool)>,
}

impl TopicSettings {
    fn compacts(&self) -> bool {
        self.cleanup_policy
            .as_deref()
            .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact"))
    }
}

/// Each topic's overrides and effective `cleanup.policy`, when the broker serves
/// DescribeConfigs. Asking for all settings (no keys) returns the defaults too, as in
/// Kafka, so one request gives both.
pub async fn topic_settings(
    c: &mut Client,
    names: &[String],
) -> Result<BTreeMap<String, TopicSettings>, CliError> {
    let mut out = BTreeMap::new();
    if c.version_of::<DescribeConfigsRequest>().is_none() || names.is_empty() {
        return Ok(out);
    }
    let resources = names
        .iter()
        .map(|n| {
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(str_bytes(n.clone()))
                .with_configuration_keys(None)
        })
        .collect();
    let resp = c
        .send(DescribeConfigsRequest::default().with_resources(resources))
        .await?;
    for r in resp.results {
        if r.error_code != 0 {
            continue;
        }
        let all: Vec<(String, String, bool)> = r
            .configs
            .iter()
            .map(|e| {
                let v = if e.is_sensitive {
                    "(sensitive)".to_string()
                } else {
                    e.value.as_ref().map(|v| v.to_string()).unwrap_or_default()
                };
                let own = e.config_source == SOURCE_DYNAMIC_TOPIC;
                (e.name.to_string(), v, own)
            })
            .collect();
        let overrides = all
            .iter()
            .filter(|(_, _, own)| *own)
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect();
        let cleanup_policy = r
            .configs
            .iter()
            .find(|e| e.name.as_str() == "cleanup.policy")
            .and_then(|e| e.value.as_ref())
            .map(|v| v.to_string());
        let settings = TopicSettings {
            overrides,
            cleanup_policy,
            all,
        };
        out.insert(r.resource_name.to_string(), settings);
    }
    Ok(out)
}

fn ids(v: &[kafka_protocol::messages::BrokerId]) -> String {
    v.iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn describe(c: &mut Client, conn: &Connection, names: &[String]) -> Result<(), CliError> {
    let md = metadata(c, (!names.is_empty()).then_some(names)).await?;
    let mut topics: Vec<&MetadataResponseTopic> = if names.is_empty() {
        md.topics.iter().filter(|t| t.error_code == 0).collect()
    } else {
        names
            .iter()
            .map(|n| known(&md, n))
            .collect::<Result<_, _>>()?
    };
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let listed: Vec<String> = topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    let settings = topic_settings(c, &listed).await?;
    let compacted: Vec<&str> = settings
        .iter()
        .filter(|(_, s)| s.compacts())
        .map(|(n, _)| n.as_str())
        .collect();
    let cleaner = cleaner_states(c, conn, &md, &compacted).await;
    let now = now_ms();
    for t in topics {
        let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or("?");
        let mut parts: Vec<_> = t.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition_index);
        let rf = parts.first().map(|p| p.replica_nodes.len()).unwrap_or(0);
        let s = settings.get(name);
        // Appended last: scripts reading the first fields by position keep working.
        let policy = s
            .and_then(|s| s.cleanup_policy.as_deref())
            .map(|p| format!("\tCleanupPolicy: {p}"))
            .unwrap_or_default();
        println!(
            "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}{policy}",
            t.topic_id,
            parts.len()
        );
        let set = s
            .map(|s| {
                s.overrides
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!("\tConfigs: {set}");
        for p in parts {
            println!(
                "\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {}\tIsr: {}",
                p.partition_index,
                p.leader_id.0,
                p.leader_epoch,
                ids(&p.replica_nodes),
                ids(&p.isr_nodes)
            );
            if let Some(state) = cleaner.get(&(name.to_string(), p.partition_index)) {
                println!("\t\tCleaner: {}", cleaner_line(state, now));
            }
        }
    }
    Ok(())
}

async fn alter(
    c: &mut Client,
    name: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
    delete_configs: &[String],
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let md = metadata(c, Some(&[name.to_string()])).await?;
    let current = known(&md, name)?.partitions.len();
    if let Some(count) = partitions {
        if count as usize != current {
            add_partitions(c, name, count, timeout).await?;
            wait_for_leaders(c, name, Some(count as usize), timeout).await?;
            println!("topic '{name}': {current} -> {count} partitions");
        } else {
            println!("topic '{name}' already has {count} partitions");
        }
    }
    if !configs.is_empty() || !delete_configs.is_empty() {
        set_configs(c, name, configs, delete_configs).await?;
        for (k, v) in configs {
            println!("topic '{name}': {k}={v}");
        }
        for k in delete_configs {
            println!("topic '{name}': {k} back to the default");
        }
    }
    Ok(())
}

/// IncrementalAlterConfigs on topic `name`: sets `configs`, returns `delete_configs` to
/// their defaults.
pub async fn set_configs(
    c: &mut Client,
    name: &str,
    configs: &[(String, String)],
    delete_configs: &[String],
) -> Result<(), CliError> {
    let mut entries: Vec<AlterableConfig> = configs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(str_bytes(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(str_bytes(v.clone())))
        })
        .collect();
    entries.extend(delete_configs.iter().map(|k| {
        AlterableConfig::default()
            .with_name(str_bytes(k.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(str_bytes(name))
            .with_configs(entries),
    ]);
    let resp = c.send(req).await?;
    for r in &resp.responses {
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("changing settings of topic '{name}'"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

async fn add_partitions(
    c: &mut Client,
    name: &str,
    count: i32,
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(str_bytes(name)))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32);
    let resp = c.send(req).await?;
    for r in &resp.results {
        if r.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Err(CliError::UnknownTopic {
                name: name.to_string(),
            });
        }
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("growing topic '{name}' to {count} partitions"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    Ok(())
}

async fn delete(
    c: &mut Client,
    names: &[String],
    timeout: std::time::Duration,
) -> Result<(), CliError> {
    let version = c.version_of::<DeleteTopicsRequest>().unwrap_or(0);
    let mut req = DeleteTopicsRequest::default()
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32);
    let topic_names = names.iter().map(|n| TopicName(str_bytes(n.clone())));
    if version >= 6 {
        req = req.with_topics(
            topic_names
                .map(|n| DeleteTopicState::default().with_name(Some(n)))
                .collect(),
        );
    } else {
        req = req.with_topic_names(topic_names.collect());
    }
    let resp = c.send(req).await?;
    for r in &resp.responses {
        let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if r.error_code == ResponseError::UnknownTopicOrPartition.code() {
            return Err(CliError::UnknownTopic { name });
        }
        if r.error_code != 0 {
            return Err(CliError::kafka(
                format!("deleting topic '{name}'"),
                r.error_code,
                r.error_message.as_ref(),
            ));
        }
    }
    let mut progress = Progress::new(
        format!("waiting for {} to disappear", names.join(", ")),
        timeout,
    );
    loop {
        let md = metadata(c, Some(names)).await?;
        let left: Vec<&str> = names
            .iter()
            .filter(|n| known(&md, n).is_ok())
            .map(String::as_str)
            .collect();
        let poll = if left.is_empty() {
            Poll::Done
        } else {
            Poll::Waiting(format!("still listed: {}", left.join(", ")))
        };
        if progress.update(poll)? {
            break;
        }
        progress.pause().await;
    }
    for n in names {
        println!("deleted topic '{n}'");
    }
    Ok(())
}
