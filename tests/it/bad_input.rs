//! Bad input over a raw socket: garbage frames, oversized frames, unknown APIs and
//! versions, corrupt and oversized batches. The broker answers with Kafka's error or
//! closes that one connection, and keeps serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

use crate::harness::Broker;
use crate::kafka::create_topic;

pub(crate) fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(&b.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

pub(crate) fn frame<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("raw")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Reads one response frame; `None` if the broker closed the connection.
pub(crate) fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn still_serving(b: &Broker) {
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::Metadata, 12, &MetadataRequest::default()))
        .unwrap();
    assert!(
        read_frame(&mut s).is_some(),
        "broker must keep serving other connections"
    );
}

fn batch(value_len: usize) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(Bytes::from(vec![b'v'; value_len])),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &opts).unwrap();
    buf.freeze()
}

fn produce(b: &Broker, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("raw")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut s = connect(b);
    s.write_all(&frame(ApiKey::Produce, 9, &req)).unwrap();
    let mut resp = read_frame(&mut s).expect("produce answered");
    let header =
        ResponseHeader::decode(&mut resp, ApiKey::Produce.response_header_version(9)).unwrap();
    assert_eq!(header.correlation_id, 42);
    let resp = ProduceResponse::decode(&mut resp, 9).unwrap();
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let broker = Broker::start(&[("socket.request.max.bytes", "1048576")]);
    for bad in [
        vec![0u8, 0, 0, 3, 1, 2, 3],        // too short for a header
        vec![0x7f, 0xff, 0xff, 0xff],       // 2 GiB frame
        vec![0xff, 0xff, 0xff, 0xf0, 0, 0], // negative size
        vec![0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0], // unknown api key
        // Found by the fuzzer: DeleteRecords claiming ~2^31 topics in 14 bytes. The
        // decoder reserves ~24 GB up front; the broker must survive it.
        vec![
            0, 0, 0, 14, 0x00, 0x15, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x15,
            0x15, 0xff,
        ],
        // CreateTopics v2 claiming 2^31-1 topics: ~257 GB reserved by the decoder,
        // more than the kernel grants, which would abort the process.
        vec![
            0, 0, 0, 14, 0, 19, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ],
    ] {
        let mut s = connect(&broker);
        let _ = s.write_all(&bad);
        let _ = s.flush();
        let mut buf = [0u8; 1];
        // Either closed (0 bytes) or a reset: both end the connection; never a hang.
        let r = s.read(&mut buf);
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "connection should close, got {r:?}"
        );
        still_serving(&broker);
    }
    // A truncated body of a known API closes too.
    let mut f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    f.truncate(f.len() - 2);
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    let mut s = connect(&broker);
    s.write_all(&f).unwrap();
    let _ = read_frame(&mut s);
    still_serving(&broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_api_versions_version_gets_error_35_and_the_table() {
    let broker = Broker::start(&[]);
    let mut s = connect(&broker);
    let mut f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).unwrap();
    let mut resp = read_frame(&mut s).expect("answered");
    let header = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
    assert!(body
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16));
    // An unsupported version of another API closes the connection.
    let mut s = connect(&broker);
    let mut f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(read_frame(&mut s).is_none());
    still_serving(&broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_oversized_and_unknown_produce_get_kafka_error_codes() {
    let broker = Broker::start(&[("message.max.bytes", "10000")]);
    assert_eq!(
        produce(&broker, batch(10)),
        ResponseError::UnknownTopicOrPartition.code()
    );
    create_topic(&broker.addr, "raw", 1, &[]).await;
    assert_eq!(produce(&broker, batch(10)), 0);

    let mut corrupt = batch(10).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    assert_eq!(
        produce(&broker, Bytes::from(corrupt)),
        ResponseError::CorruptMessage.code()
    );

    assert_eq!(
        produce(&broker, batch(20_000)),
        ResponseError::MessageTooLarge.code()
    );

    let mut bad_magic = batch(10).to_vec();
    bad_magic[16] = 1;
    let code = produce(&broker, Bytes::from(bad_magic));
    assert!(
        code == ResponseError::InvalidRecord.code() || code == ResponseError::CorruptMessage.code(),
        "code {code}"
    );

    let truncated = batch(10).slice(..40);
    assert_eq!(
        produce(&broker, truncated),
        ResponseError::CorruptMessage.code()
    );
    still_serving(&broker);
}
