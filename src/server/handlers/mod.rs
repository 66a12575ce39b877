//! One handler per Kafka API. A handler validates, calls into `broker`, and encodes;
//! error codes come from `server::errors`.

mod admin;
pub mod api_versions;
mod configs;
mod fetch;
mod list_offsets;
mod metadata;
mod produce;
mod topics;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;

/// Runs the handler for `body`. `None` means no response is sent (Produce, acks=0).
pub async fn dispatch(ctx: &Ctx, body: RequestKind) -> Option<ResponseKind> {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    Some(match body {
        Rq::ApiVersions(_) => Rs::ApiVersions(api_versions::response(0)),
        Rq::Metadata(r) => Rs::Metadata(metadata::handle(ctx, r).await),
        Rq::Produce(r) => return produce::handle(ctx, r).map(Rs::Produce),
        Rq::Fetch(r) => Rs::Fetch(fetch::handle(ctx, r).await),
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
        Rq::DescribeLogDirs(r) => Rs::DescribeLogDirs(admin::describe_log_dirs(ctx, r)),
        other => {
            // `protocol::decode_request` only lets through APIs in SUPPORTED_APIS, each
            // of which has an arm above.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
