//! Transactions, log and read side: transactional batches produced over the wire, COMMIT and
//! ABORT markers written with WriteTxnMarkers as a transaction coordinator on another node
//! would, and librdkafka consumers (the engine of confluent-kafka) reading them with
//! `isolation.level=read_committed` and `read_uncommitted`: locally, after kill -9, and from
//! the remote tier (moto under scripts/test.sh) once most segments are only remote.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse,
    ProducerId, ResponseHeader, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::bad_input::{connect, frame, read_frame};
use crate::harness::Broker;
use crate::kafka::{config, create_topic};

/// A batch of `values` from (`pid`, `epoch`) at sequence `seq`; transactional or not.
pub(crate) fn batch(
    pid: i64,
    epoch: i16,
    seq: i32,
    transactional: bool,
    values: &[String],
) -> Bytes {
    // Now, or retention.ms would delete the segments at once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if pid < 0 { -1 } else { seq + i as i32 },
            timestamp: now,
            key: None,
            value: Some(Bytes::from(v.clone())),
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

/// Sends `req` as `api` v`version` on a new connection and decodes the answer.
fn call<Req: Encodable, Resp: Decodable>(b: &Broker, api: ApiKey, version: i16, req: &Req) -> Resp {
    let mut s = connect(b);
    s.write_all(&frame(api, version, req)).unwrap();
    let mut resp = read_frame(&mut s).expect("answered");
    ResponseHeader::decode(&mut resp, api.response_header_version(version)).unwrap();
    Resp::decode(&mut resp, version).unwrap()
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Produces with acks=all to partition 0; the error code.
fn produce(b: &Broker, topic: &str, records: Bytes) -> i16 {
    produce_at(b, topic, records).0
}

/// Produces with acks=all to partition 0; (error code, base offset).
fn produce_at(b: &Broker, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp: ProduceResponse = call(b, ApiKey::Produce, 9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// WriteTxnMarkers v1 for partition 0 of `topic`, as a coordinator sends it; the error code.
fn write_marker(b: &Broker, topic: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_transaction_result(commit)
        .with_coordinator_epoch(0)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![0])])]);
    let resp: WriteTxnMarkersResponse = call(b, ApiKey::WriteTxnMarkers, 1, &req);
    assert_eq!(resp.markers[0].producer_id.0, pid);
    resp.markers[0].topics[0].partitions[0].error_code
}

/// ListOffsets -1 (latest) for partition 0, read_committed or not.
pub(crate) fn latest(b: &Broker, topic: &str, read_committed: bool) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])]);
    let resp: ListOffsetsResponse = call(b, ApiKey::ListOffsets, 7, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// Every value of partition 0 from offset 0, with librdkafka at `isolation`, until `want`
/// values arrived and nothing more came for a second (or 60 s passed).
pub(crate) fn read_all(b: &Broker, topic: &str, isolation: &str, want: usize) -> Vec<String> {
    let c: BaseConsumer = config(&b.addr)
        .set("group.id", "strata-it-txn")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None if out.len() >= want && quiet_since.elapsed() > Duration::from_secs(1) => break,
            None => {}
        }
    }
    out
}

const PID_COMMIT: i64 = 70_001;
const PID_ABORT: i64 = 70_002;

