//! Strata: a Kafka-compatible broker whose partitions live in a durable, Kafka-format
//! segmented log (`strata-log`), with cluster metadata in a Raft log
//! (`strata-controller`) and Kafka-named settings (`strata-config`).
//!
//! Layers, top to bottom (dependencies point down):
//! - `server`: the listener, framing loop, and one handler per Kafka API;
//! - `broker`: hosted partitions, topic lifecycle, background upkeep;
//! - `protocol`: frames and the table of served API versions.
//!
//! Beside them, `metrics` counts what the layers do (they call into it; it reads
//! `broker` only at scrape time) and `logging` sets up `tracing`.
//!
//! Beside them, `cli` is a Kafka admin client (`strata topic|group|tier`): it talks to
//! brokers over the network only and uses none of the layers above.

pub mod alloc;
pub mod broker;
pub mod cli;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod startup;
