"""Partition reassignment (KIP-455) from kafka-python's admin client on a 3-node cluster, under an
idempotent acks=all load from confluent-kafka: every partition moves to other brokers, the move
shows in ListPartitionReassignments while it runs and is gone when done, cancelling with none
running is NO_REASSIGNMENT_IN_PROGRESS, and no acknowledged record is lost.

(confluent-kafka 2.16's AdminClient has no alter_partition_reassignments; kafka-python 3 does.)
"""
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition as CTP
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
from kafka.errors import NoReassignmentInProgressError


def test_reassignment_under_acks_all_load_loses_nothing(cluster):
    topic = "reassigned"
    ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    ka.create_topics([KNewTopic(topic, -1, -1, replica_assignments={0: [1, 2], 1: [2, 1]},
                                topic_configs={"min.insync.replicas": "1"})])
    cluster.wait_for_isr(topic, 2)

    acked, errors, stop = [], [], threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5})

        def done(err, msg):
            (errors if err else acked).append(err or msg.value().decode())

        i = 0
        while not stop.is_set() and i < 200_000:
            p.produce(topic, value=f"v{i}".encode(), partition=i % 2, on_delivery=done)
            p.poll(0)
            i += 1
            if i % 500 == 0:
                time.sleep(0.05)
        p.flush(60)

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(2)

    try:
        moves = {TopicPartition(topic, 0): [2, 3], TopicPartition(topic, 1): [3, 1]}
        result = ka.alter_partition_reassignments(moves)
        assert all(v is None for v in result.values()), result
        # Done when no partition is listed any more; replicas are then the targets.
        deadline = time.time() + 60
        while ka.list_partition_reassignments({topic: [0, 1]}):
            assert time.time() < deadline, ka.list_partition_reassignments({topic: [0, 1]})
            time.sleep(0.2)
        deadline = time.time() + 30
        while True:
            parts = cluster.partitions(topic)
            if sorted(parts[0][1]) == [2, 3] and sorted(parts[1][1]) == [1, 3] \
                    and all(len(isr) == 2 for _, _, isr in parts.values()):
                break
            assert time.time() < deadline, parts
            time.sleep(0.2)
        result = ka.alter_partition_reassignments({TopicPartition(topic, 0): None})
        assert result[TopicPartition(topic, 0)] is NoReassignmentInProgressError, result
    finally:
        ka.close()
    time.sleep(1)
    stop.set()
    t.join(120)
    assert len(acked) > 1000 and not errors, (len(acked), errors[:5])

    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "reassign-check",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([CTP(topic, 0, 0), CTP(topic, 1, 0)])
    seen, deadline = set(), time.time() + 60
    want = set(acked)
    while not want <= seen and time.time() < deadline:
        for m in c.consume(500, 1.0):
            if not m.error():
                seen.add(m.value().decode())
    c.close()
    lost = want - seen
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"


def test_a_move_survives_the_kill_of_its_leader(cluster):
    """The partition on [1, 2], led by 1, moves to [2, 3] while node 3 is down, so the move
    waits; the leader (node 1, which the move removes) is killed meanwhile. Node 3 comes back,
    node 2 takes over and node 3 copies from it, the move completes on [2, 3], node 1 comes back
    without the partition, and no acknowledged record is lost."""
    topic = "moved-under-kill"
    ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    ka.create_topics([KNewTopic(topic, -1, -1, replica_assignments={0: [1, 2]},
                                topic_configs={"min.insync.replicas": "1"})])
    ka.close()
    cluster.wait_for_isr(topic, 2)

    acked, errors = [], []
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5})

    def done(err, msg):
        (errors if err else acked).append(err or msg.value().decode())

    def produce(start, n):
        for i in range(start, start + n):
            p.produce(topic, value=f"v{i}".encode(), partition=0, on_delivery=done)
            p.poll(0)
        assert p.flush(60) == 0

    produce(0, 2000)
    cluster.kill(3)
    # kafka-python's admin client gives up on a request routed to a node that refuses the
    # connection: wait until node 3 is fenced and gone from Metadata's brokers (bounded), and
    # bootstrap from the live nodes only.
    cluster.wait_for_brokers(2)
    ka = KafkaAdminClient(bootstrap_servers=[cluster.node(1).addr, cluster.node(2).addr])
    try:
        result = ka.alter_partition_reassignments({TopicPartition(topic, 0): [2, 3]})
        assert all(v is None for v in result.values()), result
        assert ka.list_partition_reassignments({topic: [0]}), "the move should wait for node 3"
    finally:
        ka.close()
    cluster.kill(1)
    # Nodes 1 and 3 are both down: no metadata quorum until node 3 is back; then node 2 leads
    # the partition and node 3 copies from it.
    cluster.start(3)
    produce(2000, 2000)
    deadline = time.time() + 60
    while True:
        parts = cluster.partitions(topic)
        leader, replicas, isr = parts[0]
        if sorted(replicas) == [2, 3] and sorted(isr) == [2, 3]:
            break
        assert time.time() < deadline, parts
        time.sleep(0.2)
    cluster.start(1)
    produce(4000, 1000)
    assert len(acked) == 5000 and not errors, (len(acked), errors[:5])
    ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    try:
        assert not ka.list_partition_reassignments({topic: [0]})
    finally:
        ka.close()
    # Node 1 no longer hosts the partition: its copy is deleted once it has caught up with
    # the metadata that moved it away.
    deadline = time.time() + 30
    while (cluster.node(1).data / f"{topic}-0").exists():
        assert time.time() < deadline, "node 1 kept its copy of a partition it no longer hosts"
        time.sleep(0.2)

    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "reassign-kill-check",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([CTP(topic, 0, 0)])
    seen, deadline = set(), time.time() + 60
    want = set(acked)
    while not want <= seen and time.time() < deadline:
        for m in c.consume(500, 1.0):
            if not m.error():
                seen.add(m.value().decode())
    c.close()
    lost = want - seen
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