/// `rounds` transactions of each producer, interleaved with plain records: producer
/// `PID_COMMIT` commits, `PID_ABORT` aborts. Returns (committed-or-plain values, all values).
fn transactions(b: &Broker, topic: &str, rounds: usize) -> (Vec<String>, Vec<String>) {
    let (mut visible, mut all) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let seq = (r * 4) as i32;
        let c: Vec<String> = (0..4)
            .map(|i| format!("commit-{r}-{i}-{}", "c".repeat(120)))
            .collect();
        let a: Vec<String> = (0..4)
            .map(|i| format!("abort-{r}-{i}-{}", "a".repeat(120)))
            .collect();
        let p: Vec<String> = vec![format!("plain-{r}")];
        assert_eq!(
            produce(b, topic, batch(PID_COMMIT, 0, seq, true, &c[..2])),
            0
        );
        assert_eq!(
            produce(b, topic, batch(PID_ABORT, 0, seq, true, &a[..2])),
            0
        );
        assert_eq!(produce(b, topic, batch(-1, -1, -1, false, &p)), 0);
        assert_eq!(
            produce(b, topic, batch(PID_ABORT, 0, seq + 2, true, &a[2..])),
            0
        );
        assert_eq!(
            produce(b, topic, batch(PID_COMMIT, 0, seq + 2, true, &c[2..])),
            0
        );
        assert_eq!(write_marker(b, topic, PID_ABORT, 0, false), 0);
        assert_eq!(write_marker(b, topic, PID_COMMIT, 0, true), 0);
        all.extend(c[..2].iter().cloned());
        all.extend(a[..2].iter().cloned());
        all.extend(p.iter().cloned());
        all.extend(a[2..].iter().cloned());
        all.extend(c[2..].iter().cloned());
        visible.extend(c[..2].iter().cloned());
        visible.extend(p.iter().cloned());
        visible.extend(c[2..].iter().cloned());
    }
    (visible, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_exactly_the_committed_records_and_stops_at_the_lso() {
    let mut broker = Broker::start(&[]);
    let topic = "txn-local";
    create_topic(&broker.addr, topic, 1, &[("segment.bytes", "4096")]).await;

    let (visible, all) = transactions(&broker, topic, 12);
    // An open transaction holds read_committed readers (and ListOffsets) at its start.
    let open = vec!["open-0".to_string()];
    assert_eq!(
        produce(&broker, topic, batch(PID_COMMIT, 0, 48, true, &open)),
        0
    );
    let end = latest(&broker, topic, false);
    let lso = latest(&broker, topic, true);
    assert_eq!(lso, end - 1, "the open transaction's first offset");
    assert_eq!(
        read_all(&broker, topic, "read_committed", visible.len()),
        visible
    );
    let mut everything = all.clone();
    everything.extend(open.iter().cloned());
    assert_eq!(
        read_all(&broker, topic, "read_uncommitted", everything.len()),
        everything
    );

    // Kafka's refusals: a plain batch inside the transaction, a marker of a stale epoch.
    let plain = vec!["not-in-txn".to_string()];
    assert_eq!(
        produce(&broker, topic, batch(PID_COMMIT, 0, 49, false, &plain)),
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(
        write_marker(&broker, topic, PID_ABORT, 5, false),
        0,
        "a newer epoch ends an empty transaction"
    );
    assert_eq!(
        write_marker(&broker, topic, PID_ABORT, 4, false),
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        write_marker(&broker, "no-such-topic", PID_ABORT, 5, false),
        ResponseError::UnknownTopicOrPartition.code()
    );

    // kill -9: the open transaction, the LSO and the aborted index come back.
    broker.restart_same_port();
    assert_eq!(latest(&broker, topic, true), lso);
    assert_eq!(write_marker(&broker, topic, PID_COMMIT, 0, true), 0);
    let mut visible_after = visible.clone();
    visible_after.extend(open.iter().cloned());
    let got = read_all(&broker, topic, "read_committed", visible_after.len());
    assert_eq!(got, visible_after);
    assert_eq!(latest(&broker, topic, true), latest(&broker, topic, false));
    let aborted: BTreeSet<&String> = all.iter().filter(|v| v.starts_with("abort")).collect();
    assert!(got.iter().all(|v| !aborted.contains(v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_from_zero_of_a_tiered_topic_drops_aborted_records_only_remote() {
    let r = crate::tier::remote("txn-tiered");
    let broker = crate::tier::start(&r, &[], &[]);
    let topic = "txn-tiered";
    let configs = [
        ("remote.storage.enable", "true"),
        ("segment.bytes", "4096"),
        ("local.retention.bytes", "8192"),
    ];
    create_topic(&broker.addr, topic, 1, &configs).await;
    let (visible, all) = transactions(&broker, topic, 40);
    let end = latest(&broker, topic, false);
    let m = crate::tier::wait_tiered(&r.store, topic, end - 200, &broker).await;
    crate::tier::assert_contiguous(&m);
    assert!(
        m.segments.iter().filter(|s| s.txnindex_bytes > 0).count() > 3,
        "aborted transactions in the remote segments' .txnindex: {:?}",
        m.segments
    );
    crate::tier::wait_local_trimmed(&broker, topic, 4).await;
    assert_eq!(
        read_all(&broker, topic, "read_committed", visible.len()),
        visible
    );
    assert_eq!(read_all(&broker, topic, "read_uncommitted", all.len()), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_state_travels_with_tiered_segments_to_a_topic_recovered_from_the_bucket() {
    let r = crate::tier::remote("txn-recover");
    let mut broker = crate::tier::start(&r, &[], &[]);
    let topic = "txn-recover";
    let configs = [
        ("remote.storage.enable", "true"),
        ("segment.bytes", "4096"),
        ("local.retention.bytes", "8192"),
        // Rolls the last segment too, so every offset gets tiered.
        ("segment.ms", "1500"),
    ];
    create_topic(&broker.addr, topic, 1, &configs).await;
    let (mut visible, _) = transactions(&broker, topic, 6);
    const PID: i64 = 80_001;
    let mut last = (Bytes::new(), -1);
    for i in 0..20 {
        let values: Vec<String> = (0..2).map(|j| format!("idem-{i}-{j}")).collect();
        let b = batch(PID, 0, i * 2, false, &values);
        let (code, base) = produce_at(&broker, topic, b.clone());
        assert_eq!(code, 0);
        visible.extend(values);
        last = (b, base);
    }
    let end = latest(&broker, topic, false);
    let m = crate::tier::wait_tiered(&r.store, topic, end, &broker).await;
    let tail = m.segments.last().expect("remote segments");
    assert_eq!(tail.next_offset, end);
    assert!(tail.producer_snapshot_bytes > 0, "{tail:?}");

    broker.stop();
    std::fs::remove_dir_all(&broker.data).expect("delete the data dir");
    crate::recover::strata_with_remote(&broker, &r, &["recover"]);
    broker.start_again();
    // The producer's retry of its last batch is known: answered with the original offset.
    assert_eq!(produce_at(&broker, topic, last.0.clone()), (0, last.1));
    assert_eq!(latest(&broker, topic, false), end, "nothing appended");
    assert_eq!(
        read_all(&broker, topic, "read_committed", visible.len()),
        visible
    );
}
