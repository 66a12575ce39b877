//! OffsetForLeaderEpoch: where a leader epoch ends in this leader's log (KIP-101/279/320).
//!
//! Followers ask it after a leader change, to truncate records the new leader never had;
//! consumers ask it to validate their position after a leader change. The answer comes from the
//! log's leader epoch cache: for the latest epoch the log end offset, for an older one the start
//! offset of the next epoch, and UNDEFINED (-1, -1) for an epoch older than the cache.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::server::error_code;

pub fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let part = match ctx.broker.leader_partition(&name, p.partition) {
                        Ok(part) => part,
                        Err(e) => return base.with_error_code(error_code(&e).code()),
                    };
                    let current = part.meta().leader_epoch;
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                        let code = if p.current_leader_epoch < current {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return base.with_error_code(code.code());
                    }
                    match part.log.end_offset_for_epoch(p.leader_epoch) {
                        Some((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
                        None => base,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
