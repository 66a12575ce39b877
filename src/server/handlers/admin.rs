//! DeleteRecords, DescribeCluster, DescribeLogDirs.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};

use super::{str_bytes, Ctx};
use crate::broker::BrokerError;
use crate::server::error_code;
use crate::server::errors::log_code;

pub fn delete_records(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
                    let part = match ctx.broker.partition(&name, p.partition_index) {
                        Ok(part) => part,
                        Err(e) => return base.with_error_code(error_code(&e).code()).with_low_watermark(-1),
                    };
                    match part.log.delete_records_before(p.offset) {
                        Ok(low) => {
                            tracing::info!(tp = %part.tp, log_start_offset = low, "deleted records");
                            base.with_low_watermark(low)
                        }
                        Err(e) => {
                            let code = log_code(&e);
                            tracing::info!(error = %BrokerError::Log { tp: part.tp.clone(), source: e }, "delete records refused");
                            base.with_error_code(code.code()).with_low_watermark(-1)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub fn describe_cluster(ctx: &Ctx, _req: DescribeClusterRequest) -> DescribeClusterResponse {
    let b = &ctx.broker;
    let me = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.node_id()))
        .with_host(str_bytes(b.advertised.host.clone()))
        .with_port(b.advertised.port as i32)
        .with_rack(b.config().broker_rack.clone().map(str_bytes));
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(b.image().cluster_id.clone()))
        .with_controller_id(BrokerId(b.node_id()))
        .with_brokers(vec![me])
        .with_endpoint_type(1)
}

pub fn describe_log_dirs(ctx: &Ctx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Which partitions were asked for: all of them when `topics` is null.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in ctx.broker.all_partitions() {
        let asked = wanted.as_ref().is_none_or(|w| {
            w.get(&*p.tp.topic)
                .is_some_and(|ps| ps.contains(&p.tp.partition))
        });
        if asked {
            by_topic.entry(p.tp.topic.to_string()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(p.tp.partition)
                    .with_partition_size(p.log.size_bytes() as i64)
                    .with_offset_lag(0),
            );
        }
    }
    let topics: Vec<DescribeLogDirsTopic> = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    // All partitions live in the first log dir (see `Broker::partition_dir`); the
    // others are listed, empty, so operators see every configured dir.
    let results = ctx
        .broker
        .log_dirs()
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let total = fs4::total_space(dir).map(|b| b as i64).unwrap_or(-1);
            let usable = fs4::available_space(dir).map(|b| b as i64).unwrap_or(-1);
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(dir.display().to_string()))
                .with_topics(if i == 0 { topics.clone() } else { Vec::new() })
                .with_total_bytes(total)
                .with_usable_bytes(usable)
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
