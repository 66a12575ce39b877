//! Strata: a Kafka-compatible broker whose partitions live in a durable, Kafka-format
//! segmented log (`strata-log`) tiered to object storage (`strata-tier`), with cluster metadata in a Raft log
//! (`strata-controller`) and Kafka-named settings (`strata-config`).
//!
//! Layers, top to bottom (dependencies point down):
//! - `server`: the listener, framing loop, and one handler per Kafka API;
//! - `group`: consumer group coordinator (membership state machine, committed offsets
//!   in `__consumer_offsets`);
//! - `broker`: hosted partitions, topic lifecycle, background upkeep;
//! - `protocol`: frames and the table of served API versions;
//! - `tier_status`: `strata tier inspect`, read from the bucket and the log dirs;
//! - `recover`: `strata recover`, restores tiered topics from the bucket.
//!
//! Beside them, `metrics` counts what the layers do (they call into it; it reads
//! `broker` only at scrape time) and `logging` sets up `tracing`.
//!
//! Beside them, `cli` is a Kafka admin client (`strata topic|group|tier status`): it talks to
//! brokers over the network only and uses none of the layers above.

pub mod alloc;
pub mod broker;
pub mod cli;
pub mod group;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod recover;
pub mod server;
pub mod startup;
pub mod tier_status;
