//! Typed views the broker reads: [`BrokerConfig`] and [`TopicConfig`].
//!
//! Both are built from already-validated strings, so a parse failure here means
//! a dynamic map or override that was not validated; it is still reported as a
//! [`ConfigError`], never a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

pub mod security;

use crate::defs::topic_def;
use crate::error::Origin;
use crate::listener::{parse_listeners, Listener};
use crate::resolve::Entry;
use crate::value::{list_items, parse_bool};
use crate::{ConfigError, Configs};

/// Every broker-wide value the broker reads, after all layers.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Client listeners: `listeners` without the controller ones.
    pub listeners: Vec<Listener>,
    /// The listener that serves controller RPCs, when `controller.quorum.voters` is set.
    pub controller_listener: Option<Listener>,
    /// `controller.quorum.voters`, unparsed; empty for a single-node cluster.
    pub quorum_voters: String,
    /// `process.roles=broker`: this node joins the quorum of `controller.quorum.voters` as a
    /// learner (it follows the metadata log without voting) instead of being a voter.
    pub broker_only: bool,
    /// `process.roles=reader`: a read-only node. It follows the partition manifests of the
    /// bucket (`remote.storage.url`) and serves Fetch, ListOffsets and Metadata of tiered data
    /// from there; it is no member of the quorum, hosts no replica and holds no partition log.
    pub read_only: bool,
    pub broker_session_timeout_ms: i64,
    pub broker_heartbeat_interval_ms: i64,
    pub controlled_shutdown_enable: bool,
    pub replica_lag_time_max_ms: i64,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_backoff_ms: i32,
    /// `leader.replication.throttled.rate` (bytes/s; `i64::MAX` is no limit).
    pub leader_replication_throttled_rate: i64,
    /// `follower.replication.throttled.rate` (bytes/s; `i64::MAX` is no limit).
    pub follower_replication_throttled_rate: i64,
    /// `advertised.listeners`, or `listeners` with an empty host replaced by
    /// `localhost`. A port 0 here stands for the port actually bound.
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs`, else `log.dir`, else `./data`.
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub message_max_bytes: i32,
    pub log_retention_check_interval_ms: i64,
    pub socket_request_max_bytes: i32,
    /// `max.incremental.fetch.session.cache.slots`.
    pub fetch_session_slots: i32,
    /// `max.request.partition.size.limit` (DescribeTopicPartitions paging).
    pub max_request_partition_size_limit: i32,
    /// `quota.window.num`, `quota.window.size.seconds`, `controller.quota.window.num`,
    /// `controller.quota.window.size.seconds`.
    pub quota_windows: [i32; 4],
    pub delete_topic_enable: bool,
    /// `None` when unset or empty.
    pub broker_rack: Option<String>,
    /// `replica.selector.class` is Kafka's `RackAwareReplicaSelector` (the only one accepted):
    /// consumers may be sent to an in-sync follower in their rack (KIP-392).
    pub rack_aware_replica_selector: bool,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub compression_type: String,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// `group.consumer.*`: consumer groups of the KIP-848 protocol.
    pub consumer_group: ConsumerGroupConfig,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: i32,
    pub offsets_retention_minutes: i32,
    pub offsets_retention_check_interval_ms: i64,
    /// `transaction.*` and `transactional.id.expiration.ms`: the transaction coordinator.
    pub txn: TxnConfig,
    /// `log.cleaner.*`: the log cleaner's threads, memory and I/O rate.
    pub cleaner: CleanerConfig,
    /// `metrics.listener` as `host:port`; `None` when `none` or empty (disabled).
    pub metrics_listener: Option<String>,
    /// `console.listener` as `host:port`; `None` when `none` or empty (disabled).
    pub console_listener: Option<String>,
    /// `console.read.only`: the console refuses edits.
    pub console_read_only: bool,
    /// `console.metrics.sample.interval.ms`: how often the console's charts sample metrics.
    pub console_sample_interval_ms: u64,
    /// `console.tier.price.*`: what the console's Tier page charges object store traffic.
    pub tier_prices: TierPrices,
    /// `otel.exporter.otlp.endpoint`; `None` when unset or empty.
    pub otlp_endpoint: Option<String>,
    /// `telemetry.max.bytes`: the largest PushTelemetry payload (KIP-714).
    pub telemetry_max_bytes: i32,
    /// `client.telemetry.otlp.endpoint` as given: `None` when unset or empty (use
    /// [`BrokerConfig::otlp_endpoint`]), `Some("none")` disables forwarding.
    pub client_telemetry_otlp_endpoint: Option<String>,
    /// The topic config of a topic without overrides (the broker's log defaults).
    pub topic_defaults: TopicConfig,
    pub remote: RemoteStorageConfig,
    /// Each client listener's security protocol, TLS and SASL settings; connection limits.
    pub security: security::SecurityConfig,
}

/// The broker's remote-tier settings (`remote.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteStorageConfig {
    /// `remote.log.storage.system.enable`.
    pub enabled: bool,
    /// `remote.storage.url`, or `file://<first log dir>/remote`.
    pub url: String,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_path_style: Option<bool>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// `remote.storage.s3.sse`, with its KMS settings.
    pub s3_sse: S3Sse,
    /// Client-side encryption (`remote.storage.encryption.*`); `None` when off.
    pub encryption: Option<RemoteEncryption>,
    pub task_interval_ms: i64,
    pub copy_max_bytes_per_second: i64,
    pub fetch_max_bytes_per_second: i64,
    /// `remote.log.compaction.max.bytes.per.second`: remote passes' reads plus uploads.
    pub compaction_max_bytes_per_second: i64,
    pub fetch_max_wait_ms: i32,
    pub cache_size_bytes: i64,
    pub cache_disk_size_bytes: i64,
    pub fetch_chunk_bytes: i32,
    pub read_ahead_chunks: i32,
    /// `remote.log.reader.threads`: worker threads of the remote read pool.
    pub reader_threads: i32,
    /// `remote.log.reader.max.pending.tasks`: remote reads admitted beyond the threads.
    pub reader_max_pending_tasks: i32,
    /// `remote.log.manifest.poll.interval.ms`: how often a read-only node reads the bucket's
    /// topics and partition manifests again.
    pub manifest_poll_interval_ms: i64,
    /// `iceberg.write.max.bytes.per.second`: remote segment bytes read for tables.
    pub iceberg_write_max_bytes_per_second: i64,
    /// `iceberg.orphan.grace.ms`.
    pub iceberg_orphan_grace_ms: i64,
    /// `iceberg.maintenance.interval.ms`.
    pub iceberg_maintenance_interval_ms: i64,
    /// `iceberg.catalog.type` and its `iceberg.catalog.glue.*` settings.
    pub iceberg_catalog: IcebergCatalog,
}

