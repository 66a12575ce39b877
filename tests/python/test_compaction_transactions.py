"""Compaction of a transactional topic with confluent-kafka: committed and aborted
transactions on a compacted topic; once the cleaner has run, a read_uncommitted consumer
reading from the start sees no aborted record, and the latest committed value of every key
is still there at its offset (Kafka's cleaner removes aborted transactions' records using
the aborted-transaction index)."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLEANER = {"log.cleaner.backoff.ms": 100, "log.retention.check.interval.ms": 200}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "16384",
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1500",
}
KEYS = 50
ROUNDS = 6  # even rounds commit, odd ones abort: the last transaction is aborted


def read_all(b, topic, isolation, timeout=30):
    """Every record of partition 0 from the log start under `isolation`, as (offset, key, value)."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True, "isolation.level": isolation})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def test_the_cleaner_removes_aborted_transactions_and_keeps_the_latest_committed_values(make_broker):
    b = make_broker(CLEANER)
    topic = "txn-changelog"
    admin = AdminClient({"bootstrap.servers": b.addr})
    admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIG)])[topic].result(15)
    p = Producer({"bootstrap.servers": b.addr, "transactional.id": "compact-txn",
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(30)
    for r in range(ROUNDS):
        p.begin_transaction()
        for k in range(KEYS):
            p.produce(topic, key=f"key-{k}".encode(), value=f"r{r}-of-{k}".encode(), partition=0)
        p.flush(30)
        if r % 2 == 0:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        time.sleep(0.4)  # a segment per transaction or so (segment.ms)
    last_committed = ROUNDS - 2 if ROUNDS % 2 == 0 else ROUNDS - 1
    committed = {f"key-{k}".encode(): f"r{last_committed}-of-{k}".encode() for k in range(KEYS)}

    # read_committed sees the committed values whatever the cleaner did.
    got = {k: v for _, k, v in read_all(b, topic, "read_committed")}
    assert got == committed

    # Once cleaned, read_uncommitted sees only committed records, one per key.
    deadline, got = time.time() + 60, None
    while time.time() < deadline:
        got = read_all(b, topic, "read_uncommitted")
        aborted = [(o, v) for o, _, v in got if int(v.split(b"-")[0][1:]) % 2 == 1]
        latest = {k: v for _, k, v in got}
        if not aborted and len(got) == KEYS:
            break
        time.sleep(0.5)
    assert not aborted, f"aborted records left: {aborted[:5]}"
    assert latest == committed
    assert len(got) == KEYS, f"{len(got)} records left, want one per key"
    # And read_committed still agrees.
    assert {k: v for _, k, v in read_all(b, topic, "read_committed")} == committed
