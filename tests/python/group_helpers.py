"""Shared pieces of the consumer-group tests: a fixed-port broker (so that clients
survive a restart), producing keyed records, and a checker for exactly-once
consumption across a group."""

import socket
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

FAST_GROUP = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
}

# kafka-python consumers in a group poll with a long timeout to avoid a kafka-python 3.0.12
# bug: when a poll's timeout expires while its JoinGroup still waits for the other members,
# the join finishes in the background and is only taken up by a later poll that still needs
# a rejoin. A group leader that rejoins because the topic's metadata arrived after its first
# assignment clears that need with its own new assignment, so the finished join is dropped:
# the member stays REBALANCING, without heartbeats or partitions, for good (the broker expels
# it correctly after the session timeout). poll() still returns as soon as records arrive.
KAFKA_PYTHON_GROUP_POLL_MS = 5000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fixed_port_broker(make_broker, **settings):
    port = free_port()
    settings = {"listeners": f"PLAINTEXT://127.0.0.1:{port}", "offsets.topic.num.partitions": 10, **settings}
    return make_broker(settings)


def create_topic(addr, name, partitions):
    a = AdminClient({"bootstrap.servers": addr})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(15)


def produce_keyed(addr, topic, n):
    p = Producer({"bootstrap.servers": addr, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0


class Seen:
    """Thread-safe record of (partition, offset) pairs consumed by a group."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, pairs):
        with self.lock:
            self.items.extend(pairs)

    def count(self):
        with self.lock:
            return len(self.items)

    def assert_exactly(self, expected):
        with self.lock:
            dups = len(self.items) - len(set(self.items))
            missing = expected - set(self.items)
        assert dups == 0, f"{dups} records were consumed twice"
        assert not missing, f"{len(missing)} records were never consumed"


def expected_pairs(addr, topic, partitions):
    """Every (partition, offset) in the topic, from the high watermarks."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": addr, "group.id": "watermarks"})
    out = set()
    for p in range(partitions):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        out.update((p, o) for o in range(high))
    c.close()
    return out


def wait_until(cond, timeout, what, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.1)
    tail = "\n".join(log().splitlines()[-60:]) if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