/// `iceberg.catalog.type`: where topic tables are cataloged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IcebergCatalog {
    /// Metadata versions in the bucket, published with create-if-absent.
    #[default]
    Bucket,
    /// The AWS Glue Data Catalog.
    Glue {
        /// `iceberg.catalog.glue.endpoint` (unset: AWS's regional endpoint).
        endpoint: Option<String>,
        /// `iceberg.catalog.glue.region` (unset: the AWS chain's).
        region: Option<String>,
        /// `iceberg.catalog.glue.database` (unset: `strata`).
        database: String,
    },
}

/// `remote.storage.s3.sse`: server-side encryption asked of S3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum S3Sse {
    #[default]
    None,
    S3,
    Kms {
        /// `remote.storage.s3.sse.kms.key.id`; `None` is the account's `aws/s3` key.
        key_id: Option<String>,
        /// `remote.storage.s3.sse.bucket.key.enable`; `None` is the bucket's setting.
        bucket_key: Option<bool>,
    },
}

/// `remote.storage.encryption.*` when `remote.storage.encryption.enable=true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEncryption {
    /// `remote.storage.encryption.key.file`; `None` when only KMS is used.
    pub key_file: Option<PathBuf>,
    /// `remote.storage.encryption.key.id`; `None` is the file's last key.
    pub key_id: Option<String>,
    /// `remote.storage.encryption.kms.key.id`: new objects' data keys come from KMS.
    pub kms_key_id: Option<String>,
    /// `remote.storage.encryption.kms.endpoint`.
    pub kms_endpoint: Option<String>,
}

/// The effective config of one topic: override > dynamic broker synonym >
/// static broker synonym > default.
/// Consumer groups of the KIP-848 protocol (`group.consumer.*`), bounds checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    /// Short names (`uniform`, `range`), in the configured order; the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.migration.policy`, lower case (bidirectional, upgrade,
    /// downgrade, disabled).
    pub migration_policy: String,
}

/// The transaction coordinator's settings (`transaction.*`, `transactional.id.expiration.ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    pub state_log_num_partitions: i32,
    pub state_log_replication_factor: i16,
    pub state_log_min_isr: i32,
    pub state_log_segment_bytes: i32,
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i32,
    pub abort_timed_out_interval_ms: i32,
    pub remove_expired_interval_ms: i32,
    /// `producer.id.expiration.ms`: the partitions' producer state, not the coordinator's.
    pub producer_id_expiration_ms: i32,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: i32,
    /// `transaction.partition.verification.enable` (KIP-890 part 1, leaders' side).
    pub partition_verification_enable: bool,
}

/// Object store prices (`console.tier.price.*`), in the user's currency: the console's
/// Tier page multiplies the store's request and byte counters by them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TierPrices {
    pub write_requests_per_1000: f64,
    pub read_requests_per_1000: f64,
    pub per_gb_sent: f64,
    pub per_gb_received: f64,
}

