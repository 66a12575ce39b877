"""kafka-python (a pure-Python client with its own protocol code) against Strata."""

import subprocess

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume(broker, codec):
    topic = f"kp-{codec or 'none'}"
    admin = KafkaAdminClient(bootstrap_servers=broker.addr)
    admin.create_topics([NewTopic(topic, 1, 1)])
    p = KafkaProducer(bootstrap_servers=broker.addr, compression_type=codec, acks=1)
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("h", b"1")], partition=0)
               for i in range(100)]
    offsets = [f.get(timeout=30).offset for f in futures]
    assert offsets == list(range(100))
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.addr, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append(m)
        if len(got) == 100:
            break
    assert [(m.offset, m.key, m.value, m.headers) for m in got] == \
        [(i, f"k{i}".encode(), f"v{i}".encode(), [("h", b"1")]) for i in range(100)]
    c.seek(tp, 40)
    assert next(c).offset == 40
    assert c.end_offsets([tp])[tp] == 100
    assert c.beginning_offsets([tp])[tp] == 0
    c.close()


def test_admin_log_dirs_and_auto_create(broker):
    # acks=1: the classic (non-idempotent) producer; tests/python/test_idempotence.py
    # covers kafka-python's default idempotent one.
    p = KafkaProducer(bootstrap_servers=broker.addr, acks=1)
    p.send("auto-topic", b"hello").get(timeout=30)
    p.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.addr)
    assert "auto-topic" in admin.list_topics()
    dirs = admin.describe_log_dirs()
    text = repr(dirs)
    assert "auto-topic" in text, text
    admin.delete_topics(["auto-topic"])


def test_kcat_metadata_and_round_trip(broker):
    kcat = subprocess.run(["kcat", "-b", broker.addr, "-L"], capture_output=True, text=True, timeout=60)
    assert kcat.returncode == 0, kcat.stderr
    assert "1 brokers:" in kcat.stdout
    produced = subprocess.run(["kcat", "-b", broker.addr, "-P", "-t", "kcat-topic", "-p", "0"],
                              input="one\ntwo\nthree\n", capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-b", broker.addr, "-C", "-t", "kcat-topic", "-p", "0", "-o", "beginning",
                               "-c", "3", "-e"], capture_output=True, text=True, timeout=60)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == ["one", "two", "three"]
