//! Topic configs, each with the broker configs that supply its default.
//!
//! A topic config with synonyms has no default of its own: its value without an
//! override is that of the first synonym set anywhere (see [`crate::defs::Synonym`]).

use super::broker::{CLEANUP_POLICIES, COMPRESSION_TYPES, FLUSH_MS, JITTER, RETENTION, ROLL};
use super::{syn, ConfigDef, ConfigType::*, Importance::*, Validator::*, BASE};

macro_rules! from {
    ($name:literal) => {
        &[syn($name)]
    };
}

/// Every topic config.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef { name: "segment.bytes", ty: Int, validator: AtLeast(14), importance: Medium,
        synonyms: from!("log.segment.bytes"), doc: "Size of a segment file before a new one is rolled.", ..BASE },
    ConfigDef { name: "segment.ms", ty: Long, validator: AtLeast(1), importance: Medium, synonyms: ROLL,
        doc: "Time after which a segment is rolled even if not full.", ..BASE },
    ConfigDef { name: "segment.jitter.ms", ty: Long, validator: AtLeast(0), importance: Medium, synonyms: JITTER,
        doc: "Largest jitter subtracted from segment.ms, different for each segment, so that partitions created together do not all roll at once.", ..BASE },
    ConfigDef { name: "segment.index.bytes", ty: Int, validator: AtLeast(4), importance: Medium,
        synonyms: from!("log.index.size.max.bytes"), doc: "Largest size of a segment's offset or time index.", ..BASE },
    ConfigDef { name: "index.interval.bytes", ty: Int, validator: AtLeast(0), importance: Medium,
        synonyms: from!("log.index.interval.bytes"), doc: "Bytes appended between two offset index entries.", ..BASE },
    ConfigDef { name: "retention.ms", ty: Long, validator: AtLeast(-1), importance: Medium, synonyms: RETENTION,
        doc: "How long to keep a segment before deleting it (-1: forever).", ..BASE },
    ConfigDef { name: "retention.bytes", ty: Long, importance: Medium, synonyms: from!("log.retention.bytes"),
        doc: "Largest size of a partition's log before old segments are deleted (-1: no limit).", ..BASE },
    ConfigDef { name: "local.retention.ms", ty: Long, validator: AtLeast(-2), importance: Medium,
        synonyms: from!("log.local.retention.ms"),
        doc: "With remote storage, how long segments stay on local disk (-2: same as retention.ms).", ..BASE },
    ConfigDef { name: "local.retention.bytes", ty: Long, validator: AtLeast(-2), importance: Medium,
        synonyms: from!("log.local.retention.bytes"),
        doc: "With remote storage, local bytes kept per partition (-2: same as retention.bytes).", ..BASE },
    ConfigDef { name: "remote.storage.enable", ty: Boolean, default: Some("false"), importance: Medium,
        doc: "Whether closed segments of this topic are copied to the remote tier.", ..BASE },
    ConfigDef { name: "remote.log.copy.disable", ty: Boolean, default: Some("false"), importance: Medium,
        doc: "Stop copying segments to the remote tier while keeping remote reads and remote retention.", ..BASE },
    ConfigDef { name: "remote.log.delete.on.disable", ty: Boolean, default: Some("false"), importance: Medium,
        doc: "Delete the remote data when remote.storage.enable is turned off (required to turn it off).", ..BASE },
    ConfigDef { name: "max.message.bytes", ty: Int, validator: AtLeast(0), importance: Medium,
        synonyms: from!("message.max.bytes"), doc: "Largest record batch, in bytes, this topic accepts.", ..BASE },
    ConfigDef { name: "message.timestamp.type", ty: String, validator: OneOf(&["CreateTime", "LogAppendTime"]),
        importance: Medium, synonyms: from!("log.message.timestamp.type"),
        doc: "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).", ..BASE },
    ConfigDef { name: "message.timestamp.difference.max.ms", ty: Long, validator: AtLeast(0), importance: Medium,
        synonyms: from!("log.message.timestamp.difference.max.ms"),
        doc: "Largest allowed gap between a CreateTime timestamp and the broker's clock; a produce with a record outside it gets INVALID_TIMESTAMP.", ..BASE },
    ConfigDef { name: "flush.messages", ty: Long, validator: AtLeast(1), importance: Medium,
        synonyms: from!("log.flush.interval.messages"), doc: "Messages appended before the log is fsynced.", ..BASE },
    ConfigDef { name: "flush.ms", ty: Long, validator: AtLeast(0), importance: Medium, synonyms: FLUSH_MS,
        doc: "Longest time a message waits before the log is fsynced.", ..BASE },
    ConfigDef { name: "cleanup.policy", ty: List, validator: ListOf(CLEANUP_POLICIES), importance: Medium,
        synonyms: from!("log.cleanup.policy"), doc: "delete, compact, or compact,delete.", ..BASE },
    ConfigDef { name: "min.insync.replicas", ty: Int, validator: AtLeast(1), importance: Medium,
        synonyms: from!("min.insync.replicas"), doc: "Fewest in-sync replicas for an acks=all produce to succeed.",
        ..BASE },
    ConfigDef { name: "compression.type", ty: String, validator: OneOf(COMPRESSION_TYPES), importance: Medium,
        synonyms: from!("compression.type"),
        doc: "Codec of stored batches: a leader rewrites produced batches with another codec; producer keeps what the producer sent.", ..BASE },
    ConfigDef { name: "file.delete.delay.ms", ty: Long, validator: AtLeast(0), importance: Medium,
        synonyms: from!("log.segment.delete.delay.ms"), stored_only: true,
        doc: "Delay before a removed segment is deleted from disk.", ..BASE },
    ConfigDef { name: "delete.retention.ms", ty: Long, validator: AtLeast(0), importance: Medium,
        synonyms: from!("log.cleaner.delete.retention.ms"),
        doc: "How long tombstones are kept in a compacted topic.", ..BASE },
    ConfigDef { name: "min.compaction.lag.ms", ty: Long, validator: AtLeast(0), importance: Medium,
        synonyms: from!("log.cleaner.min.compaction.lag.ms"),
        doc: "Shortest time a message stays uncompacted.", ..BASE },
    ConfigDef { name: "max.compaction.lag.ms", ty: Long, validator: AtLeast(1), importance: Medium,
        synonyms: from!("log.cleaner.max.compaction.lag.ms"),
        doc: "Longest time a message stays ineligible for compaction.", ..BASE },
    ConfigDef { name: "min.cleanable.dirty.ratio", ty: Double, validator: DoubleBetween(0.0, 1.0),
        importance: Medium, synonyms: from!("log.cleaner.min.cleanable.ratio"),
        doc: "Dirty ratio above which the log is compacted.", ..BASE },
    ConfigDef { name: "preallocate", ty: Boolean, importance: Medium, synonyms: from!("log.preallocate"),
        validator: OneOf(&["false"]),
        doc: "Whether to preallocate the file when rolling a new segment. Only false: Strata's segments grow by appends and are never preallocated, so true is refused rather than ignored.", ..BASE },
    ConfigDef { name: "unclean.leader.election.enable", ty: Boolean, importance: Medium,
        synonyms: from!("unclean.leader.election.enable"),
        doc: "Whether an out-of-sync replica may become leader as a last resort, losing data.", ..BASE },
];
