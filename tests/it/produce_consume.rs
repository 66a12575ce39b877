//! Produce and consume with librdkafka: every acks level and compression codec, keys
//! and headers, and consuming from earliest, latest, an offset and a timestamp.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

use crate::harness::Broker;
use crate::kafka::{consume, create_topic, producer};

const N: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_and_acks_level_round_trips_keys_values_and_headers() {
    let broker = Broker::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        for acks in ["0", "1", "all"] {
            let topic = format!("codec-{codec}-acks-{acks}");
            create_topic(&broker.addr, &topic, 1, &[]).await;
            let p = producer(
                &broker.addr,
                &[
                    ("compression.codec", codec),
                    ("acks", acks),
                    ("linger.ms", "20"),
                ],
            );
            let mut acked = Vec::new();
            for i in 0..N {
                let key = format!("k{i}");
                let value = format!("{codec}-{acks}-{i}-").repeat(1 + i % 7);
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "h1",
                        value: Some(format!("x{i}").as_bytes()),
                    })
                    .insert(Header {
                        key: "nullh",
                        value: None::<&[u8]>,
                    });
                let rec = FutureRecord::to(&topic)
                    .partition(0)
                    .key(&key)
                    .payload(&value)
                    .headers(headers);
                acked.push(p.send_result(rec).expect("enqueue"));
            }
            for f in acked {
                f.await
                    .expect("delivery")
                    .unwrap_or_else(|e| panic!("{topic}: {e:?}"));
            }
            let got = consume(
                &broker.addr,
                &topic,
                0,
                Offset::Beginning,
                N,
                Duration::from_secs(30),
            );
            assert_eq!(got.len(), N, "{topic}: consumed {} of {N}", got.len());
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g.offset, i as i64, "{topic}");
                assert_eq!(
                    g.key.as_deref(),
                    Some(format!("k{i}").as_bytes()),
                    "{topic}"
                );
                let value = format!("{codec}-{acks}-{i}-").repeat(1 + i % 7);
                assert_eq!(g.value.as_deref(), Some(value.as_bytes()), "{topic}");
                assert_eq!(
                    g.headers[0],
                    ("h1".to_string(), Some(format!("x{i}").into_bytes())),
                    "{topic}"
                );
                assert_eq!(g.headers[1], ("nullh".to_string(), None), "{topic}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_from_offset_latest_and_timestamp() {
    let broker = Broker::start(&[]);
    let topic = "positions";
    create_topic(&broker.addr, topic, 2, &[]).await;
    let p = producer(&broker.addr, &[("linger.ms", "0")]);
    let base_ts = 1_700_000_000_000i64;
    for i in 0..100i64 {
        let v = format!("v{i}");
        let rec = FutureRecord::<(), _>::to(topic)
            .partition(1)
            .payload(&v)
            .timestamp(base_ts + i * 1000);
        p.send(rec, Duration::from_secs(10)).await.expect("send");
    }
    let from_offset = consume(
        &broker.addr,
        topic,
        1,
        Offset::Offset(42),
        5,
        Duration::from_secs(20),
    );
    assert_eq!(
        from_offset.iter().map(|g| g.offset).collect::<Vec<_>>(),
        vec![42, 43, 44, 45, 46]
    );
    assert_eq!(from_offset[0].timestamp, Some(base_ts + 42_000));

    // offsets_for_times goes through ListOffsets with a timestamp.
    use rdkafka::consumer::Consumer;
    let c = crate::kafka::consumer(&broker.addr);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 1, Offset::Offset(base_ts + 70_500))
        .unwrap();
    let found = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(
        found.find_partition(topic, 1).unwrap().offset(),
        Offset::Offset(71)
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 1, Offset::Offset(base_ts + 1_000_000))
        .unwrap();
    let found = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(
        found.find_partition(topic, 1).unwrap().offset(),
        Offset::End,
        "past the last timestamp"
    );

    let (low, high) = c
        .fetch_watermarks(topic, 1, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 100));
    let (low, high) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 0));

    // From latest: only records produced after the assignment arrive.
    let addr = broker.addr.clone();
    let reader = std::thread::spawn(move || {
        consume(
            &addr,
            "positions",
            1,
            Offset::End,
            1,
            Duration::from_secs(30),
        )
    });
    std::thread::sleep(Duration::from_secs(2));
    p.send(
        FutureRecord::<(), _>::to(topic)
            .partition(1)
            .payload("after"),
        Duration::from_secs(10),
    )
    .await
    .expect("send");
    let latest = reader.join().unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].offset, 100);
    assert_eq!(latest[0].value.as_deref(), Some(&b"after"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_stamps_records_with_broker_time() {
    let broker = Broker::start(&[]);
    let topic = "append-time";
    create_topic(
        &broker.addr,
        topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let p = producer(&broker.addr, &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rec = FutureRecord::<(), _>::to(topic)
        .partition(0)
        .payload("x")
        .timestamp(1_000);
    p.send(rec, Duration::from_secs(10)).await.expect("send");
    let got = consume(
        &broker.addr,
        topic,
        0,
        Offset::Beginning,
        1,
        Duration::from_secs(20),
    );
    let ts = got[0].timestamp.expect("timestamp");
    assert!(
        ts >= before,
        "LogAppendTime {ts} should not be the producer's 1000"
    );
}