/// The log cleaner's broker-wide settings (`log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    pub enable: bool,
    pub threads: i32,
    /// Bytes of key-map memory shared by all threads.
    pub dedupe_buffer_size: i64,
    /// Read plus write bytes per second of all threads; `f64::MAX` is no limit.
    pub io_max_bytes_per_second: f64,
    pub backoff_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// `segment.jitter.ms`: up to this much is taken off `segment_ms`, per segment.
    pub segment_jitter_ms: i64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    /// -1 means forever.
    pub retention_ms: i64,
    /// -1 means no size limit.
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    pub flush_messages: u64,
    /// `flush.ms`; with no setting anywhere, `log.flush.scheduler.interval.ms`
    /// (default `i64::MAX`: never flush on a timer).
    pub flush_ms: i64,
    /// Normalized: `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
    /// `delete.retention.ms`: how long a tombstone stays after its batch was first cleaned.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty record is older is compacted
    /// whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    pub min_insync_replicas: i32,
    pub unclean_leader_election_enable: bool,
    pub remote_storage_enable: bool,
    /// -2 means "same as retention_ms".
    pub local_retention_ms: i64,
    /// -2 means "same as retention_bytes".
    pub local_retention_bytes: i64,
    pub remote_log_copy_disable: bool,
    pub remote_log_delete_on_disable: bool,
    /// `iceberg.enable`: the topic's remote segments are also written into an Iceberg table.
    pub iceberg_enable: bool,
    /// `iceberg.value.format=json`: the fields of `iceberg.value.schema` projected into
    /// columns; empty with `raw`.
    pub iceberg_value_fields: Vec<crate::value_schema::ValueField>,
    /// `iceberg.retention.ms`: -2 means "same as retention_ms", -1 keeps everything.
    pub iceberg_retention_ms: i64,
    /// `iceberg.delete`: deleting the topic deletes its table.
    pub iceberg_delete: bool,
    /// `compression.type`: `producer`, `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression_type: String,
    /// `message.timestamp.difference.max.ms`; `i64::MAX` (the default) checks nothing.
    pub message_timestamp_difference_max_ms: i64,
    /// `leader.replication.throttled.replicas` (KIP-73).
    pub leader_throttled_replicas: crate::ThrottledReplicas,
    /// `follower.replication.throttled.replicas` (KIP-73).
    pub follower_throttled_replicas: crate::ThrottledReplicas,
}

impl TopicConfig {
    /// `cleanup.policy` includes `delete`: `retention.ms` and `retention.bytes` apply.
    /// A `compact`-only topic keeps the latest record of every key forever, as in Kafka.
    pub fn deletes(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "delete")
    }

    /// `cleanup.policy` includes `compact`: the log cleaner keeps the latest record per key.
    pub fn compacts(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p == "compact")
    }
}

