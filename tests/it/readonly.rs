//! Read-only nodes (issue 14, item 3): a `process.roles=reader` node started on the bucket of
//! a running broker, with an empty data dir, serves a real consumer from offset 0 out of the
//! bucket alone, keeps no partition log, refuses produce, and serves segments uploaded later
//! within one manifest poll.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::tier::{produce_values, remote, start, value, wait_tiered, Remote, TOPIC_CONFIGS};

const TOPIC: &str = "history";
const POLL_MS: u64 = 1000;

/// A reader on `r`'s bucket, with its own empty data dir.
fn start_reader(r: &Remote) -> Broker {
    let mut all: Vec<(&str, &str)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let poll = POLL_MS.to_string();
    all.extend_from_slice(&[
        ("process.roles", "reader"),
        ("node.id", "100"),
        ("remote.log.manifest.poll.interval.ms", poll.as_str()),
        ("remote.fetch.chunk.bytes", "65536"),
    ]);
    Broker::start(&all)
}

/// An assign()-only consumer. librdkafka wants a group id even so; it looks for the
/// coordinator (which a reader does not host) but never needs it, as nothing is committed.
fn reader_consumer(addr: &str, from: i64) -> BaseConsumer {
    let c: BaseConsumer = crate::kafka::config(addr)
        .set("group.id", "history-readers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(from))
        .expect("offset");
    c.assign(&tpl).expect("assign");
    c
}

/// Polls `c` until it has read up to `until` (exclusive), checking every value in order from
/// `next`; returns when done, or panics at `deadline`.
fn read_until(c: &BaseConsumer, mut next: i64, until: i64, deadline: Instant, reader: &Broker) {
    while next < until {
        assert!(
            Instant::now() < deadline,
            "read only up to {next} of {until} in time; reader log:\n{}",
            reader.log()
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(m.offset(), next, "offsets in order without a gap");
                let want = value(next as usize);
                assert_eq!(m.payload(), Some(want.as_bytes()), "value of offset {next}");
                next += 1;
            }
            Some(Err(e)) => panic!("consume from the reader: {e}; log:\n{}", reader.log()),
            None => {}
        }
    }
}

/// Entries of the reader's data dir other than its chunk cache.
fn data_dir_entries(reader: &Broker) -> Vec<String> {
    std::fs::read_dir(&reader.data)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n != "remote-cache")
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_serves_the_bucket_from_offset_zero_and_follows_new_uploads() {
    let r = remote("readonly");
    let broker = start(&r, &[], &[]);
    create_topic(&broker.addr, TOPIC, 1, TOPIC_CONFIGS).await;
    let n = 3000;
    produce_values(&broker.addr, TOPIC, 0, n).await;
    let end = wait_tiered(&r.store, TOPIC, 2000, &broker)
        .await
        .end_offset()
        .expect("tiered");

    let reader = start_reader(&r);
    // Every tiered record, in order, from offset 0.
    let c = reader_consumer(&reader.addr, 0);
    read_until(
        &c,
        0,
        end,
        Instant::now() + Duration::from_secs(90),
        &reader,
    );
    assert!(
        data_dir_entries(&reader).is_empty(),
        "the reader's data dir holds {:?}; it must hold no partition log",
        data_dir_entries(&reader)
    );
    assert!(
        std::fs::read_dir(&reader.data).is_ok(),
        "the data dir exists (for the chunk cache)"
    );

    // More records: once their segments are uploaded, the reader serves them within one
    // manifest poll (the consumer is already waiting at the old end).
    produce_values(&broker.addr, TOPIC, n, 2000).await;
    let later = wait_tiered(&r.store, TOPIC, end + 1000, &broker)
        .await
        .end_offset()
        .expect("tiered");
    let uploaded = Instant::now();
    read_until(
        &c,
        end,
        later,
        uploaded + Duration::from_millis(POLL_MS) + Duration::from_secs(4),
        &reader,
    );
    let took = uploaded.elapsed();
    eprintln!(
        "new uploads served {} ms after they were published (poll {POLL_MS} ms)",
        took.as_millis()
    );

    // What the reader answers besides records.
    // Uploads go on meanwhile: latest is the remote end as of one poll, between the end
    // read above and the end now.
    let (code, offset, _) = crate::tier::list_offsets_raw(&reader, TOPIC, -1);
    let now_end = crate::tier::manifest_of(&r.store, TOPIC)
        .await
        .and_then(|m| m.end_offset())
        .expect("manifest");
    assert_eq!(code, 0);
    assert!(
        (later..=now_end).contains(&offset),
        "latest {offset} is a remote end in [{later}, {now_end}]"
    );
    let (code, offset, _) = crate::tier::list_offsets_raw(&reader, TOPIC, -2);
    assert_eq!((code, offset), (0, 0), "earliest is the remote start");
    assert_eq!(produce_raw(&reader), 6, "produce is NOT_LEADER_OR_FOLLOWER");
    assert_eq!(
        fetch_raw(&reader, now_end + 1_000_000),
        1,
        "above the end is OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(
        metadata_leader(&reader.addr),
        100,
        "the reader leads what it serves"
    );
    assert!(data_dir_entries(&reader).is_empty());
}

/// The leader Metadata names for partition 0.
fn metadata_leader(addr: &str) -> i32 {
    let c = reader_consumer(addr, 0);
    let md = c
        .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1, "the reader names only itself");
    md.topics()[0].partitions()[0].leader()
}

/// Produce v9 of one record batch to partition 0: its error code.
fn produce_raw(b: &Broker) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ApiKey, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use std::io::Write;
    let version = 9;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from_static(&[0u8; 70])))])]);
    let mut s = crate::bad_input::connect(b);
    s.write_all(&crate::bad_input::frame(ApiKey::Produce, version, &req))
        .expect("send Produce");
    let mut body = crate::bad_input::read_frame(&mut s).expect("Produce response");
    ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(version))
        .expect("header");
    let resp = ProduceResponse::decode(&mut body, version).expect("response");
    resp.responses[0].partition_responses[0].error_code
}

/// Fetch v12 of partition 0 at `offset`: its error code.
fn fetch_raw(b: &Broker, offset: i64) -> i16 {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use std::io::Write;
    let version = 12;
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut s = crate::bad_input::connect(b);
    s.write_all(&crate::bad_input::frame(ApiKey::Fetch, version, &req))
        .expect("send Fetch");
    let mut body = crate::bad_input::read_frame(&mut s).expect("Fetch response");
    ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(version))
        .expect("header");
    let resp = FetchResponse::decode(&mut body, version).expect("response");
    resp.responses[0].partitions[0].error_code
}
