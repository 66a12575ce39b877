"""message.timestamp.difference.max.ms with a real client (confluent-kafka): a record whose
CreateTime is further from the broker's clock than the topic allows gets INVALID_TIMESTAMP
and is not stored; records within it, and every record of a LogAppendTime topic, are."""

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
