//! Fetch over plaintext sends records with sendfile (issue 14): the bytes a client
//! gets are the bytes stored, across segment rolls, when the socket takes a large
//! response in pieces, and while DeleteRecords deletes the segments being read.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::admin::AdminOptions;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::harness::Broker;
use crate::kafka::{admin, create_topic, producer};

const V: i16 = 12;

struct Answer {
    error_code: i16,
    log_start: i64,
    records: Bytes,
}

/// One Fetch on `s`; waits `delay` before reading the answer, so a large answer fills
/// the socket buffers and the broker sends it in pieces.
fn fetch(s: &mut TcpStream, topic: &str, offset: i64, max_bytes: i32, delay: Duration) -> Answer {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])]);
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(V)
        .with_correlation_id(7)
        .encode(&mut buf, ApiKey::Fetch.request_header_version(V))
        .unwrap();
    req.encode(&mut buf, V).unwrap();
    s.write_all(&(buf.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&buf).unwrap();
    std::thread::sleep(delay);
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(V));
    assert_eq!(header.unwrap().correlation_id, 7);
    let r = FetchResponse::decode(&mut body, V).unwrap();
    assert!(body.is_empty(), "the frame size matches the body");
    let p = &r.responses[0].partitions[0];
    Answer {
        error_code: p.error_code,
        log_start: p.log_start_offset,
        records: p.records.clone().unwrap_or_default(),
    }
}

/// The partition's segment files, concatenated in offset order, and each batch's
/// position in that stream by base offset.
fn stored(dir: &Path) -> (Vec<u8>, BTreeMap<i64, usize>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    names.sort();
    let all: Vec<u8> = names
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let mut at = BTreeMap::new();
    let mut pos = 0;
    while pos + 12 <= all.len() {
        let base = i64::from_be_bytes(all[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(all[pos + 8..pos + 12].try_into().unwrap()) as usize;
        at.insert(base, pos);
        pos += 12 + len;
    }
    assert_eq!(pos, all.len(), "whole batches on disk");
    (all, at)
}

/// Checks that `records` are the stored bytes from the batch holding `offset` on, and
/// returns the offset after them.
fn check(all: &[u8], at: &BTreeMap<i64, usize>, offset: i64, records: &[u8]) -> i64 {
    let (_, &pos) = at
        .range(..=offset)
        .next_back()
        .expect("a batch at the offset");
    assert_eq!(
        &all[pos..pos + records.len()],
        records,
        "fetch at {offset}: bytes differ from the stored ones"
    );
    let (&next, _) = at
        .range(offset + 1..)
        .find(|(_, &p)| p >= pos + records.len())
        .unwrap_or((&i64::MAX, &0));
    next
}

async fn produce(addr: &str, topic: &str, n: usize, size: usize) {
    let p = producer(addr, &[("linger.ms", "2"), ("batch.num.messages", "7")]);
    let mut sent = Vec::new();
    for i in 0..n {
        let value = vec![(i % 251) as u8; size + i % 13];
        let rec = FutureRecord::<(), _>::to(topic)
            .partition(0)
            .payload(&value);
        sent.push(p.send_result(rec).expect("enqueue"));
    }
    for f in sent {
        f.await.unwrap().expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_fetch_returns_stored_bytes_across_rolls_pieces_and_deletes() {
    let broker = Broker::start(&[]);
    create_topic(&broker.addr, "zc", 1, &[("segment.bytes", "65536")]).await;
    produce(&broker.addr, "zc", 3000, 700).await;
    create_topic(&broker.addr, "big", 1, &[]).await;
    produce(&broker.addr, "big", 12_000, 1000).await;
    let (all, at) = stored(&broker.data.join("zc-0"));
    assert!(all.len() > 20 * 65536 / 2, "many segments");
    let end = *at.keys().last().unwrap() + 1;

    // Every fetch from offset 0 to the end: each crosses into the next segment.
    let mut s = TcpStream::connect(&broker.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut offset = 0;
    let mut fetches = 0;
    while offset < end {
        let a = tokio::task::block_in_place(|| fetch(&mut s, "zc", offset, 50_000, Duration::ZERO));
        assert_eq!(a.error_code, 0);
        assert!(!a.records.is_empty(), "records at {offset}");
        offset = check(&all, &at, offset, &a.records);
        fetches += 1;
    }
    assert!(fetches > 20);

    // A 12 MB answer read late: the socket takes it in pieces.
    let (big, big_at) = stored(&broker.data.join("big-0"));
    let a = tokio::task::block_in_place(|| {
        fetch(&mut s, "big", 0, 64 << 20, Duration::from_millis(300))
    });
    assert_eq!(
        a.records.len(),
        big.len(),
        "the whole partition in one answer"
    );
    check(&big, &big_at, 0, &a.records);

    // DeleteRecords removes segments while a reader walks the log on another thread;
    // every answer is either the stored bytes or OFFSET_OUT_OF_RANGE (then the reader
    // goes on from the new log start).
    let addr = broker.addr.clone();
    let (all2, at2) = (all.clone(), at.clone());
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let started = Instant::now();
        let (mut offset, mut served, mut moved) = (0i64, 0, 0);
        while started.elapsed() < Duration::from_secs(20) && served < 2000 {
            let a = fetch(&mut s, "zc", offset, 30_000, Duration::ZERO);
            match a.error_code {
                0 if a.records.is_empty() => offset = 0,
                0 => {
                    offset = check(&all2, &at2, offset, &a.records);
                    served += 1;
                }
                1 => {
                    offset = a.log_start.max(0);
                    moved += 1;
                }
                e => panic!("fetch at {offset}: error {e}"),
            }
            if offset >= end {
                offset = 0;
            }
        }
        (served, moved)
    });
    let admin = admin(&broker.addr);
    let mut deleted = 0;
    for step in 1..=10 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("zc", 0, Offset::Offset(end * step / 12))
            .unwrap();
        admin
            .delete_records(&tpl, &AdminOptions::new())
            .await
            .expect("delete records");
        deleted += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (served, moved) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(deleted, 10);
    assert!(served > 10, "served {served} fetches, moved {moved} times");
}
