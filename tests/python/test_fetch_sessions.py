"""Incremental fetch sessions (KIP-227) with a client that uses them (kafka-python): a
consumer of 1,000 partitions reads every record while its fetches after the first are
incremental, and the broker leaves unchanged partitions out of its answers (counted in
the strata_fetch_session_* metrics)."""

import re
import time
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition

PARTITIONS = 1000
PER_PARTITION = 3


def metric(broker, name, labels=""):
    body = urllib.request.urlopen(f"http://{broker.metrics_addr}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in body.splitlines():
        m = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


def test_a_consumer_of_many_partitions_fetches_incrementally(broker):
    topic = "sessions"
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(120)
    p = Producer({"bootstrap.servers": broker.addr, "linger.ms": 5})
    for part in range(PARTITIONS):
        for i in range(PER_PARTITION):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0

    c = KafkaConsumer(bootstrap_servers=broker.addr, enable_auto_commit=False,
                      fetch_max_wait_ms=100, consumer_timeout_ms=1000)
    c.assign([TopicPartition(topic, part) for part in range(PARTITIONS)])
    c.seek_to_beginning()
    got = set()
    deadline = time.time() + 60
    while len(got) < PARTITIONS * PER_PARTITION and time.time() < deadline:
        for batch in c.poll(timeout_ms=500).values():
            got.update(m.value.decode() for m in batch)
    # Idle polls: nothing changes, so incremental answers leave every partition out.
    for _ in range(5):
        assert not c.poll(timeout_ms=300)
    c.close()

    assert got == {f"{part}-{i}" for part in range(PARTITIONS) for i in range(PER_PARTITION)}
    assert metric(broker, "strata_fetch_session_requests_total", 'kind="full"') >= 1
    assert metric(broker, "strata_fetch_session_requests_total", 'kind="incremental"') >= 3
    assert metric(broker, "strata_fetch_session_partitions_left_out_total") >= PARTITIONS
    # Requests: the full ones list every partition, the incremental ones what changed.
    incremental = metric(broker, "strata_fetch_session_requests_total", 'kind="incremental"')
    listed = metric(broker, "strata_fetch_request_partitions_total", 'kind="incremental"')
    assert listed / incremental < PARTITIONS / 10, (listed, incremental)
