//! Producer ids for idempotent producers (InitProducerId).
//!
//! Ids come from blocks reserved through the controller
//! ([`strata_controller::Controller::allocate_producer_ids`]), so an id is never
//! handed out twice, across restarts or (later) across brokers: a restart
//! abandons the rest of its block, as Kafka's `ProducerIdManager` does.
//!
//! A request that names a producer id this cluster allocated and its current
//! epoch bumps the epoch (KIP-360), keeping the id; at the last epoch, or for an
//! unknown id, a new id with epoch 0 is given. The partitions then fence the old
//! epoch (INVALID_PRODUCER_EPOCH) and expect sequence 0 for the new one.
//! Transactional ids belong to the transaction coordinator (a later issue), which
//! will take its ids from the same blocks.

use std::ops::Range;

use super::{Broker, BrokerError};

/// Ids reserved per controller round trip.
const BLOCK_SIZE: i64 = 1000;

/// The unused rest of this broker's current block of producer ids.
#[derive(Default)]
pub struct ProducerIds {
    block: tokio::sync::Mutex<Range<i64>>,
}

impl Broker {
    /// A producer id and epoch for an idempotent producer. `current` is the
    /// (id, epoch) the producer holds, or (-1, -1) for a new producer.
    pub async fn init_producer_id(&self, current: (i64, i16)) -> Result<(i64, i16), BrokerError> {
        let (id, epoch) = current;
        let mut block = self.producer_ids.block.lock().await;
        // Handed out (or abandoned by a restart): allocated and not still in our block.
        let issued = (0..self.image().next_producer_id).contains(&id) && !block.contains(&id);
        if issued && (0..i16::MAX - 1).contains(&epoch) {
            return Ok((id, epoch + 1));
        }
        if block.is_empty() {
            *block = self.controller.allocate_producer_ids(BLOCK_SIZE).await?;
            tracing::info!(
                first = block.start,
                end = block.end,
                "reserved a block of producer ids"
            );
        }
        let id = block.start;
        block.start += 1;
        Ok((id, 0))
    }
}
