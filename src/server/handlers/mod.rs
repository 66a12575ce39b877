//! One handler per Kafka API. A handler validates, calls into `broker`, and encodes;
//! error codes come from `server::errors`.

mod acls;
mod admin;
pub mod api_versions;
mod configs;
mod consumer_groups;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
pub(crate) mod fetch;
mod groups;
mod init_producer_id;
mod leader_epoch;
mod list_offsets;
mod metadata;
mod offsets;
pub(crate) mod produce;
mod quotas;
mod raft_voters;
mod reassign;
pub mod sasl;
mod scram;
mod telemetry;
mod topics;
mod txn;
mod unregister_broker;
mod write_txn_markers;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

/// Runs the handler for `body`. `None` means no response is sent (Produce, acks=0).
pub async fn dispatch(ctx: &Ctx<'_>, body: RequestKind) -> Option<ResponseKind> {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    Some(match body {
        Rq::ApiVersions(_) => Rs::ApiVersions(api_versions::response(0)),
        Rq::Metadata(r) => Rs::Metadata(metadata::handle(ctx, r).await),
        Rq::DescribeTopicPartitions(r) => {
            Rs::DescribeTopicPartitions(describe_topic_partitions::handle(ctx, r))
        }
        Rq::Produce(r) => return produce::handle(ctx, r).await.map(Rs::Produce),
        Rq::Fetch(r) => Rs::Fetch(fetch::handle(ctx, r).await),
        Rq::OffsetForLeaderEpoch(r) => Rs::OffsetForLeaderEpoch(leader_epoch::handle(ctx, r)),
        Rq::ElectLeaders(r) => Rs::ElectLeaders(elect_leaders::handle(ctx, r).await),
        Rq::AlterPartitionReassignments(r) => {
            Rs::AlterPartitionReassignments(reassign::alter(ctx, r).await)
        }
        Rq::ListPartitionReassignments(r) => Rs::ListPartitionReassignments(reassign::list(ctx, r)),
        Rq::ListOffsets(r) => Rs::ListOffsets(list_offsets::handle(ctx, r).await),
        Rq::CreateTopics(r) => Rs::CreateTopics(topics::create_topics(ctx, r).await),
        Rq::DeleteTopics(r) => Rs::DeleteTopics(topics::delete_topics(ctx, r).await),
        Rq::CreatePartitions(r) => Rs::CreatePartitions(topics::create_partitions(ctx, r).await),
        Rq::DescribeConfigs(r) => Rs::DescribeConfigs(configs::describe(ctx, r)),
        Rq::AlterConfigs(r) => Rs::AlterConfigs(configs::alter(ctx, r).await),
        Rq::IncrementalAlterConfigs(r) => {
            Rs::IncrementalAlterConfigs(configs::incremental_alter(ctx, r).await)
        }
        Rq::DeleteRecords(r) => Rs::DeleteRecords(admin::delete_records(ctx, r).await),
        Rq::DescribeCluster(r) => Rs::DescribeCluster(admin::describe_cluster(ctx, r)),
        Rq::DescribeQuorum(r) => Rs::DescribeQuorum(describe_quorum::handle(ctx, r)),
        Rq::DescribeLogDirs(r) => Rs::DescribeLogDirs(admin::describe_log_dirs(ctx, r)),
        Rq::InitProducerId(r) => Rs::InitProducerId(init_producer_id::handle(ctx, r).await),
        Rq::FindCoordinator(r) => Rs::FindCoordinator(groups::find_coordinator(ctx, r)),
        Rq::JoinGroup(r) => Rs::JoinGroup(groups::join_group(ctx, r).await),
        Rq::SyncGroup(r) => Rs::SyncGroup(groups::sync_group(ctx, r).await),
        Rq::Heartbeat(r) => Rs::Heartbeat(groups::heartbeat(ctx, r)),
        Rq::LeaveGroup(r) => Rs::LeaveGroup(groups::leave_group(ctx, r)),
        Rq::ListGroups(r) => Rs::ListGroups(groups::list_groups(ctx, r)),
        Rq::DescribeGroups(r) => Rs::DescribeGroups(groups::describe_groups(ctx, r)),
        Rq::ConsumerGroupHeartbeat(r) => {
            Rs::ConsumerGroupHeartbeat(consumer_groups::heartbeat(ctx, r).await)
        }
        Rq::ConsumerGroupDescribe(r) => {
            Rs::ConsumerGroupDescribe(consumer_groups::describe(ctx, r))
        }
        Rq::DeleteGroups(r) => Rs::DeleteGroups(groups::delete_groups(ctx, r)),
        Rq::OffsetCommit(r) => Rs::OffsetCommit(offsets::commit(ctx, r).await),
        Rq::OffsetFetch(r) => Rs::OffsetFetch(offsets::fetch(ctx, r)),
        Rq::OffsetDelete(r) => Rs::OffsetDelete(offsets::delete(ctx, r)),
        Rq::AddPartitionsToTxn(r) => Rs::AddPartitionsToTxn(txn::add_partitions(ctx, r).await),
        Rq::AddOffsetsToTxn(r) => Rs::AddOffsetsToTxn(txn::add_offsets(ctx, r).await),
        Rq::EndTxn(r) => Rs::EndTxn(txn::end_txn(ctx, r).await),
        Rq::TxnOffsetCommit(r) => Rs::TxnOffsetCommit(txn::txn_offset_commit(ctx, r).await),
        Rq::DescribeTransactions(r) => Rs::DescribeTransactions(txn::describe(ctx, r)),
        Rq::ListTransactions(r) => Rs::ListTransactions(txn::list(ctx, r)),
        Rq::DescribeProducers(r) => Rs::DescribeProducers(describe_producers::handle(ctx, r)),
        Rq::WriteTxnMarkers(r) => Rs::WriteTxnMarkers(write_txn_markers::handle(ctx, r).await),
        Rq::DescribeUserScramCredentials(r) => {
            Rs::DescribeUserScramCredentials(scram::describe(ctx, r))
        }
        Rq::AlterUserScramCredentials(r) => {
            Rs::AlterUserScramCredentials(scram::alter(ctx, r).await)
        }
        Rq::CreateAcls(r) => Rs::CreateAcls(acls::create(ctx, r).await),
        Rq::DescribeAcls(r) => Rs::DescribeAcls(acls::describe(ctx, r)),
        Rq::DeleteAcls(r) => Rs::DeleteAcls(acls::delete(ctx, r).await),
        Rq::DescribeClientQuotas(r) => Rs::DescribeClientQuotas(quotas::describe(ctx, r)),
        Rq::AlterClientQuotas(r) => Rs::AlterClientQuotas(quotas::alter(ctx, r).await),
        Rq::UnregisterBroker(r) => Rs::UnregisterBroker(unregister_broker::handle(ctx, r).await),
        Rq::AddRaftVoter(r) => Rs::AddRaftVoter(raft_voters::add(ctx, r).await),
        Rq::RemoveRaftVoter(r) => Rs::RemoveRaftVoter(raft_voters::remove(ctx, r).await),
        Rq::GetTelemetrySubscriptions(r) => {
            Rs::GetTelemetrySubscriptions(telemetry::get_subscriptions(ctx, r))
        }
        Rq::PushTelemetry(r) => Rs::PushTelemetry(telemetry::push(ctx, r)),
        Rq::ListConfigResources(r) => Rs::ListConfigResources(configs::list_resources(ctx, r)),
        other => {
            // `protocol::decode_request` only lets through APIs in SUPPORTED_APIS, each
            // of which has an arm above (SaslHandshake and SaslAuthenticate change the
            // connection's state and are handled by `server::connection`).
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
