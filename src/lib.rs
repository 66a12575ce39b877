//! Strata: a Kafka-compatible broker whose partitions live in a durable, Kafka-format
//! segmented log (`strata-log`) tiered to object storage (`strata-tier`), with cluster metadata in a Raft log
//! (`strata-controller`) and Kafka-named settings (`strata-config`).
//!
//! Layers, top to bottom (dependencies point down):
//! - `server`: the listener, framing loop, and one handler per Kafka API (decode, call a
//!   component, encode); the only place module errors become Kafka error codes;
//! - `group`: consumer group coordinator (membership state machine, committed offsets
//!   in `__consumer_offsets`, written and read through the replica manager);
//! - `broker`: the node's assembly and metadata publisher (`apply_image`), topic
//!   administration, cluster loops (liveness, ISR proposals), recovery from the bucket;
//! - `rlm`: the RemoteLogManager (uploads, remote retention, local retention of tiered logs);
//! - `cleaner`: the log cleaner (compaction of `cleanup.policy=compact` topics);
//! - `replica`: the replica manager, the one place that appends to and reads from the
//!   hosted partitions, across both tiers, and the replica fetchers;
//! - `metadata`: the metadata this node has applied (broker config, topic configs);
//! - `protocol`: frames, the table of served API versions, and a minimal Kafka client
//!   (which speaks TLS and SASL for the CLI);
//! - `pem`: PEM key, certificate and CA files (TLS listeners and clients);
//! - `sasl`: the SASL mechanisms' messages and state machines, pure, shared by the
//!   broker's `server::auth` and the client;
//! - `tier_status`: `strata tier inspect`, read from the bucket and the log dirs;
//! - `recover`: `strata recover`, restores tiered topics from the bucket.
//!
//! Beside them, `metrics` counts what the layers do (they call into it; it reads the
//! replica manager only at scrape time) and `logging` sets up `tracing`.
//!
//! Beside them, `cli` is a Kafka admin client (`strata topic|group|tier status`): it talks to
//! brokers over the network only, through `protocol::client`, and uses none of the layers
//! above.

pub mod alloc;
pub mod blocking;
pub mod broker;
pub mod cleaner;
pub mod cli;
pub mod console;
pub mod group;
pub mod internal_topic;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod pem;
pub mod protocol;
pub mod quota;
pub mod readonly;
pub mod recover;
pub mod replica;
pub mod rlm;
pub mod sasl;
pub mod server;
pub mod startup;
pub mod telemetry;
pub mod tier_status;
pub mod txn;

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
