"""A topic's compression.type with a real client (confluent-kafka): whatever codec the
producer uses, the batches stored on disk carry the topic's codec (read from the segment
files), the records read back are the ones produced, idempotence survives the rewrite,
and `producer` keeps the producer's codec."""

import struct

import pytest
from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                  NewTopic)

CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 500


def stored_codecs(broker, topic):
    """The codec bits of every batch in the topic's partition-0 segment files."""
    codecs = []
    for path in sorted((broker.data / f"{topic}-0").glob("*.log")):
        data = path.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            codecs.append(attributes & 7)
            pos += 12 + length
    return codecs


def produce(broker, topic, codec):
    p = Producer({"bootstrap.servers": broker.addr, "compression.type": codec,
                  "enable.idempotence": True, "linger.ms": 20})
    errors = []
    for i in range(N):
        p.produce(topic, key=f"k{i}".encode(), value=(f"value-{i}-" * 20).encode(), partition=0,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0
    assert errors == [], errors


def read_all(broker, topic):
    c = Consumer({"bootstrap.servers": broker.addr, "group.id": "unused",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    try:
        while True:
            m = c.poll(10)
            assert m is not None, f"timed out after {len(got)} records"
            if m.error():
                break
            got.append((m.offset(), m.key(), m.value()))
    finally:
        c.close()
    return got


@pytest.mark.parametrize("topic_codec,producer_codec", [
    ("zstd", "none"), ("lz4", "gzip"), ("gzip", "snappy"), ("snappy", "zstd"),
    ("uncompressed", "lz4"), ("producer", "gzip"),
])
def test_stored_batches_carry_the_topic_codec(broker, topic_codec, producer_codec):
    topic = f"c-{topic_codec}-{producer_codec}"
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic(topic, 1, 1, config={"compression.type": topic_codec})])[
        topic].result(15)
    produce(broker, topic, producer_codec)
    got = read_all(broker, topic)
    assert [o for o, _, _ in got] == list(range(N))
    assert [v for _, _, v in got] == [(f"value-{i}-" * 20).encode() for i in range(N)]
    assert [k for _, k, _ in got] == [f"k{i}".encode() for i in range(N)]
    expected = CODECS.get(topic_codec, {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3,
                                        "zstd": 4}[producer_codec])
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {expected}, codecs


def test_changing_the_topic_codec_applies_to_new_batches(broker):
    topic = "c-altered"
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    produce(broker, topic, "none")
    before = len(stored_codecs(broker, topic))
    r = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(15)
    produce(broker, topic, "none")
    codecs = stored_codecs(broker, topic)
    assert set(codecs[:before]) == {0} and set(codecs[before:]) == {4}, codecs
    assert len(read_all(broker, topic)) == 2 * N
