//! Strata: a Kafka-compatible broker whose partitions live in a durable, Kafka-format
//! segmented log (`strata-log`) tiered to object storage (`strata-tier`), with cluster metadata in a Raft log
//! (`strata-controller`) and Kafka-named settings (`strata-config`).
//!
//! Layers, top to bottom (dependencies point down):
//! - `server`: the listener, framing loop, and one handler per Kafka API;
//! - `broker`: hosted partitions, topic lifecycle, background upkeep;
//! - `protocol`: frames and the table of served API versions;
//! - `tier_status`: `strata tier status`, read from the bucket and the log dirs.

pub mod broker;
pub mod protocol;
pub mod server;
pub mod startup;
pub mod tier_status;
