"""Client quotas with real clients (confluent-kafka): quotas set with `strata quota`
(AlterClientQuotas) hold a producer and a consumer to their byte rates while another
client on the same broker runs unthrottled, the throttle shows in librdkafka's statistics
and in the broker's metrics, and topic creation beyond `controller_mutation_rate` gets
THROTTLING_QUOTA_EXCEEDED. Ratios are compared within one run, never absolute times."""

import json
import os
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KNewTopic
from kafka.errors import ThrottlingQuotaExceededError

from conftest import BINARY

SECS = int(os.environ.get("QUOTA_TEST_SECS", "20"))
VALUE = b"q" * 1000


def strata_quota(broker, *args):
    out = subprocess.run([str(BINARY), "quota", "-b", broker.addr, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def create(broker, topic, partitions=1):
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


class Stats:
    """The largest broker throttle librdkafka reported in its statistics."""

    def __init__(self):
        self.max_throttle = 0

    def __call__(self, raw):
        for b in json.loads(raw).get("brokers", {}).values():
            self.max_throttle = max(self.max_throttle, b.get("throttle", {}).get("max", 0))


def produce_for(broker, topic, client_id, secs, warmup=0):
    """Produces as fast as the client may for `warmup + secs`; answers the bytes
    acknowledged during the last `secs`, and the client's statistics."""
    stats = Stats()
    p = Producer({"bootstrap.servers": broker.addr, "client.id": client_id, "linger.ms": 5,
                  "statistics.interval.ms": 500, "stats_cb": stats, "acks": 1,
                  "queue.buffering.max.kbytes": 4096,
                  # Requests of at most 64 KiB: the quota is measured in requests, and
                  # 1 MB ones would make 20 s of 256 KiB/s only five of them.
                  "batch.size": 65536})
    acked = [0]

    def done(err, msg):
        if err is None:
            acked[0] += len(msg.value())

    start = time.time()
    measured_from, from_bytes = start + warmup, None
    while time.time() < measured_from + secs:
        if from_bytes is None and time.time() >= measured_from:
            from_bytes = acked[0]
        try:
            p.produce(topic, VALUE, on_delivery=done)
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    in_time = acked[0] - (from_bytes or 0)
    # What is still queued does not count: drop it rather than wait out the throttle.
    p.purge()
    p.flush(30)
    p.poll(1)
    return in_time, stats


def throttle_metric(broker, client_id):
    text = urllib.request.urlopen(f"http://{broker.metrics_addr}/metrics", timeout=10).read().decode()
    return [line for line in text.splitlines()
            if line.startswith("strata_client_quota_throttle") and f'client_id="{client_id}"' in line]


def test_a_producer_is_held_to_its_byte_rate_and_others_are_not(broker):
    topic = f"quota-{uuid.uuid4().hex[:8]}"
    create(broker, topic)
    quota = 256 * 1024
    strata_quota(broker, "set", "--client-id", "noisy", f"producer_byte_rate={quota}")
    assert "producer_byte_rate=262144" in strata_quota(broker, "describe", "--client-id", "noisy")

    quiet = {}

    def run_quiet():
        quiet["bytes"], quiet["stats"] = produce_for(broker, topic, "quiet", SECS / 2)

    t = threading.Thread(target=run_quiet)
    t.start()
    # After a first window (Kafka's rate lets a new client send one window's worth at
    # once, 10 s of quota by default), the rate over the next SECS is the quota.
    noisy_bytes, noisy_stats = produce_for(broker, topic, "noisy", SECS, warmup=12)
    t.join(120)

    rate = noisy_bytes / SECS
    assert 0.9 * quota <= rate <= 1.1 * quota, f"{rate:.0f} B/s against a quota of {quota}"
    assert noisy_stats.max_throttle > 0, "librdkafka saw no throttle"
    quiet_rate = quiet["bytes"] / (SECS / 2)
    assert quiet_rate > 4 * quota, f"the unthrottled client made only {quiet_rate:.0f} B/s"
    assert quiet["stats"].max_throttle == 0
    assert throttle_metric(broker, "noisy"), "no throttle series for the noisy client"
    assert not throttle_metric(broker, "quiet")


def test_a_consumer_is_held_to_its_byte_rate(broker):
    topic = f"quota-{uuid.uuid4().hex[:8]}"
    create(broker, topic)
    quota = 300 * 1024
    secs = max(SECS * 3 // 4, 12)
    produce_for(broker, topic, "loader", 4)
    strata_quota(broker, "set", "--client-id", "reader", f"consumer_byte_rate={quota}")
    c = Consumer({"bootstrap.servers": broker.addr, "client.id": "reader", "group.id": topic,
                  "fetch.max.bytes": 1000000, "max.partition.fetch.bytes": 65536,
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, deadline = 0, time.time() + secs
    try:
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got += len(m.value())
    finally:
        c.close()
    rate = got / secs
    assert 0.8 * quota <= rate <= 1.15 * quota, f"{rate:.0f} B/s against a quota of {quota}"


def test_topic_creation_beyond_the_mutation_rate_is_refused(broker):
    strata_quota(broker, "set", "--default-client-id", "controller_mutation_rate=2")
    # kafka-python speaks CreateTopics v6+, which knows THROTTLING_QUOTA_EXCEEDED.
    admin = KafkaAdminClient(bootstrap_servers=broker.addr, client_id="strict-admin")
    # A bucket of 2/s over 11 windows of 1 s holds 22 partitions: 20, then 10 (admitted
    # while tokens remain, taking the bucket below zero), then nothing.
    base = uuid.uuid4().hex[:8]
    try:
        admin.create_topics([KNewTopic(f"m1-{base}", 20, 1)])
        admin.create_topics([KNewTopic(f"m2-{base}", 10, 1)])
        with pytest.raises(ThrottlingQuotaExceededError) as refused:
            admin.create_topics([KNewTopic(f"m3-{base}", 1, 1)])
        assert "controller_mutation_rate" in str(refused.value)
    finally:
        admin.close()
    # librdkafka speaks CreateTopics v4, before KIP-599: admitted, and throttled.
    confluent = AdminClient({"bootstrap.servers": broker.addr, "client.id": "old-admin"})
    assert f"m3-{base}" not in confluent.list_topics(timeout=10).topics
    for i in range(4):
        confluent.create_topics([NewTopic(f"o{i}-{base}", 10, 1)])[f"o{i}-{base}"].result(60)
    assert throttle_metric(broker, "old-admin")
    strata_quota(broker, "remove", "--default-client-id", "controller_mutation_rate")


def test_request_percentage_mutes_a_busy_client(broker):
    # 0.05% of one thread: a client gets about one Metadata request in every few
    # hundred milliseconds; an unlimited one is not slowed.
    strata_quota(broker, "set", "--client-id", "busy", "request_percentage=0.05")
    counts = {}

    def loop(client_id):
        admin = AdminClient({"bootstrap.servers": broker.addr, "client.id": client_id})
        n, deadline = 0, time.time() + 6
        while time.time() < deadline:
            admin.list_topics(timeout=10)
            n += 1
        counts[client_id] = n

    threads = [threading.Thread(target=loop, args=(c,)) for c in ("busy", "free")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counts["free"] > 3 * counts["busy"], counts
    assert throttle_metric(broker, "busy")


def test_bad_quota_requests_get_clear_errors(broker):
    out = subprocess.run([str(BINARY), "quota", "-b", broker.addr, "set", "--user", "a",
                          "producer_byte_rate=-5"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "positive" in out.stderr, out.stderr
    out = subprocess.run([str(BINARY), "quota", "-b", broker.addr, "set", "--user", "a",
                          "connection_creation_rate=5"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "invalid quota key" in out.stderr, out.stderr
    assert strata_quota(broker, "describe", "--user", "a") == ""
