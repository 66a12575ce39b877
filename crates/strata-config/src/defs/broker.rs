//! Broker configs: names, types, defaults and validators as Kafka has them.
//!
//! `dynamic: true` marks the cluster-wide broker defaults of topic configs,
//! which Kafka lets `IncrementalAlterConfigs` change at runtime; every other
//! broker setting needs a restart.

use super::{
    syn, syn_x, ConfigDef, ConfigType::*, Importance::*, Synonym, Validator::*, BASE, LONG_MAX,
};

const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// `log.retention.*`, in Kafka's precedence order.
pub(super) const RETENTION: &[Synonym] = &[
    syn("log.retention.ms"),
    syn_x("log.retention.minutes", MINUTE_MS),
    syn_x("log.retention.hours", HOUR_MS),
];
/// `log.roll.*`.
pub(super) const ROLL: &[Synonym] = &[syn("log.roll.ms"), syn_x("log.roll.hours", HOUR_MS)];
/// `log.roll.jitter.*`.
pub(super) const JITTER: &[Synonym] = &[
    syn("log.roll.jitter.ms"),
    syn_x("log.roll.jitter.hours", HOUR_MS),
];
/// `log.flush.interval.ms`, falling back to the flush scheduler's interval as in Kafka.
pub(super) const FLUSH_MS: &[Synonym] = &[
    syn("log.flush.interval.ms"),
    syn("log.flush.scheduler.interval.ms"),
];
/// `log.dirs`, falling back to `log.dir` when only that is set.
pub(super) const LOG_DIRS: &[Synonym] = &[syn("log.dirs"), syn("log.dir")];

/// Broker names that are resolved together: the first explicitly set one wins.
pub const BROKER_GROUPS: &[&[Synonym]] = &[LOG_DIRS, ROLL, JITTER, RETENTION, FLUSH_MS];

