"""Fetch from the closest replica (KIP-392) on a 3-node cluster whose nodes are in three racks.

With `replica.selector.class` set to Kafka's RackAwareReplicaSelector, a confluent-kafka
consumer whose `client.rack` is the rack of a follower is sent there by the leader and reads
every record from that follower (bounded by the high watermark the follower learned),
including records produced while it reads. The follower's
`strata_fetch_consumer_bytes_total{rack="same",replica="follower"}` shows the bytes it served;
the leader serves that consumer (almost) nothing, so no bytes cross racks."""

import re
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, Cluster

SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
RACKS = {1: "az-a", 2: "az-b", 3: "az-c"}
TOPIC = "racked"
FIRST = 2000
MORE = 500


def consumer_bytes(broker, *labels):
    """The sum of strata_fetch_consumer_bytes_total samples carrying every one of `labels`."""
    body = urllib.request.urlopen(f"http://{broker.metrics_addr}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in body.splitlines():
        m = re.match(r"^strata_fetch_consumer_bytes_total(\{[^}]*\})? (\S+)$", line)
        if m and all(lab in (m.group(1) or "") for lab in labels):
            total += float(m.group(2))
    return total


@pytest.fixture
def rack_cluster():
    c = Cluster(3, settings={"replica.selector.class": SELECTOR},
                node_settings={i: {"broker.rack": r} for i, r in RACKS.items()})
    yield c
    c.close()


def produce(bootstrap, start, n):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(TOPIC, value=f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0


def consume_until(c, seen, want, timeout):
    deadline = time.time() + timeout
    while len(seen) < want and time.time() < deadline:
        for m in c.consume(num_messages=500, timeout=0.5):
            if m.error() is None:
                seen.add(m.value().decode())


def test_a_consumer_reads_every_record_from_the_follower_in_its_rack(rack_cluster):
    c = rack_cluster
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
    leader, replicas, _ = c.wait_for_isr(TOPIC, 3)[0]
    follower = next(r for r in replicas if r != leader)
    produce(c.bootstrap, 0, FIRST)

    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "racked-readers",
                         "client.rack": RACKS[follower], "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    consumer.subscribe([TOPIC])
    seen = set()
    try:
        consume_until(consumer, seen, FIRST, 60)
        assert len(seen) == FIRST, f"read {len(seen)} of {FIRST}\n{c.logs()}"
        # Records produced while it reads reach it through the follower's high watermark.
        produce(c.bootstrap, FIRST, MORE)
        consume_until(consumer, seen, FIRST + MORE, 60)
    finally:
        consumer.close()
    assert seen == {f"v{i}" for i in range(FIRST + MORE)}, f"missing {FIRST + MORE - len(seen)}"

    served = consumer_bytes(c.node(follower), 'rack="same"', 'replica="follower"')
    cross = consumer_bytes(c.node(leader), 'rack="other"')
    others = [n for n in RACKS if n not in (leader, follower)]
    elsewhere = sum(consumer_bytes(c.node(n), 'replica="follower"') for n in others)
    print(f"rack fetch: follower {follower} ({RACKS[follower]}) served {served:.0f} bytes; "
          f"leader {leader} served {cross:.0f} bytes across racks; other follower {elsewhere:.0f}")
    assert served > 0, "the follower in the consumer's rack served nothing"
    assert elsewhere == 0
    assert cross * 10 <= served, f"leader sent {cross} bytes across racks, follower {served}"


def test_an_unknown_replica_selector_is_refused_at_startup():
    with pytest.raises(RuntimeError) as e:
        Broker({"replica.selector.class": "com.example.NearestReplicaSelector"})
    assert "replica.selector.class" in str(e.value)
    assert SELECTOR in str(e.value)
