"""Transactions with confluent-kafka (librdkafka): commit and abort, read_committed vs
read_uncommitted, fencing by a second producer with the same transactional.id, a
transaction left open past its timeout, and consume-transform-produce with
send_offsets_to_transaction while the broker is kill -9'd and restarted."""

import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(b, name, partitions=1):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(15)


def txn_producer(b, tid, **extra):
    conf = {"bootstrap.servers": b.addr, "transactional.id": tid,
            "transaction.timeout.ms": 60000, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read_all(b, topic, partitions, isolation, idle=3.0, timeout=60):
    """Every value in `topic` from offset 0 under `isolation`, until `idle` s pass
    without a message."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": f"read-{isolation}-{time.time()}",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, last, deadline = [], time.time(), time.time() + timeout
    while time.time() - last < idle and time.time() < deadline:
        for m in c.consume(500, 0.2):
            assert m.error() is None, m.error()
            out.append(m.value().decode())
            last = time.time()
    c.close()
    return out


def test_commit_and_abort_read_committed_and_uncommitted(broker):
    create(broker, "tx", 2)
    p = txn_producer(broker, "t-commit")
    for name, n, commit in (("a", 100, True), ("b", 60, False), ("c", 40, True)):
        p.begin_transaction()
        for i in range(n):
            p.produce("tx", value=f"{name}{i}", partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(30)  # abort_transaction purges what was not sent yet
            p.abort_transaction(30)
    committed = read_all(broker, "tx", 2, "read_committed")
    assert sorted(committed) == sorted([f"a{i}" for i in range(100)] + [f"c{i}" for i in range(40)])
    everything = read_all(broker, "tx", 2, "read_uncommitted")
    assert len(everything) == 200 and len(set(everything)) == 200


def test_a_second_producer_with_the_same_id_fences_the_first(broker):
    create(broker, "fence")
    first = txn_producer(broker, "t-fence")
    first.begin_transaction()
    first.produce("fence", value="zombie")
    first.flush(10)
    second = txn_producer(broker, "t-fence")  # aborts first's open transaction
    second.begin_transaction()
    second.produce("fence", value="winner")
    second.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        first.produce("fence", value="late")
        first.commit_transaction(10)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
    assert read_all(broker, "fence", 1, "read_committed") == ["winner"]
    assert sorted(read_all(broker, "fence", 1, "read_uncommitted")) == ["winner", "zombie"]


def lso(b, topic):
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "lso",
                  "isolation.level": "read_committed"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), 10, cached=False)
    c.close()
    return high


def test_a_transaction_open_past_its_timeout_is_aborted_and_the_lso_advances(make_broker):
    b = make_broker({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    create(b, "slow")
    p = txn_producer(b, "t-slow", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    for i in range(10):
        p.produce("slow", value=f"open{i}")
    p.flush(10)
    assert lso(b, "slow") == 0, "an open transaction holds the LSO"
    deadline = time.time() + 30
    while lso(b, "slow") < 11 and time.time() < deadline:  # 10 records + the ABORT marker
        time.sleep(0.2)
    assert lso(b, "slow") == 11
    assert read_all(b, "slow", 1, "read_committed", idle=1.0) == []
    with pytest.raises(KafkaException):
        p.commit_transaction(10)


N = 100_000
BATCH = 1000


def send_offsets(producer, positions, group_metadata):
    """send_offsets_to_transaction, bounded: librdkafka can wait forever, past its timeout,
    for a cached group coordinator that is reconnecting after a restart
    (confluentinc/librdkafka#5456, #5511). A stuck call counts as a failure; the caller
    then starts over with new clients, which fence the stuck producer."""
    failed = []

    def run():
        try:
            producer.send_offsets_to_transaction(positions, group_metadata, 30)
        except KafkaException as e:
            failed.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(40)
    if t.is_alive():
        raise KafkaException("send_offsets_to_transaction did not return (librdkafka#5456)")
    if failed:
        raise failed[0]


def test_consume_transform_produce_exactly_once_across_kill9(broker):
    create(broker, "ctp-in")
    create(broker, "ctp-out")
    src = Producer({"bootstrap.servers": broker.addr, "enable.idempotence": True, "linger.ms": 20})
    for i in range(N):
        src.produce("ctp-in", value=str(i))
        if i % 10000 == 0:
            src.poll(0)
    assert src.flush(60) == 0

    progress = {"committed": 0}
    kills = []

    def killer():
        for k in (N // 3, 2 * N // 3):
            deadline = time.time() + 300
            while progress["committed"] < k and time.time() < deadline:
                time.sleep(0.01)
            broker.restart_same_port()
            kills.append(k)

    t = threading.Thread(target=killer, daemon=True)
    t.start()

    def make_clients():
        c = Consumer({"bootstrap.servers": broker.addr, "group.id": "ctp",
                      "enable.auto.commit": False, "isolation.level": "read_committed",
                      "auto.offset.reset": "earliest"})
        c.assign([TopicPartition("ctp-in", 0)])
        p = Producer({"bootstrap.servers": broker.addr, "transactional.id": "ctp-app",
                      "transaction.timeout.ms": 10000, "linger.ms": 5})
        p.init_transactions(60)
        return c, p

    consumer, producer = None, None
    deadline = time.time() + 600
    done = 0
    while done < N and time.time() < deadline:
        try:
            if producer is None:
                consumer, producer = make_clients()
            msgs = [m for m in consumer.consume(BATCH, 1.0) if m.error() is None]
            if not msgs:
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce("ctp-out", value=b"out-" + m.value())
            positions = consumer.position(consumer.assignment())
            send_offsets(producer, positions, consumer.consumer_group_metadata())
            producer.commit_transaction(30)
            done = positions[0].offset
            progress["committed"] = done
        except KafkaException:
            # The broker went away mid-transaction: start over from the committed
            # offsets with a new producer, which fences and aborts the old one.
            try:
                consumer.close()
            except Exception:
                pass
            consumer, producer = None, None
            time.sleep(0.5)
    t.join(300)
    assert kills == [N // 3, 2 * N // 3], "the broker was killed twice"
    assert done == N
    out = read_all(broker, "ctp-out", 1, "read_committed", idle=5.0, timeout=300)
    values = sorted(int(v[4:]) for v in out)
    assert len(values) == N, f"{len(values)} outputs for {N} inputs"
    assert values == list(range(N)), "every input exactly once"


def test_describe_producers_shows_an_open_transaction(broker):
    """kafka-python's describe_producers (DescribeProducers, what kafka-transactions.sh
    find-hanging uses): the open transaction's first offset, then none after the commit."""
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    create(broker, "dp")
    plain = Producer({"bootstrap.servers": broker.addr, "enable.idempotence": True})
    for i in range(3):
        plain.produce("dp", value=f"p{i}", partition=0)
    plain.flush(30)
    p = txn_producer(broker, "t-dp")
    p.begin_transaction()
    for i in range(2):
        p.produce("dp", value=f"t{i}", partition=0)
    p.flush(30)
    admin = KafkaAdminClient(bootstrap_servers=broker.addr)
    tp = KTP("dp", 0)

    def producers():
        return sorted(admin.describe_producers([tp])[tp].active_producers,
                      key=lambda s: s.current_transaction_start_offset)

    idem, txn = producers()
    assert (idem.last_sequence, idem.current_transaction_start_offset) == (2, -1), idem
    assert (txn.last_sequence, txn.current_transaction_start_offset) == (1, 3), txn
    p.commit_transaction(30)
    deadline = time.time() + 20
    while time.time() < deadline:
        states = producers()
        if all(s.current_transaction_start_offset == -1 for s in states):
            break
        time.sleep(0.2)
    assert [s.current_transaction_start_offset for s in states] == [-1, -1]
    assert max(s.coordinator_epoch for s in states) >= 0
    admin.close()
