//! Fetch semantics over raw frames: the long poll is woken by an append (not by a
//! timer), an empty wait ends at max_wait, and byte limits return whole batches with
//! at least one batch for the first partition.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::harness::Broker;
use crate::kafka::{create_topic, produce_n, producer};

const V: i16 = 12;

fn fetch(
    b: &Broker,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    max_bytes: i32,
    partition_max: i32,
) -> FetchResponse {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max)])]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(V)
        .with_correlation_id(1)
        .encode(&mut buf, ApiKey::Fetch.request_header_version(V))
        .unwrap();
    req.encode(&mut buf, V).unwrap();
    let mut s = TcpStream::connect(&b.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&(buf.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(V)).unwrap();
    FetchResponse::decode(&mut body, V).unwrap()
}

fn records(r: &FetchResponse) -> Bytes {
    r.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_is_woken_by_an_append() {
    let broker = Broker::start(&[]);
    create_topic(&broker.addr, "poll", 1, &[]).await;
    let addr = broker.addr.clone();
    let producing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = producer(&addr, &[("linger.ms", "0")]);
        produce_n(&p, "poll", 0, 1).await
    });
    let started = Instant::now();
    let b = &broker;
    let resp = tokio::task::block_in_place(|| fetch(b, "poll", 0, 30_000, 1 << 20, 1 << 20));
    let waited = started.elapsed();
    assert_eq!(producing.await.unwrap(), vec![0]);
    assert!(
        !records(&resp).is_empty(),
        "the fetch should carry the appended record"
    );
    // Woken by the append, not by the 30 s timer (a bound 30x looser than expected).
    assert!(
        waited < Duration::from_secs(25),
        "fetch waited {waited:?}: it was not woken by the append"
    );
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_long_poll_returns_at_max_wait_and_limits_are_whole_batches() {
    let broker = Broker::start(&[]);
    create_topic(&broker.addr, "limits", 1, &[]).await;
    let b = &broker;
    let empty = tokio::task::block_in_place(|| fetch(b, "limits", 0, 200, 1 << 20, 1 << 20));
    assert!(records(&empty).is_empty());
    assert_eq!(empty.responses[0].partitions[0].error_code, 0);

    // One record per batch, so that limits cut between batches.
    let p = producer(
        &broker.addr,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    produce_n(&p, "limits", 0, 20).await;
    let all = records(&tokio::task::block_in_place(|| {
        fetch(b, "limits", 0, 0, 1 << 20, 1 << 20)
    }));
    let batches =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut all.clone()).unwrap();
    assert_eq!(batches.iter().map(|b| b.records.len()).sum::<usize>(), 20);

    // A limit smaller than one batch still returns exactly one whole batch (KIP-74).
    let one = records(&tokio::task::block_in_place(|| {
        fetch(b, "limits", 0, 0, 10, 10)
    }));
    let decoded =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut one.clone()).unwrap();
    assert_eq!(decoded.len(), 1, "one whole batch");
    assert!(one.len() < all.len());

    // Fetching from the middle of the log starts at the batch holding the offset.
    let mid = records(&tokio::task::block_in_place(|| {
        fetch(b, "limits", 7, 0, 1 << 20, 1 << 20)
    }));
    let decoded =
        kafka_protocol::records::RecordBatchDecoder::decode_all(&mut mid.clone()).unwrap();
    assert!(decoded[0].records[0].offset <= 7);
    assert_eq!(decoded.last().unwrap().records.last().unwrap().offset, 19);

    // Past the end: OFFSET_OUT_OF_RANGE.
    let past = tokio::task::block_in_place(|| fetch(b, "limits", 500, 0, 1 << 20, 1 << 20));
    assert_eq!(
        past.responses[0].partitions[0].error_code,
        kafka_protocol::ResponseError::OffsetOutOfRange.code()
    );
}
