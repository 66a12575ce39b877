"""Consumer groups with confluent-kafka (librdkafka): exactly-once consumption with
synchronous commits across membership changes and broker restarts, and static
membership (KIP-345)."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from group_helpers import (FAST_GROUP, Seen, create_topic, expected_pairs, fixed_port_broker, produce_keyed,
                           wait_until)

N = 3000
PARTITIONS = 6


class Member(threading.Thread):
    """A consumer that processes each poll batch, then commits it synchronously.

    Rebalances are handled in poll (on_assign/on_revoke), after the previous batch was
    committed, so a partition's next owner starts exactly where this one stopped."""

    def __init__(self, addr, group, topic, seen, instance_id=None, events=None, assignor="range,roundrobin"):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "partition.assignment.strategy": assignor, **FAST_GROUP}
        if instance_id:
            conf["group.instance.id"] = instance_id
        self.consumer = Consumer(conf)
        self.topic, self.seen = topic, seen
        self.events = events if events is not None else []
        self.assigned = set()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.commit_failures = 0
        self.consumed = 0

    def on_assign(self, consumer, parts):
        self.assigned |= {p.partition for p in parts}
        self.events.append(("assign", sorted(p.partition for p in parts)))

    def on_revoke(self, consumer, parts):
        self.assigned -= {p.partition for p in parts}
        self.events.append(("revoke", sorted(p.partition for p in parts)))

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stopping.is_set():
            msgs = self.consumer.consume(num_messages=20, timeout=0.3)
            batch = [m for m in msgs if m.error() is None]
            if not batch:
                continue
            time.sleep(0.1)  # "processing": keeps the run long enough to rebalance mid-stream
            latest = {}
            for m in batch:
                latest[m.partition()] = m.offset() + 1
            offsets = [TopicPartition(self.topic, p, o) for p, o in latest.items()]
            # Retry through a broker restart: the batch counts once it is committed.
            for _ in range(100):
                try:
                    self.consumer.commit(offsets=offsets, asynchronous=False)
                    break
                except KafkaException:
                    self.commit_failures += 1
                    time.sleep(0.2)
            else:
                raise AssertionError("commit kept failing")
            self.seen.add((m.partition(), m.offset()) for m in batch)
            self.consumed += len(batch)
        self.stopped.set()

    def stop(self, close=True):
        self.stopping.set()
        self.stopped.wait(30)
        if close:
            self.consumer.close()


def run_group(broker, topic, group, restart=None, assignor="range,roundrobin"):
    """3 members; once a third of the records is in, one leaves and one joins; with
    `restart`, the broker is restarted when two thirds are in."""
    seen = Seen()
    members = [Member(broker.addr, group, topic, seen, assignor=assignor) for _ in range(3)]
    for m in members:
        m.start()
    try:
        wait_until(lambda: seen.count() >= N // 3, 60, "a third of the records")
        members[0].stop()
        newcomer = Member(broker.addr, group, topic, seen, assignor=assignor)
        newcomer.start()
        members.append(newcomer)
        wait_until(lambda: newcomer.consumed > 0, 60, "the newcomer to consume")
        if restart:
            restart(broker)
            assert seen.count() < N, "the restart must happen mid-stream"
        wait_until(lambda: seen.count() >= N, 90, "every record", log=broker.log)
        time.sleep(1)  # a duplicate delivered late would show up here
    finally:
        for m in members[1:]:
            m.stop()
    seen.assert_exactly(expected_pairs(broker.addr, topic, PARTITIONS))


@pytest.fixture
def group_broker(make_broker):
    return fixed_port_broker(make_broker)


def setup_topic(b, topic):
    create_topic(b.addr, topic, PARTITIONS)
    produce_keyed(b.addr, topic, N)


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_members_leave_and_join_every_record_once(group_broker, assignor):
    # The broker passes protocols through; the group leader runs the assignor.
    setup_topic(group_broker, "g-basic")
    run_group(group_broker, "g-basic", "grp-basic", assignor=assignor)


def sigterm_restart(b):
    b.stop()
    b.start()


def kill9_restart(b):
    b.kill()
    b.start()


@pytest.mark.parametrize("restart", [sigterm_restart, kill9_restart], ids=["sigterm", "kill9"])
def test_broker_restart_resumes_from_committed_offsets(group_broker, restart):
    setup_topic(group_broker, "g-restart")
    run_group(group_broker, "g-restart", "grp-restart", restart=restart)


def test_committed_offsets_survive_restart(group_broker):
    b = group_broker
    setup_topic(b, "g-durable")
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "grp-durable"})
    c.commit(offsets=[TopicPartition("g-durable", p, 10 + p) for p in range(PARTITIONS)], asynchronous=False)
    c.close()
    b.kill()
    b.start()
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "grp-durable"})
    got = c.committed([TopicPartition("g-durable", p) for p in range(PARTITIONS)], timeout=15)
    c.close()
    assert [t.offset for t in got] == [10 + p for p in range(PARTITIONS)]


def test_static_member_restart_keeps_partitions_without_rebalance(group_broker):
    b = group_broker
    setup_topic(b, "g-static")
    seen = Seen()
    events = {i: [] for i in range(3)}
    members = [Member(b.addr, "grp-static", "g-static", seen, instance_id=f"inst-{i}", events=events[i])
               for i in range(3)]
    for m in members:
        m.start()
    try:
        wait_until(lambda: sum(len(m.assigned) for m in members) == PARTITIONS
                   and all(m.assigned for m in members), 60, "a stable group")
        time.sleep(2)
        before = {i: set(m.assigned) for i, m in enumerate(members)}
        for e in events.values():
            e.clear()
        # Restart member 1: a static member sends no LeaveGroup on close.
        members[1].stop()
        events[1].clear()
        again = Member(b.addr, "grp-static", "g-static", seen, instance_id="inst-1", events=events[1])
        again.start()
        members[1] = again
        wait_until(lambda: again.assigned, 30, "the restarted member's assignment")
        time.sleep(3)  # several heartbeat intervals: a rebalance would show by now
        assert again.assigned == before[1]
        assert events[0] == [] and events[2] == [], f"others saw a rebalance: {events}"
    finally:
        for m in members:
            m.stop()
