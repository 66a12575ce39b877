//! DescribeProducers (key 61) over raw frames: the active producers of a partition from its
//! producer state (epoch, last sequence, last timestamp, coordinator epoch, the ongoing
//! transaction's first offset), Kafka's codes for unknown partitions, and
//! `producer.id.expiration.ms`: idle producer state is dropped, after which the producer's
//! retry is no longer recognised (Kafka accepts it as from a new producer, KIP-360).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError as E;

use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::txn::{add, call, end, init, sb};

const TOPIC: &str = "dp";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `n` records from `(pid, epoch)` from sequence `seq`, timestamped `ts`.
fn batch(pid: i64, epoch: i16, seq: i32, n: i32, transactional: bool, ts: i64) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: ts,
            key: None,
            value: Some(Bytes::from(format!("v{}", seq + i))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).unwrap();
    buf.freeze()
}

/// Produces with acks=all; returns (error code, base offset).
fn produce(b: &Broker, txn_id: Option<&str>, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_transactional_id(txn_id.map(|t| TransactionalId(sb(t))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let r: ProduceResponse = call(b, ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// DescribeProducers of `(topic, partitions)`: per partition, (error code, producers by id).
fn describe(b: &Broker, asked: &[(&str, &[i32])]) -> Vec<(i16, Vec<ProducerState>)> {
    let req = DescribeProducersRequest::default().with_topics(
        asked
            .iter()
            .map(|(t, ps)| {
                TopicRequest::default()
                    .with_name(TopicName(sb(t)))
                    .with_partition_indexes(ps.to_vec())
            })
            .collect(),
    );
    let r: DescribeProducersResponse = call(b, ApiKey::DescribeProducers, 0, &req);
    r.topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .map(|p| {
            let mut producers = p.active_producers;
            producers.sort_by_key(|s| s.producer_id.0);
            (p.error_code, producers)
        })
        .collect()
}

fn producers(b: &Broker) -> Vec<ProducerState> {
    let mut d = describe(b, &[(TOPIC, &[0])]);
    let (code, producers) = d.remove(0);
    assert_eq!(code, 0);
    producers
}

/// Polls `f` until it holds (at most 30 s).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_reports_producer_state_until_it_expires() {
    let broker = Broker::start(&[
        ("producer.id.expiration.ms", "3000"),
        ("producer.id.expiration.check.interval.ms", "200"),
    ]);
    create_topic(&broker.addr, TOPIC, 1, &[]).await;

    // An idempotent producer writes 3 records (sequences 0..=2).
    let r: InitProducerIdResponse = call(
        &broker,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    let idem = (r.producer_id.0, r.producer_epoch);
    let ts = now_ms();
    assert_eq!(
        produce(&broker, None, batch(idem.0, idem.1, 0, 3, false, ts)),
        (0, 0)
    );
    // A transactional producer opens a transaction with 2 records at offset 3.
    let r = init(&broker, "dp-txn", 60_000);
    let txn = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add(&broker, "dp-txn", txn, &[(TOPIC, 0)]), vec![0]);
    assert_eq!(
        produce(&broker, Some("dp-txn"), batch(txn.0, txn.1, 0, 2, true, ts)),
        (0, 3)
    );

    let ps = producers(&broker);
    assert_eq!(ps.len(), 2, "{ps:?}");
    let (i, t) = if ps[0].producer_id.0 == idem.0 {
        (&ps[0], &ps[1])
    } else {
        (&ps[1], &ps[0])
    };
    assert_eq!(
        (
            i.producer_id.0,
            i.producer_epoch,
            i.last_sequence,
            i.last_timestamp
        ),
        (idem.0, i32::from(idem.1), 2, ts)
    );
    assert_eq!((i.coordinator_epoch, i.current_txn_start_offset), (-1, -1));
    assert_eq!(
        (t.producer_id.0, t.producer_epoch, t.last_sequence),
        (txn.0, i32::from(txn.1), 1)
    );
    assert_eq!(t.current_txn_start_offset, 3);

    // Kafka's codes for what is not here.
    let d = describe(&broker, &[(TOPIC, &[7]), ("nope", &[0])]);
    assert_eq!(d[0].0, E::UnknownTopicOrPartition.code());
    assert_eq!(d[1].0, E::UnknownTopicOrPartition.code());

    // The commit marker ends the transaction: no start offset, the coordinator's epoch.
    assert_eq!(end(&broker, "dp-txn", txn, true), 0);
    wait_until("the commit marker", || {
        producers(&broker).iter().any(|p| {
            p.producer_id.0 == txn.0 && p.current_txn_start_offset == -1 && p.coordinator_epoch >= 0
        })
    });

    // Idle past producer.id.expiration.ms, both producers' state is dropped.
    wait_until("producer state to expire", || producers(&broker).is_empty());
    // A retry of the idempotent producer's first batch is no longer known: it is
    // appended again, as from a producer new to the partition (Kafka since KIP-360).
    let (code, offset) = produce(&broker, None, batch(idem.0, idem.1, 0, 3, false, now_ms()));
    assert_eq!(code, 0);
    assert!(offset > 4, "appended anew at {offset}");
    assert_eq!(producers(&broker).len(), 1);
}
