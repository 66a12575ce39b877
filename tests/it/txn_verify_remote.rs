//! KIP-890 part 1 when the transaction coordinator cannot answer: the partition leader
//! is on another node than the coordinator, which is paused (SIGSTOP) after it added
//! the partition. The leader's question times out (or finds no coordinator once the
//! paused node is fenced); the Produce gets a retriable error (NOT_ENOUGH_REPLICAS, as
//! Kafka maps coordinator errors for producers) and nothing is appended. Once the
//! coordinator is back, the same batch is accepted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, ProduceRequest, ProduceResponse,
    TopicName, TransactionalId,
};
use kafka_protocol::ResponseError as E;

use crate::cluster::{metadata, signal, Cluster};
use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::transactions::batch;
use crate::txn::{add, call, init, sb};

/// The node coordinating `id` (FindCoordinator v3), retried while it loads (bounded).
fn coordinator(b: &Broker, id: &str) -> i32 {
    let req = FindCoordinatorRequest::default()
        .with_key(sb(id))
        .with_key_type(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: FindCoordinatorResponse = call(b, ApiKey::FindCoordinator, 3, &req);
        if r.error_code == 0 && r.node_id.0 >= 0 {
            return r.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {id}: {}",
            r.error_code
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A transactional Produce v9 (acks=1) of `records` to `topic`-`partition`: its error.
fn produce(b: &Broker, id: &str, topic: &str, partition: i32, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(sb(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let r: ProduceResponse = call(b, ApiKey::Produce, 9, &req);
    r.responses[0].partition_responses[0].error_code
}

/// The log end offset of `topic`-`partition` (librdkafka's high watermark, read
/// uncommitted: the open transaction counts).
fn log_end(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = crate::kafka::config(bootstrap)
        .set("isolation.level", "read_uncommitted")
        .create()
        .expect("client");
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_coordinator_gets_a_retriable_error_and_nothing_is_appended() {
    let mut c = Cluster::start(
        3,
        &[
            ("transaction.state.log.replication.factor", "1"),
            ("transaction.state.log.min.isr", "1"),
            ("transaction.state.log.num.partitions", "3"),
        ],
    );
    let topic = "kip890-remote";
    create_topic(&c.bootstrap(), topic, 3, &[]).await;
    let id = "kip890-remote-id";
    let coord = coordinator(&c.nodes[0], id);
    let md = metadata(&c.bootstrap(), Some(topic));
    let (partition, leader) = md
        .partitions
        .iter()
        .map(|(p, (l, _, _))| (*p, *l))
        .find(|(_, l)| *l != coord && *l > 0)
        .expect("a partition led by another node than the coordinator");

    let r = init(c.node(coord), id, 60_000);
    assert_eq!(r.error_code, 0);
    let p = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add(c.node(coord), id, p, &[(topic, partition)]), vec![0]);

    // The coordinator stops answering: the leader cannot verify.
    signal(c.node(coord), "STOP");
    let records = batch(p.0, p.1, 0, true, &["unverified".to_string()]);
    let code = produce(c.node(leader), id, topic, partition, records.clone());
    let end = log_end(&c.nodes[(leader - 1) as usize].addr, topic, partition);
    signal(c.node(coord), "CONT");
    assert_eq!(
        code,
        E::NotEnoughReplicas.code(),
        "a retriable error while the coordinator of {id} (node {coord}) is paused"
    );
    assert_eq!(end, 0, "nothing appended to {topic}-{partition}");

    // Back: the same batch (the producer retries it) is verified and appended.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let code = produce(c.node(leader), id, topic, partition, records.clone());
        if code == 0 {
            break;
        }
        assert!(
            code == E::NotEnoughReplicas.code(),
            "only retriable errors while the coordinator comes back, got {code}"
        );
        assert!(Instant::now() < deadline, "the coordinator never came back");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        log_end(&c.nodes[(leader - 1) as usize].addr, topic, partition),
        1
    );
}
