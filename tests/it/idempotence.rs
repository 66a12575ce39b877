//! The idempotent producer over raw frames: InitProducerId hands out ids that
//! are never reused and bumps epochs; a re-sent batch is answered with its
//! original offset, also after kill -9; gaps and stale epochs get Kafka's errors.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    ProducerId, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

use crate::bad_input::{connect, frame, read_frame};
use crate::harness::Broker;
use crate::kafka::create_topic;

const TOPIC: &str = "idem";

fn init_producer_id(b: &Broker, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let version = 4;
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::InitProducerId, version, &req))
        .unwrap();
    let mut resp = read_frame(&mut s).expect("InitProducerId answered");
    ResponseHeader::decode(
        &mut resp,
        ApiKey::InitProducerId.response_header_version(version),
    )
    .unwrap();
    InitProducerIdResponse::decode(&mut resp, version).unwrap()
}

/// A request without a transactional id (the generated default has "").
fn idempotent() -> InitProducerIdRequest {
    InitProducerIdRequest::default().with_transactional_id(None)
}

fn new_producer(b: &Broker) -> (i64, i16) {
    let r = init_producer_id(
        b,
        idempotent()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

/// A batch of `n` records from (`pid`, `epoch`) starting at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: seq + i,
            timestamp: 1,
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
fn produce(b: &Broker, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::Produce, 9, &req)).unwrap();
    let mut resp = read_frame(&mut s).expect("produce answered");
    ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(9)).unwrap();
    let resp = ProduceResponse::decode(&mut resp, 9).unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_allocates_durably_and_bumps_epochs() {
    let mut broker = Broker::start(&[]);
    let (a, epoch) = new_producer(&broker);
    let (b, _) = new_producer(&broker);
    assert!(a >= 0 && b > a && epoch == 0, "{a} {b} {epoch}");

    let bumped = init_producer_id(
        &broker,
        idempotent()
            .with_producer_id(ProducerId(a))
            .with_producer_epoch(0),
    );
    assert_eq!(
        (
            bumped.error_code,
            bumped.producer_id.0,
            bumped.producer_epoch
        ),
        (0, a, 1)
    );
    // An id this cluster never allocated is not bumped but replaced.
    let unknown = init_producer_id(
        &broker,
        idempotent()
            .with_producer_id(ProducerId(1 << 40))
            .with_producer_epoch(3),
    );
    assert!(unknown.producer_id.0 > b && unknown.producer_epoch == 0);

    let empty = init_producer_id(
        &broker,
        idempotent().with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("")))),
    );
    assert_eq!(empty.error_code, ResponseError::InvalidRequest.code());
    let txn = init_producer_id(
        &broker,
        idempotent()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("t1"))))
            .with_transaction_timeout_ms(60_000),
    );
    // A transactional id gets its producer id from the transaction coordinator.
    assert_eq!(txn.error_code, 0);
    assert!(txn.producer_id.0 >= 0 && txn.producer_epoch == 0);

    broker.restart();
    let (c, _) = new_producer(&broker);
    assert!(
        c > unknown.producer_id.0,
        "ids are never reused across restarts ({c})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_batches_get_their_original_offsets_even_after_kill9() {
    let mut broker = Broker::start(&[("log.segment.bytes", "2048")]);
    create_topic(&broker.addr, TOPIC, 1, &[]).await;
    let (pid, epoch) = new_producer(&broker);

    let mut offsets = Vec::new();
    for i in 0..30 {
        let (err, base) = produce(&broker, batch(pid, epoch, i * 3, 3));
        assert_eq!(err, 0);
        offsets.push(base);
    }
    assert_eq!(offsets[29], 87);
    assert_eq!(produce(&broker, batch(pid, epoch, 29 * 3, 3)), (0, 87));
    assert_eq!(produce(&broker, batch(pid, epoch, 25 * 3, 3)), (0, 75));

    let out_of_order = ResponseError::OutOfOrderSequenceNumber.code();
    assert_eq!(produce(&broker, batch(pid, epoch, 100, 1)).0, out_of_order);
    assert_eq!(
        produce(&broker, batch(pid, epoch, 3, 3)).0,
        out_of_order,
        "older than the last five"
    );

    let before = broker.pid();
    broker.restart_same_port(); // kill -9
    assert!(broker.is_running() && broker.pid() != before);
    assert_eq!(produce(&broker, batch(pid, epoch, 29 * 3, 3)), (0, 87));
    assert_eq!(produce(&broker, batch(pid, epoch, 90, 1)), (0, 90));

    // After a bump the old epoch is fenced and the new one starts at 0.
    let bumped = init_producer_id(
        &broker,
        idempotent()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
    );
    let new_epoch = bumped.producer_epoch;
    assert_eq!(
        produce(&broker, batch(pid, new_epoch, 5, 1)).0,
        out_of_order
    );
    assert_eq!(produce(&broker, batch(pid, new_epoch, 0, 1)), (0, 91));
    assert_eq!(
        produce(&broker, batch(pid, epoch, 91, 1)).0,
        ResponseError::InvalidProducerEpoch.code()
    );

    broker.stop();
    broker.start_again();
    assert_eq!(produce(&broker, batch(pid, new_epoch, 0, 1)), (0, 91));
}