const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
pub(super) const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
pub(super) const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every broker config.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    // --- identity and network -------------------------------------------------
    ConfigDef { name: "node.id", ty: Int, default: Some("1"), validator: AtLeast(0), importance: High,
        doc: "This broker's id, unique in the cluster.", ..BASE },
    ConfigDef { name: "broker.rack", ty: String, importance: Medium,
        doc: "Rack of this broker, reported to clients for rack-aware placement; unset means none.", ..BASE },
    ConfigDef { name: "listeners", ty: List, default: Some("PLAINTEXT://127.0.0.1:9092"), validator: Listeners,
        importance: High,
        doc: "Comma-separated NAME://host:port addresses to listen on; an empty host or 0.0.0.0 binds all interfaces, port 0 an ephemeral port.",
        ..BASE },
    ConfigDef { name: "advertised.listeners", ty: List, validator: Listeners, importance: High,
        doc: "Addresses given to clients in metadata; unset means the listeners (an empty host becomes localhost).",
        ..BASE },
    ConfigDef { name: "socket.request.max.bytes", ty: Int, default: Some("104857600"), validator: AtLeast(1),
        importance: High, doc: "Largest request, in bytes, the broker accepts on a socket.", ..BASE },
    // --- storage --------------------------------------------------------------
    ConfigDef { name: "log.dirs", ty: List, default: Some("./data"), validator: NonEmptyList, importance: High,
        doc: "Comma-separated directories holding partition logs; takes precedence over log.dir.", ..BASE },
    ConfigDef { name: "log.dir", ty: List, validator: NonEmptyList, importance: High,
        doc: "Kafka's older single-directory name, used only when log.dirs is not set explicitly.", ..BASE },
    ConfigDef { name: "log.segment.bytes", ty: Int, default: Some("1073741824"), validator: AtLeast(14),
        importance: High, dynamic: true, doc: "Largest size of a log segment file before a new one is rolled.", ..BASE },
    ConfigDef { name: "log.roll.ms", ty: Long, validator: AtLeast(1), importance: High, dynamic: true,
        doc: "Time after which a new segment is rolled even if not full; unset means log.roll.hours.", ..BASE },
    ConfigDef { name: "log.roll.hours", ty: Int, default: Some("168"), validator: AtLeast(1), importance: High,
        dynamic: true, doc: "Segment roll time in hours, used when log.roll.ms is not set.", ..BASE },
    ConfigDef { name: "log.roll.jitter.ms", ty: Long, validator: AtLeast(0), importance: High, dynamic: true,
        stored_only: true, doc: "Largest random jitter subtracted from the roll time; unset means log.roll.jitter.hours.",
        ..BASE },
    ConfigDef { name: "log.roll.jitter.hours", ty: Int, default: Some("0"), validator: AtLeast(0), importance: High,
        dynamic: true, stored_only: true, doc: "Roll jitter in hours, used when log.roll.jitter.ms is not set.", ..BASE },
    ConfigDef { name: "log.retention.ms", ty: Long, validator: AtLeast(-1), importance: High, dynamic: true,
        doc: "How long to keep a segment before deleting it (-1: forever); beats log.retention.minutes and .hours.",
        ..BASE },
    ConfigDef { name: "log.retention.minutes", ty: Int, validator: AtLeast(-1), importance: High, dynamic: true,
        doc: "Retention in minutes, used when log.retention.ms is not set; beats log.retention.hours.", ..BASE },
    ConfigDef { name: "log.retention.hours", ty: Int, default: Some("168"), validator: AtLeast(-1), importance: High,
        dynamic: true, doc: "Retention in hours, used when neither log.retention.ms nor .minutes is set.", ..BASE },
    ConfigDef { name: "log.retention.bytes", ty: Long, default: Some("-1"), importance: High, dynamic: true,
        doc: "Largest size of a partition's log before old segments are deleted (-1: no limit).", ..BASE },
    ConfigDef { name: "log.retention.check.interval.ms", ty: Long, default: Some("300000"), validator: AtLeast(1),
        importance: Medium, doc: "How often the retention task looks for segments to delete.", ..BASE },
    ConfigDef { name: "log.local.retention.ms", ty: Long, default: Some("-2"), validator: AtLeast(-2),
        importance: Medium, dynamic: true,
        doc: "With remote storage, how long segments stay on local disk (-2: same as retention.ms).", ..BASE },
    ConfigDef { name: "log.local.retention.bytes", ty: Long, default: Some("-2"), validator: AtLeast(-2),
        importance: Medium, dynamic: true,
        doc: "With remote storage, local bytes kept per partition (-2: same as retention.bytes).", ..BASE },
    ConfigDef { name: "log.flush.interval.messages", ty: Long, default: Some(LONG_MAX), validator: AtLeast(1),
        importance: High, dynamic: true, doc: "Messages appended to a partition before its log is fsynced.", ..BASE },
    ConfigDef { name: "log.flush.interval.ms", ty: Long, validator: AtLeast(0), importance: High, dynamic: true,
        doc: "Longest time a message waits before its log is fsynced; unset means log.flush.scheduler.interval.ms.",
        ..BASE },
    ConfigDef { name: "log.flush.scheduler.interval.ms", ty: Long, default: Some(LONG_MAX), validator: AtLeast(0),
        importance: High, dynamic: true,
        doc: "Flush interval used when log.flush.interval.ms is not set (default: never flush on time, rely on replication).",
        ..BASE },
    ConfigDef { name: "log.index.interval.bytes", ty: Int, default: Some("4096"), validator: AtLeast(0),
        importance: Medium, dynamic: true, doc: "Bytes appended between two offset index entries.", ..BASE },
    ConfigDef { name: "log.index.size.max.bytes", ty: Int, default: Some("10485760"), validator: AtLeast(4),
        importance: Medium, dynamic: true, doc: "Largest size of an offset or time index file.", ..BASE },
    ConfigDef { name: "log.message.timestamp.type", ty: String, default: Some("CreateTime"),
        validator: OneOf(TIMESTAMP_TYPES), importance: Medium, dynamic: true,
        doc: "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).", ..BASE },
    ConfigDef { name: "log.message.timestamp.difference.max.ms", ty: Long, default: Some(LONG_MAX),
        validator: AtLeast(0), importance: Medium, dynamic: true, stored_only: true,
        doc: "Largest allowed gap between a CreateTime timestamp and the broker's clock.", ..BASE },
    ConfigDef { name: "log.cleanup.policy", ty: List, default: Some("delete"), validator: ListOf(CLEANUP_POLICIES),
        importance: Medium, dynamic: true, doc: "Default cleanup policy: delete, compact, or compact,delete.", ..BASE },
    ConfigDef { name: "log.segment.delete.delay.ms", ty: Long, default: Some("60000"), validator: AtLeast(0),
        importance: High, dynamic: true, stored_only: true,
        doc: "Delay before a segment removed from the log is deleted from disk.", ..BASE },
    ConfigDef { name: "log.cleaner.delete.retention.ms", ty: Long, default: Some("86400000"), validator: AtLeast(0),
        importance: Medium, dynamic: true, stored_only: true,
        doc: "How long tombstones are kept in compacted topics.", ..BASE },
    ConfigDef { name: "log.cleaner.min.compaction.lag.ms", ty: Long, default: Some("0"), validator: AtLeast(0),
        importance: Medium, dynamic: true, stored_only: true,
        doc: "Shortest time a message stays uncompacted.", ..BASE },
    ConfigDef { name: "log.cleaner.max.compaction.lag.ms", ty: Long, default: Some(LONG_MAX), validator: AtLeast(1),
        importance: Medium, dynamic: true, stored_only: true,
        doc: "Longest time a message stays ineligible for compaction.", ..BASE },
    ConfigDef { name: "log.cleaner.min.cleanable.ratio", ty: Double, default: Some("0.5"),
        validator: DoubleBetween(0.0, 1.0), importance: Medium, dynamic: true, stored_only: true,
        doc: "Dirty ratio of a log above which it is compacted.", ..BASE },
    ConfigDef { name: "log.preallocate", ty: Boolean, default: Some("false"), importance: Medium, dynamic: true,
        stored_only: true, doc: "Whether to preallocate the file when rolling a new segment.", ..BASE },
    ConfigDef { name: "message.max.bytes", ty: Int, default: Some("1048588"), validator: AtLeast(0),
        importance: High, dynamic: true, doc: "Largest record batch, in bytes, the broker accepts.", ..BASE },
    ConfigDef { name: "compression.type", ty: String, default: Some("producer"), validator: OneOf(COMPRESSION_TYPES),
        importance: High, dynamic: true, stored_only: true,
        doc: "Compression of stored batches; producer keeps what the producer sent.", ..BASE },
    // --- remote storage (tiering) --------------------------------------------
    ConfigDef { name: "remote.log.storage.system.enable", ty: Boolean, default: Some("true"), importance: Medium,
        doc: "Whether this broker runs the remote tier; topics opt in with remote.storage.enable. Strata's default is true (Kafka: false): the embedded default tier is a local directory.",
        ..BASE },
    ConfigDef { name: "remote.storage.url", ty: String, importance: Medium,
        doc: "Where tiered segments go: file:///path, memory:// or s3://bucket/prefix; unset means file://<first log dir>/remote.",
        ..BASE },
    ConfigDef { name: "remote.storage.s3.endpoint", ty: String, importance: Low,
        doc: "S3 endpoint URL (MinIO, LocalStack, moto); unset means AWS_ENDPOINT_URL or AWS itself.", ..BASE },
    ConfigDef { name: "remote.storage.s3.region", ty: String, importance: Low,
        doc: "S3 region; unset means AWS_REGION / AWS_DEFAULT_REGION.", ..BASE },
    ConfigDef { name: "remote.storage.s3.path.style", ty: Boolean, importance: Low,
        doc: "Path-style S3 addressing (http://host/bucket/key), needed by moto and MinIO; unset means the environment's choice.",
        ..BASE },
    ConfigDef { name: "remote.storage.s3.access.key.id", ty: String, importance: Low,
        doc: "S3 access key id; unset means the standard AWS environment or instance profile.", ..BASE },
    ConfigDef { name: "remote.storage.s3.secret.access.key", ty: Password, importance: Low,
        doc: "S3 secret access key; unset means the standard AWS environment or instance profile.", ..BASE },
    ConfigDef { name: "remote.log.manager.task.interval.ms", ty: Long, default: Some("30000"), validator: AtLeast(1),
        importance: Medium, doc: "How often the RemoteLogManager looks for segments to upload and remote data to expire.",
        ..BASE },
    ConfigDef { name: "remote.log.manager.copy.max.bytes.per.second", ty: Long, default: Some(LONG_MAX),
        validator: AtLeast(1), importance: Medium, doc: "Upload rate limit of the broker, in bytes per second.", ..BASE },
    ConfigDef { name: "remote.log.manager.fetch.max.bytes.per.second", ty: Long, default: Some(LONG_MAX),
        validator: AtLeast(1), importance: Medium,
        doc: "Remote read rate limit of the broker, in bytes per second: every byte its remote reads and read-ahead GET from the object store.", ..BASE },
    ConfigDef { name: "remote.fetch.max.wait.ms", ty: Int, default: Some("500"), validator: AtLeast(1),
        importance: Medium,
        doc: "Longest time a fetch waits for remote reads before answering with what it has.", ..BASE },
    ConfigDef { name: "remote.cache.size.bytes", ty: Long, default: Some("67108864"), validator: AtLeast(1048576),
        importance: Medium, doc: "Memory tier of the remote chunk cache.", ..BASE },
    ConfigDef { name: "remote.cache.disk.size.bytes", ty: Long, default: Some("268435456"), validator: AtLeast(0),
        importance: Medium, doc: "Disk tier of the remote chunk cache, under <first log dir>/remote-cache; 0 disables it.",
        ..BASE },
    ConfigDef { name: "remote.fetch.chunk.bytes", ty: Int, default: Some("1048576"), validator: AtLeast(4096),
        importance: Low, doc: "Size of a cache entry of a remote segment; consecutive missing chunks are fetched by one ranged GET of up to 16 MiB.", ..BASE },
    ConfigDef { name: "remote.fetch.read.ahead.chunks", ty: Int, default: Some("16"), validator: AtLeast(0),
        importance: Low, doc: "Chunks fetched ahead of a sequential remote reader, as one ranged GET per run of missing chunks (into the next segment too); shrunk while many partitions are read so that all read-ahead fits half of remote.cache.size.bytes.", ..BASE },
    // --- topics and replication ----------------------------------------------
    ConfigDef { name: "num.partitions", ty: Int, default: Some("1"), validator: AtLeast(1), importance: Medium,
        doc: "Partitions of an automatically created topic, or of CreateTopics asking for the default.", ..BASE },
    ConfigDef { name: "default.replication.factor", ty: Int, default: Some("1"), validator: Between(1, 32767),
        importance: Medium, doc: "Replication factor of automatically created topics.", ..BASE },
    ConfigDef { name: "min.insync.replicas", ty: Int, default: Some("1"), validator: AtLeast(1), importance: High,
        dynamic: true, doc: "Fewest in-sync replicas for an acks=all produce to succeed.", ..BASE },
    ConfigDef { name: "auto.create.topics.enable", ty: Boolean, default: Some("true"), importance: High,
        doc: "Whether metadata requests for an unknown topic create it.", ..BASE },
    ConfigDef { name: "delete.topic.enable", ty: Boolean, default: Some("true"), importance: High,
        doc: "Whether DeleteTopics is allowed.", ..BASE },
    ConfigDef { name: "unclean.leader.election.enable", ty: Boolean, default: Some("false"), importance: High,
        dynamic: true, stored_only: true,
        doc: "Whether an out-of-sync replica may become leader as a last resort, losing data.", ..BASE },
    // --- consumer groups and committed offsets ---------------------------------
    ConfigDef { name: "group.initial.rebalance.delay.ms", ty: Int, default: Some("3000"), validator: AtLeast(0),
        importance: Medium,
        doc: "How long the coordinator waits for more members before the first rebalance of an empty group.", ..BASE },
    ConfigDef { name: "group.min.session.timeout.ms", ty: Int, default: Some("6000"), validator: AtLeast(1),
        importance: Medium, doc: "Smallest session timeout a group member may ask for.", ..BASE },
    ConfigDef { name: "group.max.session.timeout.ms", ty: Int, default: Some("1800000"), validator: AtLeast(1),
        importance: Medium, doc: "Largest session timeout a group member may ask for.", ..BASE },
    ConfigDef { name: "offsets.topic.num.partitions", ty: Int, default: Some("50"), validator: AtLeast(1),
        importance: High,
        doc: "Partitions of the internal __consumer_offsets topic (used only when it is first created).", ..BASE },
    ConfigDef { name: "offsets.topic.segment.bytes", ty: Int, default: Some("104857600"), validator: AtLeast(14),
        importance: High,
        doc: "Segment size of __consumer_offsets (used only when it is first created); the coordinator compacts a partition that grew by more than two segments since its last compaction.", ..BASE },
    ConfigDef { name: "offsets.retention.minutes", ty: Int, default: Some("10080"), validator: AtLeast(1),
        importance: High,
        doc: "How long the committed offsets of a group are kept after the group becomes empty.", ..BASE },
    ConfigDef { name: "offsets.retention.check.interval.ms", ty: Long, default: Some("600000"),
        validator: AtLeast(1), importance: High, doc: "How often expired committed offsets are looked for.", ..BASE },
    // --- observability --------------------------------------------------------
    ConfigDef { name: "metrics.listener", ty: String, default: Some("127.0.0.1:9464"), importance: Medium,
        doc: "host:port serving Prometheus metrics at GET /metrics; port 0 binds an ephemeral port, none or empty disables it.",
        ..BASE },
    ConfigDef { name: "otel.exporter.otlp.endpoint", ty: String, importance: Low,
        doc: "OTLP/HTTP (protobuf) base URL, e.g. http://127.0.0.1:4318, to export traces and metrics to; unset falls back to OTEL_EXPORTER_OTLP_ENDPOINT, and neither means no export.",
        ..BASE },
];