impl Configs {
    /// The broker's typed config: `dynamic` (validated here) over the static layers.
    pub fn broker(&self, dynamic: &BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        self.validate_broker_dynamic(dynamic)?;
        let r = Reader {
            configs: self,
            chain: |name| self.broker_chain(name, dynamic),
        };
        let all_listeners = parse_listener_entry(self, &r.entry("listeners")?)?;
        let quorum_voters = r
            .entry("controller.quorum.voters")?
            .converted()
            .trim()
            .to_string();
        let (broker_only, read_only) = check_roles(&r, !quorum_voters.is_empty())?;
        let (listeners, controller_listener) =
            split_controller_listener(self, &r, all_listeners, !quorum_voters.is_empty())?;
        let advertised_listeners = match r.chain("advertised.listeners").into_iter().next() {
            Some(entry) => parse_listener_entry(self, &entry)?,
            None => derive_advertised(self, &r.entry("listeners")?, &listeners)?,
        };
        check_advertised_names(self, &r, &listeners, &advertised_listeners)?;
        let security = self.security(
            &listeners,
            controller_listener.as_ref(),
            !quorum_voters.is_empty(),
        )?;
        let log_dirs: Vec<PathBuf> = list_items(&r.entry("log.dirs")?.converted())
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let remote = remote_config(&r, &log_dirs)?;
        Ok(BrokerConfig {
            node_id: r.get("node.id")?,
            listeners,
            controller_listener,
            quorum_voters,
            broker_only,
            read_only,
            broker_session_timeout_ms: r.get::<i32>("broker.session.timeout.ms")? as i64,
            broker_heartbeat_interval_ms: r.get::<i32>("broker.heartbeat.interval.ms")? as i64,
            controlled_shutdown_enable: r.flag("controlled.shutdown.enable")?,
            replica_lag_time_max_ms: r.get("replica.lag.time.max.ms")?,
            replica_fetch_max_bytes: r.get("replica.fetch.max.bytes")?,
            replica_fetch_response_max_bytes: r.get("replica.fetch.response.max.bytes")?,
            replica_fetch_wait_max_ms: r.get("replica.fetch.wait.max.ms")?,
            replica_fetch_backoff_ms: r.get("replica.fetch.backoff.ms")?,
            leader_replication_throttled_rate: r.get("leader.replication.throttled.rate")?,
            follower_replication_throttled_rate: r.get("follower.replication.throttled.rate")?,
            advertised_listeners,
            log_dirs,
            num_partitions: r.get("num.partitions")?,
            default_replication_factor: r.get("default.replication.factor")?,
            auto_create_topics_enable: r.flag("auto.create.topics.enable")?,
            message_max_bytes: r.get("message.max.bytes")?,
            log_retention_check_interval_ms: r.get("log.retention.check.interval.ms")?,
            socket_request_max_bytes: r.get("socket.request.max.bytes")?,
            fetch_session_slots: r.get("max.incremental.fetch.session.cache.slots")?,
            max_request_partition_size_limit: r.get("max.request.partition.size.limit")?,
            quota_windows: [
                r.get("quota.window.num")?,
                r.get("quota.window.size.seconds")?,
                r.get("controller.quota.window.num")?,
                r.get("controller.quota.window.size.seconds")?,
            ],
            delete_topic_enable: r.flag("delete.topic.enable")?,
            broker_rack: r
                .chain("broker.rack")
                .into_iter()
                .next()
                .map(|e| e.converted())
                .filter(|rack| !rack.is_empty()),
            rack_aware_replica_selector: r
                .chain("replica.selector.class")
                .into_iter()
                .next()
                .is_some_and(|e| e.converted() == crate::defs::RACK_AWARE_SELECTOR),
            min_insync_replicas: r.get("min.insync.replicas")?,
            unclean_leader_election_enable: r.flag("unclean.leader.election.enable")?,
            compression_type: r.entry("compression.type")?.converted(),
            group_initial_rebalance_delay_ms: r.get("group.initial.rebalance.delay.ms")?,
            group_min_session_timeout_ms: r.get("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: r.get("group.max.session.timeout.ms")?,
            consumer_group: consumer_group(&r)?,
            offsets_topic_num_partitions: r.get("offsets.topic.num.partitions")?,
            offsets_topic_segment_bytes: r.get("offsets.topic.segment.bytes")?,
            offsets_retention_minutes: r.get("offsets.retention.minutes")?,
            offsets_retention_check_interval_ms: r.get("offsets.retention.check.interval.ms")?,
            txn: TxnConfig {
                state_log_num_partitions: r.get("transaction.state.log.num.partitions")?,
                state_log_replication_factor: r.get("transaction.state.log.replication.factor")?,
                state_log_min_isr: r.get("transaction.state.log.min.isr")?,
                state_log_segment_bytes: r.get("transaction.state.log.segment.bytes")?,
                max_timeout_ms: r.get("transaction.max.timeout.ms")?,
                id_expiration_ms: r.get("transactional.id.expiration.ms")?,
                abort_timed_out_interval_ms: r
                    .get("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
                remove_expired_interval_ms: r
                    .get("transaction.remove.expired.transaction.cleanup.interval.ms")?,
                producer_id_expiration_ms: r.get("producer.id.expiration.ms")?,
                producer_id_expiration_check_interval_ms: r
                    .get("producer.id.expiration.check.interval.ms")?,
                partition_verification_enable: r
                    .flag("transaction.partition.verification.enable")?,
            },
            cleaner: CleanerConfig {
                enable: r.flag("log.cleaner.enable")?,
                threads: r.get("log.cleaner.threads")?,
                dedupe_buffer_size: r.get("log.cleaner.dedupe.buffer.size")?,
                io_max_bytes_per_second: r.get("log.cleaner.io.max.bytes.per.second")?,
                backoff_ms: r.get("log.cleaner.backoff.ms")?,
            },
            metrics_listener: Some(r.entry("metrics.listener")?.converted())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none")),
            console_listener: Some(r.entry("console.listener")?.converted())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none")),
            console_read_only: r.flag("console.read.only")?,
            console_sample_interval_ms: r.get("console.metrics.sample.interval.ms")?,
            tier_prices: TierPrices {
                write_requests_per_1000: r.get("console.tier.price.write.requests.per.1000")?,
                read_requests_per_1000: r.get("console.tier.price.read.requests.per.1000")?,
                per_gb_sent: r.get("console.tier.price.per.gb.sent")?,
                per_gb_received: r.get("console.tier.price.per.gb.received")?,
            },
            otlp_endpoint: r
                .chain("otel.exporter.otlp.endpoint")
                .into_iter()
                .next()
                .map(|e| e.converted().trim().to_string())
                .filter(|v| !v.is_empty()),
            telemetry_max_bytes: r.get("telemetry.max.bytes")?,
            client_telemetry_otlp_endpoint: r
                .chain("client.telemetry.otlp.endpoint")
                .into_iter()
                .next()
                .map(|e| e.converted().trim().to_string())
                .filter(|v| !v.is_empty()),
            topic_defaults: self.topic(dynamic, &BTreeMap::new())?,
            remote,
            security,
        })
    }

    /// The effective typed config of a topic with `overrides` (validated here).
    pub fn topic(
        &self,
        dynamic: &BTreeMap<String, String>,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        self.validate_broker_dynamic(dynamic)?;
        self.validate_topic(overrides)?;
        let chain = |name: &'static str| match topic_def(name) {
            Some(def) => self.topic_chain(def, dynamic, overrides),
            None => Vec::new(),
        };
        let r = Reader {
            configs: self,
            chain,
        };
        let mut policy: Vec<String> = list_items(&r.entry("cleanup.policy")?.converted())
            .into_iter()
            .map(str::to_string)
            .collect();
        policy.sort();
        policy.dedup();
        Ok(TopicConfig {
            segment_bytes: r.get("segment.bytes")?,
            segment_ms: r.get("segment.ms")?,
            segment_jitter_ms: r.get("segment.jitter.ms")?,
            segment_index_bytes: r.get("segment.index.bytes")?,
            index_interval_bytes: r.get("index.interval.bytes")?,
            retention_ms: r.get("retention.ms")?,
            retention_bytes: r.get("retention.bytes")?,
            max_message_bytes: r.get("max.message.bytes")?,
            log_append_time: r.entry("message.timestamp.type")?.converted() == "LogAppendTime",
            flush_messages: r.get("flush.messages")?,
            flush_ms: r.get("flush.ms")?,
            cleanup_policy: policy.join(","),
            delete_retention_ms: r.get("delete.retention.ms")?,
            min_compaction_lag_ms: r.get("min.compaction.lag.ms")?,
            max_compaction_lag_ms: r.get("max.compaction.lag.ms")?,
            min_cleanable_dirty_ratio: r.get("min.cleanable.dirty.ratio")?,
            min_insync_replicas: r.get("min.insync.replicas")?,
            unclean_leader_election_enable: r.flag("unclean.leader.election.enable")?,
            remote_storage_enable: r.flag("remote.storage.enable")?,
            local_retention_ms: r.get("local.retention.ms")?,
            local_retention_bytes: r.get("local.retention.bytes")?,
            remote_log_copy_disable: r.flag("remote.log.copy.disable")?,
            remote_log_delete_on_disable: r.flag("remote.log.delete.on.disable")?,
            iceberg_enable: r.flag("iceberg.enable")?,
            iceberg_value_fields: match r.entry("iceberg.value.format")?.converted().as_str() {
                "json" => r
                    .optional("iceberg.value.schema")
                    .and_then(|s| crate::value_schema::parse(&s).ok())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
            iceberg_retention_ms: r.get("iceberg.retention.ms")?,
            iceberg_delete: r.flag("iceberg.delete")?,
            compression_type: r.entry("compression.type")?.converted(),
            message_timestamp_difference_max_ms: r.get("message.timestamp.difference.max.ms")?,
            // Validated above, so parsing cannot fail.
            leader_throttled_replicas: crate::ThrottledReplicas::parse(
                &r.entry("leader.replication.throttled.replicas")?
                    .converted(),
            )
            .unwrap_or_default(),
            follower_throttled_replicas: crate::ThrottledReplicas::parse(
                &r.entry("follower.replication.throttled.replicas")?
                    .converted(),
            )
            .unwrap_or_default(),
        })
    }
}

fn remote_config<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
    log_dirs: &[PathBuf],
) -> Result<RemoteStorageConfig, ConfigError> {
    let opt = |name| r.optional(name);
    let url = match opt("remote.storage.url") {
        Some(url) => url,
        None => {
            let first = log_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from("./data"));
            let abs = std::path::absolute(&first).unwrap_or(first);
            format!("file://{}", abs.join("remote").display())
        }
    };
    let path_style = match r.chain("remote.storage.s3.path.style").into_iter().next() {
        Some(_) => Some(r.flag("remote.storage.s3.path.style")?),
        None => None,
    };
    let s3_sse = s3_sse_config(r)?;
    let encryption = encryption_config(r)?;
    Ok(RemoteStorageConfig {
        enabled: r.flag("remote.log.storage.system.enable")?,
        url,
        s3_endpoint: opt("remote.storage.s3.endpoint"),
        s3_region: opt("remote.storage.s3.region"),
        s3_path_style: path_style,
        s3_access_key_id: opt("remote.storage.s3.access.key.id"),
        s3_secret_access_key: opt("remote.storage.s3.secret.access.key"),
        s3_sse,
        encryption,
        task_interval_ms: r.get("remote.log.manager.task.interval.ms")?,
        copy_max_bytes_per_second: r.get("remote.log.manager.copy.max.bytes.per.second")?,
        fetch_max_bytes_per_second: r.get("remote.log.manager.fetch.max.bytes.per.second")?,
        compaction_max_bytes_per_second: r.get("remote.log.compaction.max.bytes.per.second")?,
        fetch_max_wait_ms: r.get("remote.fetch.max.wait.ms")?,
        cache_size_bytes: r.get("remote.cache.size.bytes")?,
        cache_disk_size_bytes: r.get("remote.cache.disk.size.bytes")?,
        fetch_chunk_bytes: r.get("remote.fetch.chunk.bytes")?,
        read_ahead_chunks: r.get("remote.fetch.read.ahead.chunks")?,
        reader_threads: r.get("remote.log.reader.threads")?,
        reader_max_pending_tasks: r.get("remote.log.reader.max.pending.tasks")?,
        manifest_poll_interval_ms: r.get("remote.log.manifest.poll.interval.ms")?,
        iceberg_write_max_bytes_per_second: r.get("iceberg.write.max.bytes.per.second")?,
        iceberg_orphan_grace_ms: r.get("iceberg.orphan.grace.ms")?,
        iceberg_maintenance_interval_ms: r.get("iceberg.maintenance.interval.ms")?,
        iceberg_catalog: iceberg_catalog_config(r)?,
    })
}

