//! Micro-benchmarks of the protocol layer on the produce and fetch paths, named
//! for what they measure:
//!
//! - `produce_request_decode_1mib`: `protocol::decode_request` of a Produce v9
//!   frame carrying 1 MiB of record batches (64 batches of 16 x 1 KiB records,
//!   built with kafka-protocol's `RecordBatchEncoder`) for one partition.
//! - `fetch_response_encode_1mib`: `protocol::encode_response` of a Fetch v12
//!   response carrying 1 MiB of record batches for one partition, into a
//!   reused buffer, as the connection loop does.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchResponse, ProduceRequest, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strata::protocol;

const RECORDS_PER_BATCH: usize = 16;
const VALUE: usize = 1024;
const TARGET: usize = 1 << 20;

/// Whole batches of 16 x 1 KiB records, just over `TARGET` bytes in all.
fn batches() -> Bytes {
    let value = Bytes::from(vec![b'x'; VALUE]);
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut buf = BytesMut::new();
    while buf.len() < TARGET {
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode batch");
    }
    buf.freeze()
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench"))
}

fn produce_frame(records: Bytes) -> Bytes {
    let version = 9;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let body = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::Produce.request_header_version(version))
        .expect("encode header");
    body.encode(&mut buf, version).expect("encode produce");
    buf.freeze()
}

fn produce_request_decode_1mib(c: &mut Criterion) {
    let records = batches();
    let frame = produce_frame(records.clone());
    let mut group = c.benchmark_group("produce_request_decode_1mib");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("v9_one_partition", |b| {
        b.iter(|| protocol::decode_request(black_box(frame.clone())).expect("decode"));
    });
    group.finish();
}

fn fetch_response_encode_1mib(c: &mut Criterion) {
    let records = batches();
    let len = records.len();
    let body = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(topic())
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(1 << 20)
                .with_records(Some(records))]),
    ]));
    let mut out = BytesMut::with_capacity(2 * len);
    let mut group = c.benchmark_group("fetch_response_encode_1mib");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("v12_one_partition", |b| {
        b.iter(|| {
            out.clear();
            protocol::encode_response(&mut out, ApiKey::Fetch, 12, 1, black_box(&body))
                .expect("encode");
            out.len()
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    produce_request_decode_1mib,
    fetch_response_encode_1mib
);
criterion_main!(benches);
