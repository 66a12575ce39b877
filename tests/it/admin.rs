//! Admin APIs through librdkafka's AdminClient: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, AlterConfigs, DeleteRecords, Metadata.

use std::time::Duration;

use rdkafka::admin::{
    AdminOptions, AlterConfig, NewPartitions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::Offset;

use crate::harness::Broker;
use crate::kafka::{admin, consume, consumer, create_topic, produce_n, producer};

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_validate_delete_and_grow_topics() {
    let broker = Broker::start(&[("num.partitions", "3")]);
    let a = admin(&broker.addr);

    // validate_only creates nothing.
    let t = NewTopic::new("checked", 4, TopicReplication::Fixed(1));
    let r = a
        .create_topics([&t], &opts().validate_only(true))
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = consumer(&broker.addr);
    let meta = md
        .fetch_metadata(Some("checked"), Duration::from_secs(10))
        .unwrap();
    assert!(
        meta.topics()[0].error().is_some(),
        "validate_only must not create the topic"
    );

    // Real creation with a config, then a duplicate.
    let t = NewTopic::new("made", 4, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    assert!(a.create_topics([&t], &opts()).await.unwrap()[0].is_ok());
    let dup = a.create_topics([&t], &opts()).await.unwrap();
    assert_eq!(
        dup[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );

    // Bad inputs answer with Kafka's codes.
    let bad =
        NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
    assert_eq!(
        a.create_topics([&bad], &opts()).await.unwrap()[0]
            .as_ref()
            .unwrap_err()
            .1,
        RDKafkaErrorCode::InvalidConfig
    );
    let bad = NewTopic::new("bad-name!", 1, TopicReplication::Fixed(1));
    assert_eq!(
        a.create_topics([&bad], &opts()).await.unwrap()[0]
            .as_ref()
            .unwrap_err()
            .1,
        RDKafkaErrorCode::InvalidTopic
    );
    let bad = NewTopic::new("bad-rf", 1, TopicReplication::Fixed(3));
    assert_eq!(
        a.create_topics([&bad], &opts()).await.unwrap()[0]
            .as_ref()
            .unwrap_err()
            .1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );

    // num.partitions applies to auto-created topics.
    let auto: rdkafka::consumer::BaseConsumer = crate::kafka::config(&broker.addr)
        .set("allow.auto.create.topics", "true")
        .create()
        .unwrap();
    let meta = auto
        .fetch_metadata(Some("auto-made"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(meta.topics()[0].partitions().len(), 3);

    // CreatePartitions grows, never shrinks.
    let grow = NewPartitions::new("made", 6);
    assert!(a.create_partitions([&grow], &opts()).await.unwrap()[0].is_ok());
    let shrink = NewPartitions::new("made", 2);
    assert_eq!(
        a.create_partitions([&shrink], &opts()).await.unwrap()[0]
            .as_ref()
            .unwrap_err()
            .1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let meta = md
        .fetch_metadata(Some("made"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(meta.topics()[0].partitions().len(), 6);
    let p = producer(&broker.addr, &[]);
    assert_eq!(produce_n(&p, "made", 5, 3).await, vec![0, 1, 2]);

    // DeleteTopics removes the topic and its directories.
    assert!(a.delete_topics(&["made"], &opts()).await.unwrap()[0].is_ok());
    let missing = a.delete_topics(&["made"], &opts()).await.unwrap();
    assert_eq!(
        missing[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
    assert!(
        !broker.data.join("made-0").exists(),
        "partition dir should be gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_and_alter_configs_and_survive_restart() {
    let mut broker = Broker::start(&[]);
    create_topic(&broker.addr, "cfg", 1, &[("segment.bytes", "1048576")]).await;
    let a = admin(&broker.addr);

    let described = a
        .describe_configs([&ResourceSpecifier::Topic("cfg")], &opts())
        .await
        .unwrap();
    let res = described[0].as_ref().unwrap();
    assert_eq!(
        res.get("segment.bytes").unwrap().value.as_deref(),
        Some("1048576")
    );
    assert!(!res.get("segment.bytes").unwrap().is_default);
    assert_eq!(
        res.get("retention.ms").unwrap().value.as_deref(),
        Some("604800000")
    );
    assert!(res.get("retention.ms").unwrap().is_default);

    let alter = AlterConfig::new(ResourceSpecifier::Topic("cfg"))
        .set("retention.ms", "1000")
        .set("segment.bytes", "2097152");
    let r = a.alter_configs([&alter], &opts()).await.unwrap();
    assert_eq!(
        r[0].as_ref().unwrap(),
        &OwnedResourceSpecifier::Topic("cfg".into())
    );
    // An unknown name is refused (INVALID_CONFIG, checked with confluent-kafka in the
    // Python tests) and changes nothing.
    let bad = AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("no.such.config", "1");
    let _ = a.alter_configs([&bad], &opts()).await.unwrap();
    let described = a
        .describe_configs([&ResourceSpecifier::Topic("cfg")], &opts())
        .await
        .unwrap();
    assert_eq!(
        described[0]
            .as_ref()
            .unwrap()
            .get("retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("1000")
    );

    let broker_cfg = a
        .describe_configs([&ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap();
    let b = broker_cfg[0].as_ref().unwrap();
    assert_eq!(
        b.get("log.segment.bytes").unwrap().value.as_deref(),
        Some("1073741824")
    );

    broker.stop();
    broker.start_again();
    let a = admin(&broker.addr);
    let described = a
        .describe_configs([&ResourceSpecifier::Topic("cfg")], &opts())
        .await
        .unwrap();
    let res = described[0].as_ref().unwrap();
    assert_eq!(
        res.get("retention.ms").unwrap().value.as_deref(),
        Some("1000"),
        "configs survive a restart"
    );
    assert_eq!(
        res.get("segment.bytes").unwrap().value.as_deref(),
        Some("2097152")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_advances_log_start() {
    let broker = Broker::start(&[]);
    create_topic(&broker.addr, "trim", 1, &[("segment.bytes", "4096")]).await;
    let p = producer(&broker.addr, &[("linger.ms", "0")]);
    produce_n(&p, "trim", 0, 200).await;
    let a = admin(&broker.addr);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, Offset::Offset(150))
        .unwrap();
    let r = a
        .delete_records(&tpl, &opts())
        .await
        .expect("delete_records");
    assert_eq!(
        r.find_partition("trim", 0).unwrap().offset(),
        Offset::Offset(150)
    );
    let c = consumer(&broker.addr);
    let (low, high) = c
        .fetch_watermarks("trim", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (150, 200));
    let got = consume(
        &broker.addr,
        "trim",
        0,
        Offset::Beginning,
        50,
        Duration::from_secs(20),
    );
    assert_eq!(got.first().map(|g| g.offset), Some(150));
    assert_eq!(got.len(), 50);
    let segments = std::fs::read_dir(broker.data.join("trim-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(
        segments < 20,
        "whole segments below the new start are deleted ({segments} left)"
    );
}
