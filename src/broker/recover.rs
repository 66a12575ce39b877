//! Recovery from the bucket: re-creating tiered topics that the controller no
//! longer knows (a lost data dir) from what the remote tier holds.
//!
//! For each topic found in the bucket ([`strata_tier::topics::discover`]) and absent
//! from the metadata image, this proposes a `CreateTopic` with the bucket's topic
//! id, partition count, replication factor and config overrides, after preparing
//! each partition's directory so that its local log opens empty at the remote end
//! offset ([`strata_log::Log::init_empty_at`]): new produces continue at that
//! offset and fetches below it are served by the remote read path. A partition
//! directory that still holds segments of the *same* topic id is adopted as it is
//! (only the metadata was lost); one of another topic is refused.
//!
//! It never deletes anything, local or remote, and skips topics whose name is
//! taken: running it twice is harmless. Offsets that were only on the lost local
//! disk (not yet uploaded) are gone; consumer group offsets are not in the bucket.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use strata_controller::MetadataCommand;
use strata_log::Log;
use strata_tier::topics::{self, BucketTopic, MetadataSource};
use strata_tier::TierError;
use uuid::Uuid;

use super::{validate_topic_name, Broker};
use crate::replica::TopicPartition;

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("no remote tier is configured (remote.log.storage.system.enable=true and remote.storage.url); there is no bucket to recover from")]
    NoTier,
    #[error("cannot read the topics of the remote tier at {url}: {source}; check remote.storage.url and its credentials")]
    Discover {
        url: String,
        #[source]
        source: TierError,
    },
}

/// What to recover.
#[derive(Clone, Debug, Default)]
pub struct RecoverOptions {
    /// Topic names to recover; empty means every topic in the bucket.
    pub topics: Vec<String>,
    /// Only report what would be done.
    pub dry_run: bool,
}

/// The outcome for one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Restored,
    WouldRestore,
    /// The controller already has this topic with this id.
    AlreadyPresent,
    /// Not restored; the reason says why and what to do.
    Skipped(String),
    Failed(String),
}

