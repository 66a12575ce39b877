"""Read-only nodes (issue 14, item 3) with confluent-kafka: a `process.roles=reader` node on
the bucket of a running broker serves a consumer from offset 0 of a tiered topic, holds no
partition log, picks up new uploads within one manifest poll, and refuses produce.

Needs `S3_TEST_ENDPOINT` (moto, as scripts/test.sh starts it); skipped without it unless
CI=true."""

import os
import time

import pytest

from test_compaction_tiered import settings, tier_status

S3 = os.environ.get("S3_TEST_ENDPOINT")

pytestmark = pytest.mark.skipif(
    not S3 and os.environ.get("CI") != "true",
    reason="S3_TEST_ENDPOINT is not set (start moto_server and create the bucket)")

TOPIC = "history"
POLL_MS = 1000


def value(i):
    return f"value-{i:07d}-".encode() + b"h" * (150 + i % 50)


def produce(b, start, n):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.addr, "acks": "all", "linger.ms": 5,
                  "batch.size": 8192})
    for i in range(start, start + n):
        p.produce(TOPIC, value(i), key=f"k{i}".encode(), partition=0)
        p.poll(0)
    assert p.flush(30) == 0


def remote_end(b, at_least, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        end = tier_status(b, TOPIC).get("REMOTE-END", "")
        if end.isdigit() and int(end) >= at_least:
            return int(end)
        time.sleep(0.2)
    raise AssertionError(f"not tiered up to {at_least}:\n{b.log()[-4000:]}")


def read(consumer, start, until, deadline, reader):
    nxt = start
    while nxt < until:
        assert time.time() < deadline, f"read up to {nxt} of {until}:\n{reader.log()[-4000:]}"
        m = consumer.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        assert m.offset() == nxt
        assert m.value() == value(nxt)
        nxt += 1


def test_a_reader_serves_history_and_follows_uploads(make_broker):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
    s = settings("py-readonly")
    b = make_broker(s)
    admin = AdminClient({"bootstrap.servers": b.addr})
    admin.create_topics([NewTopic(
        TOPIC, 1, 1, config={"remote.storage.enable": "true", "segment.bytes": "32768",
                             "local.retention.bytes": "65536"})])[TOPIC].result(15)
    produce(b, 0, 3000)
    end = remote_end(b, 2000)

    reader = make_broker({
        **{k: v for k, v in s.items() if k.startswith("remote.")},
        "process.roles": "reader",
        "node.id": 7,
        "remote.log.manifest.poll.interval.ms": POLL_MS,
    })
    c = Consumer({"bootstrap.servers": reader.addr, "group.id": "history-readers",
                  "enable.auto.commit": False, "auto.offset.reset": "error"})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    read(c, 0, end, time.time() + 90, reader)
    assert [p.name for p in reader.data.iterdir() if p.name != "remote-cache"] == []

    md = c.list_topics(TOPIC, timeout=10)
    assert list(md.brokers) == [7]
    assert md.topics[TOPIC].partitions[0].leader == 7

    produce(b, 3000, 2000)
    later = remote_end(b, end + 1000)
    uploaded = time.time()
    read(c, end, later, uploaded + POLL_MS / 1000 + 4, reader)
    c.close()

    p = Producer({"bootstrap.servers": reader.addr, "message.timeout.ms": 3000})
    errors = []
    p.produce(TOPIC, b"x", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None, errors