/// `iceberg.catalog.*`: the `glue.*` settings mean something only with `type=glue`, so
/// they are refused with another type rather than ignored.
fn iceberg_catalog_config<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
) -> Result<IcebergCatalog, ConfigError> {
    let glue_only = [
        "iceberg.catalog.glue.endpoint",
        "iceberg.catalog.glue.region",
        "iceberg.catalog.glue.database",
    ];
    let kind = r.entry("iceberg.catalog.type")?.converted();
    if kind != "glue" {
        if let Some(e) = glue_only.iter().find_map(|n| r.chain(n).into_iter().next()) {
            return Err(r.invalid(
                &e,
                &format!("only meaningful with iceberg.catalog.type=glue (it is {kind})"),
            ));
        }
        return Ok(IcebergCatalog::Bucket);
    }
    Ok(IcebergCatalog::Glue {
        endpoint: r.optional("iceberg.catalog.glue.endpoint"),
        region: r.optional("iceberg.catalog.glue.region"),
        database: r
            .optional("iceberg.catalog.glue.database")
            .unwrap_or_else(|| "strata".to_string()),
    })
}

/// `remote.storage.s3.sse*`. The KMS settings mean something only with SSE-KMS, so
/// they are refused with another choice rather than ignored.
fn s3_sse_config<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
) -> Result<S3Sse, ConfigError> {
    let kms_only = [
        "remote.storage.s3.sse.kms.key.id",
        "remote.storage.s3.sse.bucket.key.enable",
    ];
    let mode = r.entry("remote.storage.s3.sse")?.converted();
    if mode != "SSE-KMS" {
        if let Some(e) = kms_only.iter().find_map(|n| r.chain(n).into_iter().next()) {
            return Err(r.invalid(
                &e,
                &format!("only meaningful with remote.storage.s3.sse=SSE-KMS (it is {mode})"),
            ));
        }
    }
    Ok(match mode.as_str() {
        "SSE-S3" => S3Sse::S3,
        "SSE-KMS" => S3Sse::Kms {
            key_id: r.optional("remote.storage.s3.sse.kms.key.id"),
            bucket_key: match r
                .chain("remote.storage.s3.sse.bucket.key.enable")
                .into_iter()
                .next()
            {
                Some(_) => Some(r.flag("remote.storage.s3.sse.bucket.key.enable")?),
                None => None,
            },
        },
        _ => S3Sse::None,
    })
}