/// One partition as recovery sees it.
#[derive(Clone, Debug)]
pub struct PartitionRecovery {
    pub partition: i32,
    pub remote_start: Option<i64>,
    pub remote_end: Option<i64>,
    /// Where the local log restarts (the next offset a produce gets).
    pub resume_offset: i64,
    pub remote_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct TopicRecovery {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition_count: i32,
    pub configs: BTreeMap<String, String>,
    pub source: Option<MetadataSource>,
    pub partitions: Vec<PartitionRecovery>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    pub topics: Vec<TopicRecovery>,
}

impl RecoveryReport {
    /// True when some topic of the bucket (or a requested one) was not restored
    /// and is not already present: the operator has something to look at.
    pub fn has_failures(&self) -> bool {
        self.topics
            .iter()
            .any(|t| matches!(t.outcome, Outcome::Failed(_) | Outcome::Skipped(_)))
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.topics.is_empty() {
            return writeln!(f, "no tiered topics found in the bucket");
        }
        for t in &self.topics {
            let outcome = match &t.outcome {
                Outcome::Restored => "restored".to_string(),
                Outcome::WouldRestore => "would restore (dry run)".to_string(),
                Outcome::AlreadyPresent => "already present".to_string(),
                Outcome::Skipped(why) => format!("skipped: {why}"),
                Outcome::Failed(why) => format!("FAILED: {why}"),
            };
            writeln!(
                f,
                "topic {} id {} partitions {} configs {}: {outcome}",
                t.topic,
                t.topic_id,
                t.partition_count,
                t.configs.len()
            )?;
            for p in &t.partitions {
                let show = |o: Option<i64>| o.map_or("-".to_string(), |v| v.to_string());
                let mut line = String::new();
                let _ = write!(
                    line,
                    "  {}-{}\tremote [{}, {})\t{} bytes\tresumes at {}",
                    t.topic,
                    p.partition,
                    show(p.remote_start),
                    show(p.remote_end),
                    p.remote_bytes,
                    p.resume_offset
                );
                writeln!(f, "{line}")?;
            }
        }
        Ok(())
    }
}

/// The topic id in a partition directory's `partition.metadata`, if readable.
fn partition_metadata_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

fn describe(t: &BucketTopic, outcome: Outcome) -> TopicRecovery {
    TopicRecovery {
        topic: t.topic.clone(),
        topic_id: t.topic_id,
        partition_count: t.partition_count,
        configs: t.configs.clone(),
        source: Some(t.source),
        partitions: (0..t.partition_count)
            .map(|p| {
                let m = t.partitions.get(&p);
                PartitionRecovery {
                    partition: p,
                    remote_start: m.and_then(|m| m.start_offset()),
                    remote_end: m.and_then(|m| m.end_offset()),
                    resume_offset: t.resume_offset(p),
                    remote_bytes: m.map_or(0, |m| m.size_bytes()),
                }
            })
            .collect(),
        outcome,
    }
}

impl Broker {
    /// Restores the tiered topics of the bucket that the controller does not know
    /// (see the module docs). Per-topic problems are reported in the result, not
    /// returned as errors, so one bad topic does not stop the others.
    pub async fn recover_from_bucket(
        &self,
        opts: &RecoverOptions,
    ) -> Result<RecoveryReport, RecoverError> {
        let rlm = self.rlm.as_ref().ok_or(RecoverError::NoTier)?;
        let found =
            topics::discover(rlm.store())
                .await
                .map_err(|source| RecoverError::Discover {
                    url: rlm.url().to_string(),
                    source,
                })?;
        let wanted = |name: &str| opts.topics.is_empty() || opts.topics.iter().any(|t| t == name);
        let mut report = RecoveryReport::default();
        for t in found.iter().filter(|t| wanted(&t.topic)) {
            let namesakes: Vec<String> = found
                .iter()
                .filter(|o| o.topic == t.topic && o.topic_id != t.topic_id)
                .map(|o| o.topic_id.to_string())
                .collect();
            let outcome = if !namesakes.is_empty() {
                Outcome::Skipped(format!(
                    "the bucket also holds topic '{}' with id(s) {}; delete the stale <topic>-<id> prefix from the bucket first",
                    t.topic,
                    namesakes.join(", ")
                ))
            } else {
                self.recover_topic(t, opts.dry_run).await
            };
            report.topics.push(describe(t, outcome));
        }
        for name in &opts.topics {
            if !found.iter().any(|t| &t.topic == name) {
                report.topics.push(TopicRecovery {
                    topic: name.clone(),
                    topic_id: Uuid::nil(),
                    partition_count: 0,
                    configs: BTreeMap::new(),
                    source: None,
                    partitions: Vec::new(),
                    outcome: Outcome::Failed(format!(
                        "topic '{name}' is not in the bucket at {}",
                        rlm.url()
                    )),
                });
            }
        }
        Ok(report)
    }

