//! Real-client helpers over librdkafka (the `rdkafka` crate).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("broker.address.family", "v4");
    c
}

pub fn producer(addr: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = config(addr);
    c.set("message.timeout.ms", "30000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

pub fn admin(addr: &str) -> AdminClient<DefaultClientContext> {
    config(addr).create().expect("admin client")
}

pub fn consumer(addr: &str) -> BaseConsumer {
    config(addr)
        .set("group.id", "strata-it-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .expect("consumer")
}

pub async fn create_topic(addr: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(addr);
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e:?}"));
    }
}

/// A consumed record: offset, key, value, headers, timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

/// Reads one partition from `from` until `count` records or `timeout` pass.
pub fn consume(
    addr: &str,
    topic: &str,
    partition: i32,
    from: Offset,
    count: usize,
    timeout: Duration,
) -> Vec<Got> {
    let c = consumer(addr);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from)
        .expect("offset");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(count);
    let deadline = Instant::now() + timeout;
    while out.len() < count && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Got {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp().to_millis(),
            }),
            Some(Err(e)) => panic!("consume {topic}-{partition}: {e}"),
            None => {}
        }
    }
    out
}

/// Produces `n` records `key-i` / `value-i` with a header, waiting for each ack.
pub async fn produce_n(p: &FutureProducer, topic: &str, partition: i32, n: usize) -> Vec<i64> {
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let rec = FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&value);
        futures.push(p.send_result(rec).expect("enqueue"));
    }
    let mut offsets = Vec::with_capacity(n);
    for f in futures {
        let delivery = f.await.expect("delivery future").expect("delivered");
        offsets.push(delivery.offset);
    }
    offsets
}
