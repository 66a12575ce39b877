//! The transaction coordinator, as Kafka's: transactional ids, their producer ids and
//! epochs, the partitions of each open transaction, and the two-phase end of a
//! transaction (Prepare* written to `__transaction_state`, COMMIT/ABORT markers written
//! to every partition, Complete* written).
//!
//! - `state.rs`: one transactional id's state machine; pure, the clock passed in.
//! - `codec.rs`: Kafka's key/value schemas of `__transaction_state`.
//! - `store.rs`: `__transaction_state` as storage: creating it, appending an id's
//!   record, waiting for the ISR, replaying a partition.
//! - `markers.rs`: writing COMMIT/ABORT markers to partition leaders, behind
//!   [`MarkerWriter`].
//! - `driver.rs`: [`TxnCoordinator`], the async layer: one mutex over every id's
//!   metadata, decisions written before they are applied and answered, markers sent
//!   and retried, timers for timeouts and expiry, ownership of partitions.
//!
//! Dependencies inside the module point one way: `driver.rs` -> `markers.rs`,
//! `store.rs` -> `codec.rs` -> `state.rs`. Outside, it uses `broker` (the topic, producer
//! ids), `replica` (the partitions) and `group` (transactional offsets on a marker for
//! `__consumer_offsets`); `server/` translates requests and maps [`TxnError`] to
//! Kafka error codes.

pub mod codec;
mod driver;
pub mod markers;
mod peer;
pub mod state;
#[cfg(test)]
mod state_tests;
mod store;
pub mod verify;

pub use driver::{TxnCoordinator, TxnListing};
pub use markers::{MarkerError, MarkerWriter, TxnMarker};
pub use state::{TxnMeta, TxnState};
pub use store::TXN_STATE_TOPIC;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TxnError {
    #[error("transactional id '{id}' has no producer id that matches the request; call InitProducerId first")]
    InvalidProducerIdMapping { id: String },
    #[error("transactional id '{id}': epoch {epoch} was fenced by a newer producer (current epoch {current})")]
    ProducerFenced {
        id: String,
        epoch: i16,
        current: i16,
    },
    #[error("transactional id '{id}' is {state}; cannot {action} the transaction")]
    InvalidTxnState {
        id: String,
        state: &'static str,
        action: &'static str,
    },
    #[error("transactional id '{id}' is completing a transaction; retry")]
    ConcurrentTransactions { id: String },
    #[error("transaction timeout {requested} ms is outside (0, transaction.max.timeout.ms {max}]")]
    InvalidTimeout { requested: i32, max: i32 },
    #[error(
        "the transaction coordinator is not available (starting or the topic has no leader); retry"
    )]
    CoordinatorNotAvailable,
    #[error(
        "this broker is not the coordinator of transactional id '{id}'; find the coordinator again"
    )]
    NotCoordinator { id: String },
    #[error("the coordinator of transactional id '{id}' is loading its state; retry")]
    LoadInProgress { id: String },
    #[error("could not write transactional id '{id}' to {TXN_STATE_TOPIC}-{partition}: {reason}")]
    Storage {
        id: String,
        partition: i32,
        reason: String,
    },
}
