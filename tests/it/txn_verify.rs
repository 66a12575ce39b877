//! KIP-890 part 1 on the partition leader: a transactional Produce (transactional id set)
//! for a partition the coordinator never added to the producer's transaction gets
//! INVALID_TXN_STATE and nothing is appended, including a late write after the
//! transaction ended (which would otherwise open a transaction no marker closes);
//! `transaction.partition.verification.enable=false` turns the check off.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::ResponseError as E;

use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::transactions::{batch, latest};
use crate::txn::{add, call, end, init, sb};

/// One transactional Produce (acks=all) with `records` for partition 0 of each topic;
/// per topic (error code, base offset).
fn produce(b: &Broker, id: &str, parts: &[(&str, Bytes)]) -> Vec<(i16, i64)> {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(
            parts
                .iter()
                .map(|(t, r)| {
                    TopicProduceData::default()
                        .with_name(TopicName(sb(t)))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(r.clone()))])
                })
                .collect(),
        );
    let r: ProduceResponse = call(b, ApiKey::Produce, 9, &req);
    r.responses
        .iter()
        .map(|t| {
            let p = &t.partition_responses[0];
            (p.error_code, p.base_offset)
        })
        .collect()
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// Waits (bounded) until the last stable offset of partition 0 reaches the log end.
fn wait_stable(b: &Broker, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while latest(b, topic, true) != latest(b, topic, false) {
        assert!(Instant::now() < deadline, "{topic}-0 never became stable");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_batch_for_a_partition_not_in_the_transaction_is_refused() {
    let broker = Broker::start(&[]);
    let (added, stray) = ("kip890-added", "kip890-stray");
    create_topic(&broker.addr, added, 1, &[]).await;
    create_topic(&broker.addr, stray, 1, &[]).await;
    let id = "kip890-id";
    let r = init(&broker, id, 60_000);
    assert_eq!(r.error_code, 0);
    let p = (r.producer_id.0, r.producer_epoch);

    // Never added: refused, nothing written.
    let first = batch(p.0, p.1, 0, true, &values("early", 2));
    assert_eq!(
        produce(&broker, id, &[(added, first.clone())]),
        vec![(E::InvalidTxnState.code(), -1)]
    );
    assert_eq!(latest(&broker, added, false), 0);

    // Added: written; in the same Produce the partition never added is refused alone.
    assert_eq!(add(&broker, id, p, &[(added, 0)]), vec![0]);
    let got = produce(
        &broker,
        id,
        &[
            (added, first),
            (stray, batch(p.0, p.1, 0, true, &values("s", 1))),
        ],
    );
    assert_eq!(got, vec![(0, 0), (E::InvalidTxnState.code(), -1)]);
    assert_eq!(latest(&broker, stray, false), 0);
    // The next batches of the transaction need no question (ongoing here).
    let next = batch(p.0, p.1, 2, true, &values("more", 2));
    assert_eq!(produce(&broker, id, &[(added, next)]), vec![(0, 2)]);
    assert_eq!(latest(&broker, added, true), 0, "the transaction is open");

    // Committed: the marker closes it. A late write of that transaction (same epoch, the
    // coordinator no longer has it ongoing) cannot open a new, never-ending one.
    assert_eq!(end(&broker, id, p, true), 0);
    wait_stable(&broker, added);
    let end_offset = latest(&broker, added, false);
    assert_eq!(end_offset, 5, "4 records and the COMMIT marker");
    let late = batch(p.0, p.1, 4, true, &values("late", 1));
    assert_eq!(
        produce(&broker, id, &[(added, late)]),
        vec![(E::InvalidTxnState.code(), -1)]
    );
    assert_eq!(latest(&broker, added, false), end_offset);
    assert_eq!(
        latest(&broker, added, true),
        end_offset,
        "no hanging transaction"
    );

    // A stale epoch is the coordinator's business too: fenced after a new InitProducerId.
    let r2 = init(&broker, id, 60_000);
    assert_eq!(r2.error_code, 0);
    assert!(r2.producer_epoch > p.1);
    let stale = batch(p.0, p.1, 5, true, &values("stale", 1));
    assert_eq!(
        produce(&broker, id, &[(added, stale)]),
        vec![(E::InvalidProducerEpoch.code(), -1)]
    );
    assert_eq!(latest(&broker, added, false), end_offset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_off_appends_what_the_producer_sends() {
    let broker = Broker::start(&[("transaction.partition.verification.enable", "false")]);
    let topic = "kip890-off";
    create_topic(&broker.addr, topic, 1, &[]).await;
    let id = "kip890-off-id";
    let r = init(&broker, id, 60_000);
    assert_eq!(r.error_code, 0);
    let p = (r.producer_id.0, r.producer_epoch);
    let b = batch(p.0, p.1, 0, true, &values("unverified", 1));
    assert_eq!(produce(&broker, id, &[(topic, b)]), vec![(0, 0)]);
    assert_eq!(latest(&broker, topic, false), 1);
    assert_eq!(
        latest(&broker, topic, true),
        0,
        "an open transaction nobody added"
    );
}
