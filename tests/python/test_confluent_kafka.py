"""Python confluent-kafka (librdkafka) against Strata: produce/consume every codec and
acks level, seek by offset and timestamp, and the admin APIs."""

import time

import pytest
from confluent_kafka import Consumer, KafkaException, OFFSET_BEGINNING, OFFSET_END, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                   NewTopic)
from confluent_kafka.error import KafkaError

N = 200


def admin(b):
    return AdminClient({"bootstrap.servers": b.addr})


def create(b, name, partitions=1, config=None):
    a = admin(b)  # keep the client alive until the future resolves
    fs = a.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    fs[name].result(15)


def consume(b, topic, partition, offset, count, timeout=30):
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, partition, offset)])
    out, deadline = [], time.time() + timeout
    while len(out) < count and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_consume_codecs_and_acks(broker, codec, acks):
    topic = f"ck-{codec}-{acks}"
    create(broker, topic)
    p = Producer({"bootstrap.servers": broker.addr, "compression.type": codec, "acks": acks, "linger.ms": 10})
    errors = []
    for i in range(N):
        p.produce(topic, key=f"k{i}", value=f"v{i}" * (1 + i % 5), partition=0,
                  headers=[("h", f"x{i}".encode())], on_delivery=lambda e, m: e and errors.append(e))
    assert p.flush(30) == 0
    assert errors == []
    got = consume(broker, topic, 0, OFFSET_BEGINNING, N)
    assert [m.offset() for m in got] == list(range(N))
    for i, m in enumerate(got):
        assert m.key() == f"k{i}".encode()
        assert m.value() == (f"v{i}" * (1 + i % 5)).encode()
        assert m.headers() == [("h", f"x{i}".encode())]


def test_seek_by_offset_timestamp_and_end(broker):
    create(broker, "seek", 1)
    p = Producer({"bootstrap.servers": broker.addr})
    base = 1_700_000_000_000
    for i in range(50):
        p.produce("seek", value=f"v{i}", partition=0, timestamp=base + i * 10)
    p.flush(30)
    assert [m.offset() for m in consume(broker, "seek", 0, 20, 3)] == [20, 21, 22]
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "unused"})
    found = c.offsets_for_times([TopicPartition("seek", 0, base + 255)], 10)
    assert found[0].offset == 26
    low, high = c.get_watermark_offsets(TopicPartition("seek", 0), 10)
    assert (low, high) == (0, 50)
    c.close()
    assert consume(broker, "seek", 0, OFFSET_END, 1, timeout=3) == []


def test_admin_apis(broker):
    a = admin(broker)
    fs = a.create_topics([NewTopic("adm", 2, 1, config={"cleanup.policy": "delete"})], validate_only=True)
    fs["adm"].result(15)
    assert "adm" not in a.list_topics(timeout=10).topics
    create(broker, "adm", 2, {"retention.ms": "86400000"})
    md = a.list_topics(timeout=10)
    assert len(md.topics["adm"].partitions) == 2

    with pytest.raises(KafkaException) as e:
        create(broker, "adm", 2)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    res = ConfigResource(ConfigResource.Type.TOPIC, "adm")
    configs = a.describe_configs([res])[res].result(15)
    assert configs["retention.ms"].value == "86400000"
    assert configs["segment.bytes"].is_default

    inc = ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([inc])[inc].result(15)
    configs = a.describe_configs([res])[res].result(15)
    assert configs["retention.ms"].value == "1000"
    assert configs["max.message.bytes"].value == "2048"
    inc = ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([inc])[inc].result(15)
    assert a.describe_configs([res])[res].result(15)["max.message.bytes"].is_default

    bad = ConfigResource(ConfigResource.Type.TOPIC, "adm", incremental_configs=[
        ConfigEntry("retention.ms", "never", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(15)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG

    broker_res = ConfigResource(ConfigResource.Type.BROKER, "1")
    bc = a.describe_configs([broker_res])[broker_res].result(15)
    assert bc["num.partitions"].value == "1"
    dyn = ConfigResource(ConfigResource.Type.BROKER, "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([dyn])[dyn].result(15)
    tc = a.describe_configs([res])[res].result(15)
    assert tc["retention.ms"].value == "1000", "topic override beats the broker default"

    a.create_partitions([NewPartitions("adm", 5)])["adm"].result(15)
    assert len(a.list_topics(timeout=10).topics["adm"].partitions) == 5

    p = Producer({"bootstrap.servers": broker.addr})
    for i in range(30):
        p.produce("adm", value=b"x", partition=1)
    p.flush(15)
    deleted = a.delete_records([TopicPartition("adm", 1, 10)])
    r = list(deleted.values())[0].result(15)
    assert r.low_watermark == 10

    cluster = a.describe_cluster().result(15)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1

    a.delete_topics(["adm"])["adm"].result(15)
    deadline = time.time() + 10
    while "adm" in a.list_topics(timeout=10).topics and time.time() < deadline:
        time.sleep(0.1)
    assert "adm" not in a.list_topics(timeout=10).topics