/// `remote.storage.encryption.*`: a key file or a KMS key is required when it is on,
/// the other settings are refused when it is off, `key.id` needs the key file and
/// `kms.endpoint` the KMS key.
fn encryption_config<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
) -> Result<Option<RemoteEncryption>, ConfigError> {
    let set = |name| r.chain(name).into_iter().next();
    let enable = r.entry("remote.storage.encryption.enable")?;
    if !r.flag("remote.storage.encryption.enable")? {
        let names = [
            "remote.storage.encryption.key.file",
            "remote.storage.encryption.key.id",
            "remote.storage.encryption.kms.key.id",
            "remote.storage.encryption.kms.endpoint",
        ];
        return match names.into_iter().find_map(set) {
            Some(e) => Err(r.invalid(&e, "set, but remote.storage.encryption.enable is false")),
            None => Ok(None),
        };
    }
    let key_file = r.optional("remote.storage.encryption.key.file");
    let kms_key_id = r.optional("remote.storage.encryption.kms.key.id");
    if key_file.is_none() && kms_key_id.is_none() {
        return Err(r.invalid(
            &enable,
            "needs remote.storage.encryption.key.file (one id=base64key a line) or remote.storage.encryption.kms.key.id (an AWS KMS key)",
        ));
    }
    if key_file.is_none() {
        if let Some(e) = set("remote.storage.encryption.key.id") {
            return Err(r.invalid(
                &e,
                "names a key of remote.storage.encryption.key.file, which is not set",
            ));
        }
    }
    if kms_key_id.is_none() {
        if let Some(e) = set("remote.storage.encryption.kms.endpoint") {
            return Err(r.invalid(&e, "set, but remote.storage.encryption.kms.key.id is not"));
        }
    }
    Ok(Some(RemoteEncryption {
        key_file: key_file.map(PathBuf::from),
        key_id: r.optional("remote.storage.encryption.key.id"),
        kms_key_id,
        kms_endpoint: r.optional("remote.storage.encryption.kms.endpoint"),
    }))
}

