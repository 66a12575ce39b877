"""Transactions on a 3-node cluster: the node that coordinates the transactional id (the
leader of its __transaction_state partition), which also leads the output partition, is
killed mid-run and started again. The coordinator moves with the partition's leadership;
a transaction in flight is completed or aborted, never left hanging; markers reach the
new leaders. A read_committed consumer sees every transaction the producer saw committed,
exactly once, and no record of a transaction that was not."""

import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "txc"
PER_TXN = 50
TXNS = 60


def java_hash_partition(s, n):
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (h * 31 + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % n


def pick_txn_id(cluster, node):
    """A transactional id whose __transaction_state partition `node` leads (bounded)."""
    parts = cluster.wait_for_isr("__transaction_state", 1)
    n = len(parts)
    for i in range(200):
        tid = f"tc-{i}"
        if parts[java_hash_partition(tid, n)][0] == node:
            return tid
    raise AssertionError("no transactional id hashes to a partition led by the victim")


def new_producer(cluster, tid):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": tid,
                  "transaction.timeout.ms": 10000, "linger.ms": 5, "acks": "all"})
    p.init_transactions(60)
    return p


def test_transactions_survive_a_kill_of_the_coordinator_and_the_leader(cluster):
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic(TOPIC, 1, 3)])[TOPIC].result(30)
    leader = cluster.wait_for_isr(TOPIC, 3)[0][0]
    tid = pick_txn_id(cluster, leader)

    committed, attempted = [], set()
    p = new_producer(cluster, tid)
    deadline = time.time() + 300
    n, killed, restarted = 0, False, False
    while n < TXNS and time.time() < deadline:
        if n == TXNS // 3 and not killed:
            cluster.kill(leader)
            killed = True
        if n == 2 * TXNS // 3 and not restarted:
            cluster.start(leader)
            restarted = True
        values = [f"{n}-{i}" for i in range(PER_TXN)]
        try:
            p.begin_transaction()
            for v in values:
                p.produce(TOPIC, value=v)
            attempted.update(values)
            p.commit_transaction(30)
            committed.extend(values)
            n += 1
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                try:
                    p.abort_transaction(30)
                except KafkaException:
                    p = new_producer(cluster, tid)
            elif not err.retriable():
                p = new_producer(cluster, tid)
            time.sleep(0.2)
    assert killed and restarted and n == TXNS, f"{n} transactions committed"

    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "txc-check",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    seen, last, end = [], time.time(), time.time() + 120
    while time.time() - last < 5 and time.time() < end:
        for m in c.consume(500, 0.5):
            if m.error() is None:
                seen.append(m.value().decode())
                last = time.time()
    c.close()
    assert len(seen) == len(set(seen)), "no record twice"
    assert set(committed) <= set(seen), f"{len(set(committed) - set(seen))} committed records missing"
    assert set(seen) <= attempted
    # Whole transactions only: a transaction is all there or not at all.
    by_txn = {}
    for v in seen:
        by_txn.setdefault(v.split("-")[0], 0)
        by_txn[v.split("-")[0]] += 1
    assert all(k == PER_TXN for k in by_txn.values()), "no torn transaction"


def test_describe_producers_is_answered_by_the_leader_only(cluster):
    """DescribeProducers (kafka-python's describe_producers) on a 3-node cluster: the
    partition leader lists the producer; a follower, which replays the same producer state,
    answers NOT_LEADER_OR_FOLLOWER, as Kafka does."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    from kafka.errors import NotLeaderForPartitionError as NotLeaderOrFollowerError  # code 6
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic("dpc", 1, 3)])["dpc"].result(30)
    leader, replicas, _ = cluster.wait_for_isr("dpc", 3)[0]
    p = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(3):
        p.produce("dpc", value=f"v{i}", partition=0)
    assert p.flush(30) == 0
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    tp = KTP("dpc", 0)
    state = admin.describe_producers([tp])[tp]
    assert [s.last_sequence for s in state.active_producers] == [2], state
    follower = next(r for r in replicas if r != leader)
    try:
        admin.describe_producers([tp], broker_id=follower)
        raise AssertionError("a follower answered DescribeProducers")
    except NotLeaderOrFollowerError:
        pass
    admin.close()
