//! KIP-890 part 2 (transaction version 2), spoken with the kafka-protocol crate as a
//! Kafka 4.0 producer does: ApiVersions finalizes `transaction.version` at 2; Produce v12
//! adds the partition to the transaction without AddPartitionsToTxn; EndTxn v5 bumps the
//! epoch at every end and returns it; a late write of the earlier transaction (its epoch)
//! is fenced and never reaches the log nor a read_committed reader.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, EndTxnRequest, EndTxnResponse, ProduceRequest,
    ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::ResponseError as E;

use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::transactions::{batch, latest, read_all};
use crate::txn::{call, init, sb};

/// Produce v12 (transaction version 2) of `records` to partition 0: (error, base offset).
fn produce_v12(b: &Broker, id: &str, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r: ProduceResponse = call(b, ApiKey::Produce, 12, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// EndTxn v5: (error, producer id, epoch) of the answer.
fn end_v5(b: &Broker, id: &str, (pid, epoch): (i64, i16), commit: bool) -> (i16, i64, i16) {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r: EndTxnResponse = call(b, ApiKey::EndTxn, 5, &req);
    (r.error_code, r.producer_id.0, r.producer_epoch)
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
async fn api_versions_finalizes_transaction_version_2() {
    let broker = Broker::start(&[]);
    let r: ApiVersionsResponse = call(
        &broker,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(r.error_code, 0);
    let f = r
        .finalized_features
        .iter()
        .find(|f| &*f.name == "transaction.version")
        .expect("transaction.version finalized");
    assert_eq!(f.max_version_level, 2);
    let s = r
        .supported_features
        .iter()
        .find(|f| &*f.name == "transaction.version")
        .expect("transaction.version supported");
    assert_eq!((s.min_version, s.max_version), (0, 2));
    let max = |k: ApiKey| {
        r.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| a.max_version)
    };
    assert!(max(ApiKey::Produce) >= Some(12));
    assert!(max(ApiKey::EndTxn) >= Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_bumps_the_epoch_and_fences_a_late_write() {
    let broker = Broker::start(&[]);
    let topic = "tv2-topic";
    create_topic(&broker.addr, topic, 1, &[]).await;
    let id = "tv2-id";
    let r = init(&broker, id, 60_000);
    assert_eq!(r.error_code, 0);
    let (pid, e0) = (r.producer_id.0, r.producer_epoch);

    // First transaction: no AddPartitionsToTxn, Produce v12 adds the partition.
    let first = batch(pid, e0, 0, true, &values("first", 2));
    assert_eq!(produce_v12(&broker, id, topic, first), (0, 0));
    assert_eq!(latest(&broker, topic, true), 0, "the transaction is open");
    let (code, pid1, e1) = end_v5(&broker, id, (pid, e0), true);
    assert_eq!(code, 0);
    assert_eq!(pid1, pid);
    assert_eq!(e1, e0 + 1, "EndTxn v5 bumps the epoch");
    wait_stable(&broker, topic);
    let end_offset = latest(&broker, topic, false);
    assert_eq!(end_offset, 3, "2 records and the COMMIT marker");

    // A late write of the first transaction (old epoch, next sequence) is fenced: not
    // appended, no transaction left open.
    let late = batch(pid, e0, 2, true, &values("late", 1));
    let (code, _) = produce_v12(&broker, id, topic, late);
    assert!(
        code == E::InvalidProducerEpoch.code() || code == E::ProducerFenced.code(),
        "late write of epoch {e0} answered {code}"
    );
    assert_eq!(latest(&broker, topic, false), end_offset);
    assert_eq!(
        latest(&broker, topic, true),
        end_offset,
        "no hanging transaction"
    );

    // A retry of the first EndTxn (old epoch) gets the same answer, no second bump.
    assert_eq!(end_v5(&broker, id, (pid, e0), true), (0, pid, e1));

    // Second transaction at the new epoch, aborted: the epoch is bumped again.
    let second = batch(pid, e1, 0, true, &values("second", 2));
    assert_eq!(produce_v12(&broker, id, topic, second), (0, end_offset));
    let (code, _, e2) = end_v5(&broker, id, (pid, e1), false);
    assert_eq!(code, 0);
    assert_eq!(e2, e1 + 1);
    wait_stable(&broker, topic);

    // A late write of the aborted transaction is fenced as well.
    let late2 = batch(pid, e1, 2, true, &values("late2", 1));
    let (code, _) = produce_v12(&broker, id, topic, late2);
    assert!(
        code == E::InvalidProducerEpoch.code() || code == E::ProducerFenced.code(),
        "late write of epoch {e1} answered {code}"
    );
    let total = latest(&broker, topic, false);
    assert_eq!(total, end_offset + 3, "2 records and the ABORT marker");

    // read_committed sees the first transaction only; read_uncommitted both, never a
    // late record.
    let committed = read_all(&broker, topic, "read_committed", 2);
    assert_eq!(committed, values("first", 2));
    let all = read_all(&broker, topic, "read_uncommitted", 4);
    let mut want = values("first", 2);
    want.extend(values("second", 2));
    assert_eq!(all, want);
}
