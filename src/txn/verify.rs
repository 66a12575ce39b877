//! A partition leader's question to the transaction coordinator (KIP-890 part 1): were
//! these partitions added to the producer's ongoing transaction at this epoch?
//! AddPartitionsToTxn v4+ with `verify_only`, answered by the local coordinator when this
//! node coordinates the transactional id, else sent to the coordinator's node over one
//! reused connection per node (like the WriteTxnMarkers path in `markers`), over the
//! inter-broker listener's security as the replica fetcher connects.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::peer::Peers;
use super::TxnCoordinator;
use crate::metadata::MetadataCache;
use crate::server::txn_code;

const CLIENT_ID: &str = "strata-txn-verifier";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One partition's answer: the Kafka error code of the coordinator (0: it is in the
/// transaction), or a retriable one when the coordinator could not be asked.
pub type Verdict = ((String, i32), i16);

pub struct TxnVerifier {
    node_id: i32,
    coordinator: Arc<TxnCoordinator>,
    peers: Peers,
}

impl TxnVerifier {
    pub fn new(
        node_id: i32,
        metadata: Arc<MetadataCache>,
        coordinator: Arc<TxnCoordinator>,
    ) -> TxnVerifier {
        TxnVerifier {
            node_id,
            peers: Peers::new(metadata, CLIENT_ID, TIMEOUT),
            coordinator,
        }
    }

    /// Asks whether `parts` are in the transaction of `id` for `producer`; with `add`
    /// (KIP-890 part 2) adds them to it, starting the transaction if none is open.
    pub async fn verify_parts(
        &self,
        id: &str,
        producer: (i64, i16),
        parts: Vec<(String, i32)>,
        add: bool,
    ) -> Vec<Verdict> {
        let Some(node) = self.coordinator.coordinator_of(id) else {
            let c = ResponseError::CoordinatorNotAvailable.code();
            return parts.into_iter().map(|tp| (tp, c)).collect();
        };
        tracing::debug!(
            id,
            producer_id = producer.0,
            epoch = producer.1,
            coordinator = node,
            local = node == self.node_id,
            partitions = parts.len(),
            "verifying partitions with the transaction coordinator"
        );
        if node == self.node_id && add {
            return add_locally(&self.coordinator, id, producer, parts).await;
        }
        if node == self.node_id {
            return self
                .coordinator
                .verify_partitions(id, producer, parts)
                .await
                .into_iter()
                .map(|(tp, r)| (tp, r.map_or_else(|e| txn_code(&e, true).code(), |_| 0)))
                .collect();
        }
        match self.ask_remote(node, id, producer, &parts, add).await {
            Ok(answers) => parts
                .into_iter()
                .map(|tp| {
                    // A partition the answer left out is not known to be in it.
                    let c = answers
                        .get(&tp)
                        .copied()
                        .unwrap_or(ResponseError::InvalidTxnState.code());
                    (tp, c)
                })
                .collect(),
            Err(reason) => {
                tracing::debug!(node, id, %reason, "could not ask the transaction coordinator to verify partitions");
                let c = ResponseError::CoordinatorNotAvailable.code();
                parts.into_iter().map(|tp| (tp, c)).collect()
            }
        }
    }

    async fn ask_remote(
        &self,
        node: i32,
        id: &str,
        producer: (i64, i16),
        parts: &[(String, i32)],
        add: bool,
    ) -> Result<HashMap<(String, i32), i16>, String> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in parts {
            match topics.iter_mut().find(|x| *x.name.0 == **t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_verify_only(!add)
            .with_topics(topics);
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
        let resp = self.peers.send(node, req, 4).await?;
        let mut out = HashMap::new();
        if resp.error_code != 0 {
            for tp in parts {
                out.insert(tp.clone(), resp.error_code);
            }
            return Ok(out);
        }
        for r in resp.results_by_transaction {
            for t in r.topic_results {
                for p in t.results_by_partition {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.partition_error_code,
                    );
                }
            }
        }
        Ok(out)
    }
}

impl crate::replica::verify::CoordinatorCheck for TxnVerifier {
    fn verify<'a>(
        &'a self,
        id: &'a str,
        producer: (i64, i16),
        partitions: Vec<(String, i32)>,
        add: bool,
    ) -> futures::future::BoxFuture<'a, Vec<Verdict>> {
        Box::pin(self.verify_parts(id, producer, partitions, add))
    }
}

/// KIP-890 part 2 on the coordinator's own node: the partitions are added as an
/// AddPartitionsToTxn from the client would add them (unknown partitions refused).
async fn add_locally(
    coordinator: &Arc<TxnCoordinator>,
    id: &str,
    producer: (i64, i16),
    parts: Vec<(String, i32)>,
) -> Vec<Verdict> {
    match coordinator
        .add_partitions(id, producer, parts.clone(), false)
        .await
    {
        Ok(known) => known
            .into_iter()
            .map(|(tp, ok)| {
                let c = if ok {
                    0
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                (tp, c)
            })
            .collect(),
        Err(e) => {
            let c = txn_code(&e, true).code();
            parts.into_iter().map(|tp| (tp, c)).collect()
        }
    }
}
