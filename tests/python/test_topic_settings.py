"""Topic settings with a real client (confluent-kafka): message.timestamp.difference.max.ms
(a record whose CreateTime is further from the broker's clock than the topic allows gets
INVALID_TIMESTAMP and is not stored; records within it, and every record of a
LogAppendTime topic, are), and Kafka 3's deprecated settings accepted with a warning."""

import time

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def send(broker, topic, timestamp_ms):
    p = Producer({"bootstrap.servers": broker.addr, "linger.ms": 0, "retries": 0})
    result = []
    p.produce(topic, value=b"v", partition=0, timestamp=timestamp_ms,
              on_delivery=lambda err, msg: result.append((err, msg)))
    assert p.flush(30) == 0
    return result[0]


def test_timestamps_outside_the_window_are_refused(broker):
    admin = AdminClient({"bootstrap.servers": broker.addr})
    topics = {"ts-create": {"message.timestamp.difference.max.ms": "60000"},
              "ts-append": {"message.timestamp.difference.max.ms": "60000",
                            "message.timestamp.type": "LogAppendTime"}}
    for name, config in topics.items():
        admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(15)
    now = int(time.time() * 1000)

    for ts in (now - 3_600_000, now + 3_600_000):
        err, _ = send(broker, "ts-create", ts)
        assert err is not None and err.code() == KafkaError.INVALID_TIMESTAMP, err
    err, msg = send(broker, "ts-create", now - 30_000)
    assert err is None and msg.offset() == 0, err

    err, msg = send(broker, "ts-append", now - 3_600_000)
    assert err is None and msg.offset() == 0, err


def test_kafka_3_deprecated_settings_are_accepted_with_a_warning(broker):
    """Tools written for Kafka 3.x set message.format.version; Kafka 3.9 accepts and
    ignores it, and so does Strata, with a warning in the log."""
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource)
    admin = AdminClient({"bootstrap.servers": broker.addr})
    admin.create_topics([NewTopic("old-tool", 1, 1, config={
        "message.format.version": "2.8-IV1", "message.downconversion.enable": "false"})])[
        "old-tool"].result(15)
    r = ConfigResource(ConfigResource.Type.TOPIC, "old-tool", incremental_configs=[
        ConfigEntry("message.format.version", "3.0-IV1",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([r])[r].result(15)
    err, msg = send(broker, "old-tool", int(time.time() * 1000))
    assert err is None and msg.offset() == 0, err
    assert "deprecated topic config accepted and ignored" in broker.log()
