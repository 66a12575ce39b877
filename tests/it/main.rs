//! The one integration test binary: the real `strata` process driven by real Kafka
//! clients (librdkafka through the `rdkafka` crate) and raw protocol frames.

mod admin;
mod admin_cli;
mod bad_input;
mod catchup;
mod cli;
mod cluster;
mod cluster_health;
mod compaction;
mod crash;
mod describe_producers;
mod fetch;
mod groups;
mod harness;
mod idempotence;
mod kafka;
mod metrics;
mod node_security;
mod produce_consume;
mod recover;
mod replace;
mod roles;
mod security;
mod startup;
mod tier;
mod tier_cluster;
mod tier_compaction;
mod tier_encryption;
mod tier_kms;
mod topic_partitions;
mod transactions;
mod txn;
mod txn_expiry;
mod txn_v2;
mod txn_verify;
mod txn_verify_remote;