/// Reads typed values from a resolution chain.
struct Reader<'a, F: Fn(&'static str) -> Vec<Entry>> {
    configs: &'a Configs,
    chain: F,
}

impl<F: Fn(&'static str) -> Vec<Entry>> Reader<'_, F> {
    fn chain(&self, name: &'static str) -> Vec<Entry> {
        (self.chain)(name)
    }

    /// The winning entry; every setting read this way has a default.
    fn entry(&self, name: &'static str) -> Result<Entry, ConfigError> {
        self.chain(name)
            .into_iter()
            .next()
            .ok_or_else(|| ConfigError::Invalid {
                name: name.to_string(),
                value: String::new(),
                reason: "must be set (it has no default)".to_string(),
                origin: Origin::Default,
            })
    }

    fn get<T: FromStr>(&self, name: &'static str) -> Result<T, ConfigError> {
        let entry = self.entry(name)?;
        entry
            .converted()
            .trim()
            .parse()
            .map_err(|_| self.invalid(&entry, "not a number in range"))
    }

    /// A setting without a default: `None` when unset or empty.
    fn optional(&self, name: &'static str) -> Option<String> {
        self.chain(name)
            .into_iter()
            .next()
            .map(|e| e.converted())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        let entry = self.entry(name)?;
        parse_bool(&entry.raw).ok_or_else(|| self.invalid(&entry, "expected true or false"))
    }

    fn invalid(&self, entry: &Entry, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            name: entry.name.to_string(),
            value: entry.raw.clone(),
            reason: reason.to_string(),
            origin: self.configs.entry_origin(entry),
        }
    }
}

/// `group.consumer.*`, with Kafka's checks: the session timeout and the heartbeat
/// interval within their min/max, the interval below the session timeout.
fn consumer_group<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
) -> Result<ConsumerGroupConfig, ConfigError> {
    let bounded = |name: &'static str, min: &'static str, max: &'static str| {
        let v: i32 = r.get(name)?;
        let (lo, hi): (i32, i32) = (r.get(min)?, r.get(max)?);
        if v < lo || v > hi {
            let reason = format!("must be within [{min} {lo}, {max} {hi}]");
            return Err(r.invalid(&r.entry(name)?, &reason));
        }
        Ok(v)
    };
    let session_timeout_ms = bounded(
        "group.consumer.session.timeout.ms",
        "group.consumer.min.session.timeout.ms",
        "group.consumer.max.session.timeout.ms",
    )?;
    let heartbeat_interval_ms = bounded(
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.min.heartbeat.interval.ms",
        "group.consumer.max.heartbeat.interval.ms",
    )?;
    if heartbeat_interval_ms >= session_timeout_ms {
        let entry = r.entry("group.consumer.heartbeat.interval.ms")?;
        return Err(r.invalid(&entry, "must be below group.consumer.session.timeout.ms"));
    }
    let entry = r.entry("group.consumer.assignors")?;
    let mut assignors: Vec<String> = Vec::new();
    for name in crate::value::list_items(&entry.converted()) {
        let short = match name {
            "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => "uniform",
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => "range",
            other => other,
        };
        if !assignors.iter().any(|a| a == short) {
            assignors.push(short.to_string());
        }
    }
    if assignors.is_empty() {
        return Err(r.invalid(&entry, "must name at least one assignor (uniform, range)"));
    }
    let migration_policy: String = r.get("group.consumer.migration.policy")?;
    Ok(ConsumerGroupConfig {
        session_timeout_ms,
        heartbeat_interval_ms,
        assignors,
        migration_policy: migration_policy.to_ascii_lowercase(),
    })
}

fn parse_listener_entry(configs: &Configs, entry: &Entry) -> Result<Vec<Listener>, ConfigError> {
    parse_listeners(&entry.raw).map_err(|reason| ConfigError::Invalid {
        name: entry.name.to_string(),
        value: entry.raw.clone(),
        reason,
        origin: configs.entry_origin(entry),
    })
}

