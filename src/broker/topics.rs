//! Topic administration: validation of new topics and config changes, proposals to the
//! controller, and applying what they commit.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_controller::{ControllerError, MetadataCommand, MetadataImage};
use uuid::Uuid;

use super::{Broker, BrokerError};

/// How long creating an internal topic waits for the cluster's known brokers to register.
pub const INTERNAL_TOPIC_WAIT: Duration = Duration::from_secs(15);

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), BrokerError> {
    let invalid = |reason: &str| BrokerError::InvalidTopic {
        topic: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed"));
    }
    if name.len() > 249 {
        return Err(invalid("longer than 249 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// A CreateTopics entry after defaults are resolved.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means `num.partitions`.
    pub partitions: i32,
    /// -1 means `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index -> broker ids. Empty means automatic.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

impl Broker {
    /// Validates `topic` and, unless `validate_only`, creates it through the controller.
    /// Returns the resolved partition count and replication factor.
    pub async fn create_topic(
        &self,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<(i32, i16), BrokerError> {
        validate_topic_name(&topic.name)?;
        let config = self.config();
        let brokers = self.live_brokers().max(1);
        let (partitions, replication_factor) = if topic.assignments.is_empty() {
            let p = if topic.partitions == -1 {
                config.num_partitions
            } else {
                topic.partitions
            };
            let rf = if topic.replication_factor == -1 {
                config.default_replication_factor
            } else {
                topic.replication_factor
            };
            (p, rf)
        } else {
            if topic.partitions != -1 || topic.replication_factor != -1 {
                return Err(BrokerError::InvalidReplicaAssignment {
                    topic: topic.name,
                    reason:
                        "give either an assignment or num_partitions/replication_factor, not both"
                            .into(),
                });
            }
            self.check_assignment(&topic.name, &topic.assignments, 0)?
        };
        if partitions <= 0 {
            return Err(BrokerError::InvalidPartitions {
                topic: topic.name,
                reason: format!("{partitions} partitions requested; it must be at least 1"),
            });
        }
        if replication_factor <= 0 || replication_factor as usize > brokers {
            return Err(BrokerError::InvalidReplicationFactor {
                requested: replication_factor,
                brokers,
            });
        }
        self.metadata.configs.validate_topic(&topic.configs)?;
        warn_deprecated(&topic.name, topic.configs.keys());
        if self.image().topics.contains_key(&topic.name) {
            return Err(strata_controller::ControllerError::Rejected(
                strata_controller::ApplyError::TopicAlreadyExists { name: topic.name },
            )
            .into());
        }
        if validate_only {
            return Ok((partitions, replication_factor));
        }
        let cmd = MetadataCommand::CreateTopic {
            name: topic.name,
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs: topic.configs,
            internal: false,
            assignment: topic.assignments.into_values().collect(),
            placement_start: placement_start(),
        };
        self.propose_and_apply(cmd).await?;
        Ok((partitions, replication_factor))
    }

    /// Checks a manual assignment: contiguous partition indexes from `first`, every
    /// replica list of equal length naming known brokers without repeats.
    fn check_assignment(
        &self,
        topic: &str,
        assignments: &BTreeMap<i32, Vec<i32>>,
        first: i32,
    ) -> Result<(i32, i16), BrokerError> {
        let bad = |reason: String| BrokerError::InvalidReplicaAssignment {
            topic: topic.to_string(),
            reason,
        };
        let image = self.image();
        let mut rf = None;
        for (i, (p, replicas)) in assignments.iter().enumerate() {
            if *p != first + i as i32 {
                return Err(bad(format!(
                    "partition indexes must be consecutive from {first}, found {p}"
                )));
            }
            if *rf.get_or_insert(replicas.len()) != replicas.len() {
                return Err(bad(
                    "every partition needs the same number of replicas".into()
                ));
            }
            strata_controller::partition::check_replica_list(replicas, |b| {
                image.brokers.contains_key(&b)
            })
            .map_err(bad)?;
        }
        Ok((assignments.len() as i32, rf.unwrap_or(1) as i16))
    }

    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, BrokerError> {
        if !self.config().delete_topic_enable {
            return Err(BrokerError::DeletionDisabled);
        }
        let id = self.image().topics.get(name).map(|t| t.id).ok_or_else(|| {
            BrokerError::UnknownTopic {
                topic: name.to_string(),
            }
        })?;
        self.propose_and_apply(MetadataCommand::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        Ok(id)
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignments: &BTreeMap<i32, Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let current = self
            .image()
            .topics
            .get(name)
            .map(|t| t.partitions)
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })?;
        if total <= current {
            return Err(BrokerError::InvalidPartitions {
                topic: name.to_string(),
                reason: format!(
                    "topic has {current} partitions; the new count {total} must be larger"
                ),
            });
        }
        if !assignments.is_empty() {
            let (n, _) = self.check_assignment(name, assignments, current)?;
            if n != total - current {
                return Err(BrokerError::InvalidReplicaAssignment {
                    topic: name.to_string(),
                    reason: format!(
                        "{n} assignments given for {} new partitions",
                        total - current
                    ),
                });
            }
        }
        if validate_only {
            return Ok(());
        }
        self.propose_and_apply(MetadataCommand::CreatePartitions {
            name: name.to_string(),
            total,
            assignment: assignments.values().cloned().collect(),
        })
        .await?;
        Ok(())
    }

    /// Replaces a topic's config overrides after validating them.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        if !self.image().topics.contains_key(name) {
            return Err(BrokerError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        self.metadata.configs.validate_topic(&configs)?;
        warn_deprecated(name, configs.keys());
        if !validate_only {
            self.propose_and_apply(MetadataCommand::SetTopicConfigs {
                name: name.to_string(),
                configs,
            })
            .await?;
        }
        Ok(())
    }

    /// Replaces the dynamic broker config overrides after validating them.
    pub async fn set_broker_configs(
        &self,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        self.metadata.configs.validate_broker_dynamic(&configs)?;
        for name in strata_config::Configs::deprecated_names(configs.keys()) {
            tracing::warn!(
                config = name,
                "deprecated broker config accepted and ignored, as Kafka 3.9 does; remove it"
            );
        }
        if !validate_only {
            self.propose_and_apply(MetadataCommand::SetBrokerConfigs { configs })
                .await?;
        }
        Ok(())
    }

    /// Creates an internal topic (`__consumer_offsets`, `__transaction_state`) unless it
    /// exists; returns its partition count.
    ///
    /// The nodes of a new cluster register one after another, and a topic created by the
    /// first of them would be placed on the nodes registered so far: every coordinator of
    /// the cluster would then sit on one or two nodes, for good. So creation first waits,
    /// at most [`INTERNAL_TOPIC_WAIT`], for as many live brokers as the cluster is known
    /// to have (its voters, or the brokers ever registered), up to `replication_factor`.
    /// After that `replication_factor` is capped at the live brokers, so that a cluster
    /// that starts with a node missing can still serve groups and transactions.
    pub async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<i32, BrokerError> {
        if let Some(t) = self.image().topics.get(name) {
            return Ok(t.partitions);
        }
        self.wait_for_known_brokers(name, replication_factor).await;
        if let Some(t) = self.image().topics.get(name) {
            return Ok(t.partitions);
        }
        let replication_factor =
            (self.live_brokers() as i64).clamp(1, replication_factor.max(1) as i64) as i16;
        let cmd = MetadataCommand::CreateTopic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            internal: true,
            assignment: Vec::new(),
            placement_start: placement_start(),
        };
        match self.propose_and_apply(cmd).await {
            Ok(_) => Ok(partitions),
            // Another node of a starting cluster created it first.
            Err(BrokerError::Controller(strata_controller::ControllerError::Rejected(
                strata_controller::ApplyError::TopicAlreadyExists { .. },
            ))) => {
                let image = self.controller.image();
                self.apply_image(&image)?;
                Ok(image.topics.get(name).map_or(partitions, |t| t.partitions))
            }
            Err(e) => Err(e),
        }
    }

    /// ElectLeaders: the preferred replica, or any live one for a leaderless partition.
    pub async fn elect_leader(
        &self,
        topic: &str,
        partition: i32,
        unclean: bool,
    ) -> Result<(), BrokerError> {
        self.propose_and_apply(MetadataCommand::ElectLeader {
            topic: topic.to_string(),
            partition,
            unclean,
        })
        .await?;
        Ok(())
    }

    /// Waits (bounded) until `min(wanted, brokers the cluster is known to have)` brokers
    /// are live; see [`Self::ensure_internal_topic`].
    async fn wait_for_known_brokers(&self, topic: &str, wanted: i16) {
        let voters = strata_controller::parse_quorum_voters(&self.config().quorum_voters)
            .map_or(1, |v| v.len().max(1));
        let deadline = tokio::time::Instant::now() + INTERNAL_TOPIC_WAIT;
        loop {
            let image = self.image();
            let known = voters.max(image.brokers.len());
            let target = known.min(wanted.max(1) as usize);
            let live = self.live_brokers();
            if live >= target || image.topics.contains_key(topic) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    topic,
                    live,
                    known,
                    "creating an internal topic before every known broker registered: its replicas are placed on the live brokers only"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Registered brokers that are not fenced.
    pub fn live_brokers(&self) -> usize {
        self.image().brokers.values().filter(|b| !b.fenced).count()
    }

    pub(crate) async fn propose_and_apply(
        &self,
        cmd: MetadataCommand,
    ) -> Result<MetadataImage, BrokerError> {
        let image = self.controller.propose(cmd).await.inspect_err(|e| {
            if matches!(
                e,
                ControllerError::NoQuorum { .. } | ControllerError::ProposeTimedOut { .. }
            ) {
                tracing::warn!(error = %e, "metadata change not committed");
            }
        })?;
        self.apply_image(&image)?;
        Ok(image)
    }
}

/// Where replica placement starts, drawn at random as Kafka does, so that topics do not all put
/// their first leader on the same broker.
fn placement_start() -> usize {
    (Uuid::new_v4().as_u128() % 1024) as usize
}

/// Kafka 3.x settings that Kafka itself ignores (`message.format.version`, ...): accepted
/// so that tools written for Kafka 3 keep working, with the warning Kafka 3.9 logs.
fn warn_deprecated<'a>(topic: &str, names: impl IntoIterator<Item = &'a String>) {
    for name in strata_config::Configs::deprecated_names(names) {
        tracing::warn!(
            topic,
            config = name,
            "deprecated topic config accepted and ignored, as Kafka 3.9 does; remove it"
        );
    }
}