    async fn recover_topic(&self, t: &BucketTopic, dry_run: bool) -> Outcome {
        let image = self.image();
        if let Some(existing) = image.topics.get(&t.topic) {
            return if existing.id == t.topic_id {
                Outcome::AlreadyPresent
            } else {
                Outcome::Skipped(format!(
                    "a topic '{}' with another id ({}) exists; delete it first to restore the bucket's",
                    t.topic, existing.id
                ))
            };
        }
        if let Some(other) = image.topics.values().find(|m| m.id == t.topic_id) {
            return Outcome::Skipped(format!(
                "topic id {} already belongs to topic '{}'",
                t.topic_id, other.name
            ));
        }
        if let Err(e) = validate_topic_name(&t.topic) {
            return Outcome::Failed(e.to_string());
        }
        if let Err(e) = self.metadata.configs.validate_topic(&t.configs) {
            return Outcome::Failed(format!("its configs from the bucket are not valid: {e}"));
        }
        let snapshots = if dry_run {
            HashMap::new()
        } else {
            self.producer_snapshots(t).await
        };
        let dirs = match self.prepare_partition_dirs(t, dry_run, &snapshots) {
            Ok(d) => d,
            Err(e) => return Outcome::Failed(e),
        };
        if dry_run {
            return Outcome::WouldRestore;
        }
        let brokers = self.live_brokers().max(1);
        let cmd = MetadataCommand::CreateTopic {
            name: t.topic.clone(),
            id: t.topic_id,
            partitions: t.partition_count,
            replication_factor: t.replication_factor.min(brokers as i16).max(1),
            configs: t.configs.clone(),
            internal: false,
            assignment: Vec::new(),
            placement_start: 0,
        };
        if let Err(e) = self.propose_and_apply(cmd).await {
            return Outcome::Failed(format!("the controller refused to re-create it: {e}"));
        }
        for p in self.replicas.topic_partitions(&t.topic) {
            if let Some(m) = t.partitions.get(&p.tp.partition) {
                p.set_remote_manifest(m.clone());
            }
        }
        tracing::info!(topic = %t.topic, topic_id = %t.topic_id, partitions = t.partition_count, adopted = dirs, "restored topic from the remote tier");
        Outcome::Restored
    }

    /// The producer snapshot uploaded with the last remote segment of each partition (the
    /// state at the resume offset), for the partitions that have one. A snapshot that cannot
    /// be read is left out with a warning: the topic is restored, its producers start anew.
    async fn producer_snapshots(&self, t: &BucketTopic) -> HashMap<i32, bytes::Bytes> {
        let mut out = HashMap::new();
        let Some(tier) = self.replicas.remote() else {
            return out;
        };
        for (p, m) in &t.partitions {
            let resume = t.resume_offset(*p);
            let Some(seg) = m
                .segments
                .iter()
                .find(|s| s.next_offset == resume && s.producer_snapshot_bytes > 0)
            else {
                continue;
            };
            match tier.reader.producer_snapshot(&m.partition, seg).await {
                Ok(bytes) => {
                    out.insert(*p, bytes);
                }
                Err(e) => {
                    tracing::warn!(topic = %t.topic, partition = p, error = %e, "could not read the producer snapshot of the last remote segment; its producers start anew")
                }
            }
        }
        out
    }

    /// Makes every partition directory open at its resume offset. Returns how many
    /// existing directories of the same topic id were adopted as they are. Checks
    /// every directory before preparing any, so a refusal leaves nothing behind.
    fn prepare_partition_dirs(
        &self,
        t: &BucketTopic,
        dry_run: bool,
        snapshots: &HashMap<i32, bytes::Bytes>,
    ) -> Result<usize, String> {
        let mut fresh = Vec::new();
        let mut adopted = 0;
        for p in 0..t.partition_count {
            let tp = TopicPartition {
                topic: t.topic.as_str().into(),
                partition: p,
            };
            let dir = self.replicas.partition_dir(&tp);
            match dir.exists().then(|| partition_metadata_id(&dir)).flatten() {
                Some(id) if id == t.topic_id => adopted += 1,
                Some(id) => {
                    return Err(format!(
                        "{} holds topic id {id}, not {}; move it away first",
                        dir.display(),
                        t.topic_id
                    ))
                }
                None if has_segments(&dir) => {
                    return Err(format!(
                        "{} holds segments of an unknown topic id; move it away first",
                        dir.display()
                    ))
                }
                None => fresh.push((tp, dir, t.resume_offset(p))),
            }
        }
        if !dry_run {
            for (tp, dir, offset) in fresh {
                Log::init_empty_at(&dir, offset).map_err(|e| format!("{tp}: {e}"))?;
                if let Some(snapshot) = snapshots.get(&tp.partition) {
                    // The producer state at the remote end: idempotent producers keep
                    // their sequences, open transactions their first offsets.
                    Log::install_producer_snapshot(&dir, offset, snapshot)
                        .map_err(|e| format!("{tp}: {e}"))?;
                }
            }
        }
        Ok(adopted)
    }
}

/// Whether `dir` holds any `.log` file.
fn has_segments(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "log"))
    })
}
