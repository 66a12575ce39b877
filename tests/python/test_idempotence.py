"""Idempotent producers (confluent-kafka and kafka-python 3 defaults) while the broker is
killed with kill -9 and restarted on the same port: the log ends with every value
0..N-1 exactly once, in order."""

import struct
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer

N = 20000
KILLS = (N // 3, 2 * N // 3)


def create(b, name):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic(name, 1, 1)])[name].result(15)


def consume_values(b, topic, count, timeout=60):
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.time() + timeout
    while len(out) < count + 1 and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if len(out) >= count:
                break
            continue
        assert m.error() is None, m.error()
        out.append(int(m.value()))
    c.close()
    return out


def batch_producer_ids(b, topic):
    """The producer id of every batch in the partition's segment files."""
    ids = []
    for seg in sorted((b.data / f"{topic}-0").glob("*.log")):
        data, pos = seg.read_bytes(), 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            (producer_id,) = struct.unpack_from(">q", data, pos + 43)
            ids.append(producer_id)
            pos += 12 + length
    return ids


def kill_when(broker, delivered, errors):
    """A thread that kill -9s and restarts the broker (same port) once each of KILLS
    records is acknowledged, so requests are in flight when it dies."""
    def run():
        try:
            for k in KILLS:
                deadline = time.time() + 120
                while delivered() < k and time.time() < deadline:
                    time.sleep(0.001)
                broker.restart_same_port()
        except Exception as e:  # surfaced by the test
            errors.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_confluent_idempotent_producer_survives_kill9(broker):
    create(broker, "idem-ck")
    p = Producer({"bootstrap.servers": broker.addr, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 1, "batch.num.messages": 50, "message.timeout.ms": 120000,
                  "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200, "retry.backoff.ms": 20})
    errors, acked = [], [0]

    def on_delivery(err, _msg):
        if err:
            errors.append(err)
        else:
            acked[0] += 1

    killer = kill_when(broker, lambda: acked[0], errors)
    for i in range(N):
        while True:
            try:
                p.produce("idem-ck", value=str(i).encode(), partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(180) == 0
    killer.join(180)
    assert errors == []
    assert broker.proc.poll() is None
    assert consume_values(broker, "idem-ck", N) == list(range(N))
    ids = batch_producer_ids(broker, "idem-ck")
    assert ids and all(i >= 0 for i in ids), "every batch came from an idempotent producer"


def test_kafka_python_default_idempotent_producer_survives_kill9(broker):
    create(broker, "idem-kp")
    p = KafkaProducer(bootstrap_servers=broker.addr, acks="all", linger_ms=1, batch_size=2048,
                      reconnect_backoff_ms=20, reconnect_backoff_max_ms=200, retry_backoff_ms=20)
    errors, acked = [], [0]

    def ok(_):
        acked[0] += 1

    killer = kill_when(broker, lambda: acked[0], errors)
    futures = [p.send("idem-kp", value=str(i).encode(), partition=0).add_callback(ok) for i in range(N)]
    for f in futures:
        f.get(timeout=180)
    p.close()
    killer.join(180)
    assert errors == []
    assert consume_values(broker, "idem-kp", N) == list(range(N))
    ids = batch_producer_ids(broker, "idem-kp")
    assert ids and all(i >= 0 for i in ids), "kafka-python 3 is idempotent by default"
