//! `transactional.id.expiration.ms` end to end: an idle transactional id is forgotten
//! after it (a tombstone in `__transaction_state`, so it stays forgotten after a
//! restart) and its old producer gets INVALID_PRODUCER_ID_MAPPING; an id with a
//! transaction in flight is kept however long it has been quiet.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError as E;

use crate::harness::Broker;
use crate::kafka::create_topic;
use crate::txn::{add, describe, end, init};

/// Waits (bounded) until DescribeTransactions of `id` answers `code`.
fn wait_for_code(b: &Broker, id: &str, code: i16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = describe(b, id);
        if d.error_code == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: DescribeTransactions answered {} ({}), not {code}",
            d.error_code,
            d.transaction_state
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_transactional_id_expires_and_an_open_one_does_not() {
    let mut broker = Broker::start(&[
        ("transactional.id.expiration.ms", "1000"),
        (
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            "100",
        ),
    ]);
    create_topic(&broker.addr, "txexp", 1, &[]).await;
    let idle = init(&broker, "idle-id", 60_000);
    assert_eq!(idle.error_code, 0);
    let busy = init(&broker, "busy-id", 60_000);
    assert_eq!(busy.error_code, 0);
    let busy_p = (busy.producer_id.0, busy.producer_epoch);
    assert_eq!(add(&broker, "busy-id", busy_p, &[("txexp", 0)]), vec![0]);
    assert_eq!(describe(&broker, "idle-id").error_code, 0, "known at first");

    wait_for_code(&broker, "idle-id", E::TransactionalIdNotFound.code());
    let idle_p = (idle.producer_id.0, idle.producer_epoch);
    assert_eq!(
        end(&broker, "idle-id", idle_p, false),
        E::InvalidProducerIdMapping.code(),
        "the expired id's producer is not known any more"
    );
    let d = describe(&broker, "busy-id");
    assert_eq!(d.error_code, 0);
    assert_eq!(
        &*d.transaction_state, "Ongoing",
        "an open transaction is kept"
    );

    // The tombstone is durable; the open transaction survives the restart too.
    broker.restart();
    wait_for_code(&broker, "busy-id", 0);
    assert_eq!(
        describe(&broker, "idle-id").error_code,
        E::TransactionalIdNotFound.code()
    );
    assert_eq!(&*describe(&broker, "busy-id").transaction_state, "Ongoing");
    assert_eq!(end(&broker, "busy-id", busy_p, true), 0);
}
