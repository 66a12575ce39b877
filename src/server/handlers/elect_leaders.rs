//! ElectLeaders (KIP-183, KIP-460): preferred leader election, or unclean election of
//! leaderless partitions. Each election is a metadata change through the controller; a
//! partition already led as asked answers ELECTION_NOT_NEEDED, as Kafka does.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;
use strata_controller::NO_LEADER;

use super::{str_bytes, Ctx};
use crate::broker::BrokerError;
use crate::server::error_code;

pub async fn handle(ctx: &Ctx<'_>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    if !ctx.cluster_allowed(strata_controller::AclOperation::Alter) {
        // As Kafka: every partition asked for answers CLUSTER_AUTHORIZATION_FAILED.
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let out = t
                    .partitions
                    .iter()
                    .map(|p| {
                        PartitionResult::default()
                            .with_partition_id(*p)
                            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(out)
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_replica_election_results(results);
    }
    let unclean = ctx.version >= 1 && req.election_type == 1;
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(tps) => tps
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        // Null means every partition.
        None => ctx
            .broker
            .image()
            .topics
            .values()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut out = Vec::with_capacity(partitions.len());
        for p in partitions {
            let r = PartitionResult::default().with_partition_id(p);
            out.push(match elect(ctx, &topic, p, unclean).await {
                Ok(()) => r,
                Err((code, message)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            });
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(topic)))
                .with_partition_result(out),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

async fn elect(
    ctx: &Ctx<'_>,
    topic: &str,
    partition: i32,
    unclean: bool,
) -> Result<(), (ResponseError, String)> {
    let image = ctx.broker.image();
    let unknown = || {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("{topic}-{partition} does not exist"),
        )
    };
    let meta = image
        .topics
        .get(topic)
        .ok_or_else(unknown)?
        .partition(partition)
        .ok_or_else(unknown)?;
    let not_needed = if unclean {
        meta.leader != NO_LEADER
    } else {
        meta.replicas.first() == Some(&meta.leader)
    };
    if not_needed {
        return Err((
            ResponseError::ElectionNotNeeded,
            format!(
                "{topic}-{partition} is already led by broker {}",
                meta.leader
            ),
        ));
    }
    ctx.broker
        .elect_leader(topic, partition, unclean)
        .await
        .map_err(|e: BrokerError| (error_code(&e), e.to_string()))
}