/// Checks `process.roles`: `broker,controller` (a voter), `broker` (a learner of an existing
/// quorum, which needs `controller.quorum.voters`) or `reader` (a read-only node, which joins
/// no quorum). Returns (broker-only, read-only).
fn check_roles<F: Fn(&'static str) -> Vec<Entry>>(
    r: &Reader<'_, F>,
    quorum: bool,
) -> Result<(bool, bool), ConfigError> {
    let roles = r.entry("process.roles")?;
    let mut named: Vec<&str> = list_items(&roles.raw);
    named.sort_unstable();
    named.dedup();
    match named.as_slice() {
        ["broker", "controller"] => Ok((false, false)),
        ["broker"] if quorum => Ok((true, false)),
        ["broker"] => Err(r.invalid(
            &roles,
            "a broker-only node joins an existing quorum: set controller.quorum.voters to its voters",
        )),
        ["reader"] if !quorum => Ok((false, true)),
        ["reader"] => Err(r.invalid(
            &roles,
            "a read-only node (reader) follows the bucket, not the metadata log: unset \
             controller.quorum.voters on it",
        )),
        _ => Err(r.invalid(
            &roles,
            "Strata runs a node as broker and controller (broker,controller), as broker only \
             (broker, a non-voting member of controller.quorum.voters), or as a read-only node \
             (reader, alone); a controller-only node is not supported",
        )),
    }
}

/// Splits `listeners` into client listeners and the controller listener (named by
/// `controller.listener.names`), which only a quorum (`controller.quorum.voters`) needs; a
/// broker-only node receives the metadata log on it too.
fn split_controller_listener<F: Fn(&'static str) -> Vec<Entry>>(
    configs: &Configs,
    r: &Reader<'_, F>,
    all: Vec<Listener>,
    quorum: bool,
) -> Result<(Vec<Listener>, Option<Listener>), ConfigError> {
    let names_entry = r.entry("controller.listener.names")?;
    let names: Vec<String> = list_items(&names_entry.raw)
        .into_iter()
        .map(|n| n.to_ascii_uppercase())
        .collect();
    let (controller, clients): (Vec<Listener>, Vec<Listener>) =
        all.into_iter().partition(|l| names.contains(&l.name));
    let listeners_entry = r.entry("listeners")?;
    if clients.is_empty() {
        return Err(ConfigError::Invalid {
            name: "listeners".to_string(),
            value: listeners_entry.raw.clone(),
            reason: "every listener is a controller listener; add one for clients, e.g. PLAINTEXT://:9092".to_string(),
            origin: configs.entry_origin(&listeners_entry),
        });
    }
    let controller = controller.into_iter().next();
    if quorum && controller.is_none() {
        return Err(ConfigError::Invalid {
            name: "listeners".to_string(),
            value: listeners_entry.raw.clone(),
            reason: format!(
                "controller.quorum.voters is set, so listeners needs a controller listener named {}, e.g. {}://:9093",
                names.join(" or "),
                names.first().map(String::as_str).unwrap_or("CONTROLLER")
            ),
            origin: configs.entry_origin(&listeners_entry),
        });
    }
    Ok((clients, controller))
}

/// Kafka advertises the listeners themselves when `advertised.listeners` is
/// unset; a wildcard address cannot be given to clients.
fn derive_advertised(
    configs: &Configs,
    entry: &Entry,
    listeners: &[Listener],
) -> Result<Vec<Listener>, ConfigError> {
    listeners
        .iter()
        .map(|l| match l.host.as_str() {
            "" => Ok(Listener {
                host: "localhost".to_string(),
                ..l.clone()
            }),
            "0.0.0.0" | "::" => Err(ConfigError::Invalid {
                name: entry.name.to_string(),
                value: entry.raw.clone(),
                reason: format!(
                    "listener {l} binds all interfaces, which clients cannot connect to; \
                     set advertised.listeners to the address clients should use"
                ),
                origin: configs.entry_origin(entry),
            }),
            _ => Ok(l.clone()),
        })
        .collect()
}

fn check_advertised_names<F: Fn(&'static str) -> Vec<Entry>>(
    configs: &Configs,
    r: &Reader<'_, F>,
    listeners: &[Listener],
    advertised: &[Listener],
) -> Result<(), ConfigError> {
    let Some(entry) = r.chain("advertised.listeners").into_iter().next() else {
        return Ok(());
    };
    for a in advertised {
        let reason = if !listeners.iter().any(|l| l.name == a.name) {
            format!("listener name {} is not in listeners", a.name)
        } else if a.host == "0.0.0.0" || a.host == "::" {
            format!("{a} is not an address clients can connect to")
        } else {
            continue;
        };
        return Err(ConfigError::Invalid {
            name: entry.name.to_string(),
            value: entry.raw.clone(),
            reason,
            origin: configs.entry_origin(&entry),
        });
    }
    Ok(())
}
