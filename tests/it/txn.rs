//! The transaction coordinator over raw frames: FindCoordinator for a transactional id,
//! InitProducerId fencing, AddPartitionsToTxn and EndTxn with Kafka's error codes,
//! DescribeTransactions/ListTransactions, the state reloaded after a restart, and a
//! transaction open past its timeout aborted with a bumped epoch.

use std::io::Write;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, ResponseHeader, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError as E;

use crate::bad_input::{connect, frame, read_frame};
use crate::harness::Broker;
use crate::kafka::create_topic;

pub(crate) fn call<Q: Encodable, R: Decodable>(
    b: &Broker,
    api: ApiKey,
    version: i16,
    req: &Q,
) -> R {
    let mut s = connect(b);
    s.write_all(&frame(api, version, req)).unwrap();
    let mut resp = read_frame(&mut s).expect("answered");
    ResponseHeader::decode(&mut resp, api.response_header_version(version)).unwrap();
    R::decode(&mut resp, version).unwrap()
}

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Retries while the coordinator loads its partitions (bounded).
fn retry<R>(mut f: impl FnMut() -> R, code: impl Fn(&R) -> i16) -> R {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = f();
        let c = code(&r);
        let loading = c == E::CoordinatorLoadInProgress.code()
            || c == E::NotCoordinator.code()
            || c == E::CoordinatorNotAvailable.code();
        if !loading || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn init(b: &Broker, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    retry(
        || call(b, ApiKey::InitProducerId, 4, &req),
        |r: &InitProducerIdResponse| r.error_code,
    )
}

pub(crate) fn add(
    b: &Broker,
    id: &str,
    (pid, epoch): (i64, i16),
    parts: &[(&str, i32)],
) -> Vec<i16> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (t, p) in parts {
        topics.push(
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(vec![*p]),
        );
    }
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let r: AddPartitionsToTxnResponse = call(b, ApiKey::AddPartitionsToTxn, 3, &req);
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

pub(crate) fn end(b: &Broker, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let r: EndTxnResponse = call(b, ApiKey::EndTxn, 3, &req);
    r.error_code
}

pub(crate) fn describe(b: &Broker, id: &str) -> TransactionState {
    let req = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(sb(id))]);
    retry(
        || {
            let r: DescribeTransactionsResponse = call(b, ApiKey::DescribeTransactions, 0, &req);
            r.transaction_states[0].clone()
        },
        |s| s.error_code,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_apis_answer_with_kafkas_codes_and_survive_a_restart() {
    let mut broker = Broker::start(&[("transaction.max.timeout.ms", "120000")]);
    create_topic(&broker.addr, "txo", 2, &[]).await;

    let too_long = init(&broker, "t1", 120_001);
    assert_eq!(too_long.error_code, E::InvalidTransactionTimeout.code());
    let r = init(&broker, "t1", 60_000);
    assert_eq!(r.error_code, 0);
    let p = (r.producer_id.0, r.producer_epoch);
    assert_eq!(p.1, 0);

    let find: FindCoordinatorResponse = call(
        &broker,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(sb("t1"))
            .with_key_type(1),
    );
    assert_eq!(find.error_code, 0);
    assert_eq!(find.port, broker.port() as i32);

    // Unknown partitions are refused and the others not attempted.
    assert_eq!(
        add(&broker, "t1", p, &[("txo", 0), ("nope", 0)]),
        vec![
            E::OperationNotAttempted.code(),
            E::UnknownTopicOrPartition.code()
        ]
    );
    assert_eq!(add(&broker, "t1", p, &[("txo", 0), ("txo", 1)]), vec![0, 0]);
    assert_eq!(
        add(&broker, "t1", (p.0, p.1 + 1), &[("txo", 0)]),
        vec![E::ProducerFenced.code()]
    );
    assert_eq!(
        add(&broker, "nobody", p, &[("txo", 0)]),
        vec![E::InvalidProducerIdMapping.code()]
    );
    assert_eq!(
        end(&broker, "t1", (p.0 + 1, p.1), true),
        E::InvalidProducerIdMapping.code()
    );

    // KIP-890 part 1: a partition leader verifies a partition is in the transaction.
    let verify = |part: i32| {
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(sb("t1")))
                .with_producer_id(ProducerId(p.0))
                .with_producer_epoch(p.1)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb("txo")))
                    .with_partitions(vec![part])]),
        ]);
        let r: AddPartitionsToTxnResponse = call(&broker, ApiKey::AddPartitionsToTxn, 4, &req);
        r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code
    };
    assert_eq!(verify(1), 0);

    let d = describe(&broker, "t1");
    assert_eq!(&*d.transaction_state, "Ongoing");
    assert_eq!((d.producer_id.0, d.producer_epoch), p);
    assert_eq!(d.topics[0].partitions, vec![0, 1]);
    let missing = describe(&broker, "nobody");
    assert_eq!(missing.error_code, E::TransactionalIdNotFound.code());

    let listed: ListTransactionsResponse = call(
        &broker,
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default().with_state_filters(vec![sb("Ongoing"), sb("Bogus")]),
    );
    assert_eq!(listed.unknown_state_filters, vec![sb("Bogus")]);
    let ids: Vec<&str> = listed
        .transaction_states
        .iter()
        .map(|t| &*t.transactional_id.0)
        .collect();
    assert_eq!(ids, vec!["t1"]);

    // The state is in __transaction_state: a restarted broker knows the transaction.
    broker.restart();
    let d = describe(&broker, "t1");
    assert_eq!(&*d.transaction_state, "Ongoing");
    assert_eq!((d.producer_id.0, d.producer_epoch), p);
    assert_eq!(d.topics[0].partitions, vec![0, 1]);

    // A second producer with the same id fences the first: its open transaction is
    // aborted under a bumped epoch, and it retries until the abort is complete.
    let second = init(&broker, "t1", 60_000);
    assert_eq!(second.error_code, E::ConcurrentTransactions.code());
    let d = describe(&broker, "t1");
    assert_eq!(d.producer_epoch, p.1 + 1);
    assert!(
        ["PrepareAbort", "CompleteAbort"].contains(&&*d.transaction_state),
        "{:?}",
        d.transaction_state
    );
    assert_eq!(end(&broker, "t1", p, true), E::ProducerFenced.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_past_its_timeout_is_aborted_with_a_bumped_epoch() {
    let broker = Broker::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "100",
    )]);
    create_topic(&broker.addr, "txo", 1, &[]).await;
    let r = init(&broker, "slow", 1_000);
    let p = (r.producer_id.0, r.producer_epoch);
    assert_eq!(add(&broker, "slow", p, &[("txo", 0)]), vec![0]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        let d = describe(&broker, "slow");
        if &*d.transaction_state != "Ongoing" || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ["PrepareAbort", "CompleteAbort"].contains(&&*d.transaction_state),
        "{:?}",
        d.transaction_state
    );
    assert_eq!(
        d.producer_epoch,
        p.1 + 1,
        "the timed-out producer is fenced"
    );
    assert_eq!(end(&broker, "slow", p, true), E::ProducerFenced.code());
}
