"""A 3-node cluster with real clients: an idempotent acks=all producer and a consumer group of
two members, while the leader of partition 0 (and, when it can be arranged, the group's
coordinator) is killed with SIGKILL mid-stream and started again.

At-least-once: every record the producer saw acknowledged is consumed by the group (records
whose delivery failed may or may not be there, duplicates are allowed), and the group goes on
consuming after the failover. Each run is bounded: 5000 records, every wait has a deadline."""

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from group_helpers import KAFKA_PYTHON_GROUP_POLL_MS

N = 5000
PARTITIONS = 4
TOPIC = "c-failover"


def create_replicated(cluster, topic):
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    t = NewTopic(topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    a.create_topics([t])[topic].result(30)
    return cluster.wait_for_isr(topic, 3, timeout=30)


def coordinator_of(cluster, group):
    """The group's coordinator (node id) as DescribeGroups reports it, or None."""
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    try:
        d = a.describe_consumer_groups([group], request_timeout=10)[group].result(15)
        return d.coordinator.id
    except Exception:  # noqa: BLE001 - e.g. COORDINATOR_LOAD_IN_PROGRESS: no preference then
        return None


def group_members(cluster, group):
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    try:
        return len(a.describe_consumer_groups([group], request_timeout=10)[group].result(15).members)
    except Exception:  # noqa: BLE001 - a node may be down or loading the group
        return -1


def new_leader(cluster, old):
    """The leader of partition 0 if it is not `old`, else None."""
    try:
        leader = cluster.partitions(TOPIC)[0][0]
    except Exception:  # noqa: BLE001 - asked a node that is down
        return None
    return leader if leader not in (old, -1) else None


def pick_group(cluster, node, prefix):
    """A group id whose coordinator is `node`, so the kill takes the coordinator down too
    (bounded: 30 candidates; falls back to the first one)."""
    for i in range(30):
        g = f"{prefix}-{i}"
        if coordinator_of(cluster, g) == node:
            return g, True
    return f"{prefix}-0", False


class Consumed:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = set()
        self.count = 0
        self.per_member = {}
        self.errors = []

    def add(self, member, values):
        with self.lock:
            self.values.update(values)
            self.count += len(values)
            self.per_member[member] = self.per_member.get(member, 0) + len(values)

    def retried(self, member, error):
        with self.lock:
            self.errors.append((member, repr(error)))

    def snapshot(self):
        with self.lock:
            return set(self.values), dict(self.per_member)


# --- confluent-kafka (librdkafka) ---------------------------------------------------------

class ConfluentClients:
    name = "confluent"

    def producer(self, bootstrap, on_ack):
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 60000})

        def cb(err, msg):
            if err is None:
                on_ack(msg.value().decode())

        def close():
            p.flush(10)
            # librdkafka's handle goes with the last reference: drop ours so no client of this
            # test keeps reconnecting to ports a later test's cluster may get.
            holder.clear()

        holder = [p]
        return lambda v: holder[0].produce(TOPIC, key=v.encode(), value=v.encode(), on_delivery=cb), \
            lambda: holder[0].poll(0), lambda t: holder[0].flush(t), close

    def consume_loop(self, bootstrap, group, member, consumed, stop):
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                      "enable.auto.commit": True, "auto.commit.interval.ms": 500,
                      "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        c.subscribe([TOPIC])
        try:
            while not stop.is_set():
                msgs = c.consume(num_messages=200, timeout=0.2)
                vals = [m.value().decode() for m in msgs if m.error() is None]
                if vals:
                    consumed.add(member, vals)
        finally:
            c.close()


# --- kafka-python -------------------------------------------------------------------------

class KafkaPythonClients:
    name = "kafka-python"

    def producer(self, bootstrap, on_ack):
        from kafka import KafkaProducer
        p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=True,
                          linger_ms=5, retries=2**31 - 1, delivery_timeout_ms=60000, request_timeout_ms=5000,
                          metadata_max_age_ms=2000)

        def send(v):
            f = p.send(TOPIC, key=v.encode(), value=v.encode())
            f.add_callback(lambda _md: on_ack(v))

        def flush(t):
            p.flush(t)
            return 0

        return send, lambda: None, flush, lambda: p.close(timeout=10)

    def consume_loop(self, bootstrap, group, member, consumed, stop):
        from kafka import KafkaConsumer
        c = KafkaConsumer(TOPIC, bootstrap_servers=bootstrap.split(","), group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=True,
                          auto_commit_interval_ms=500, session_timeout_ms=6000, heartbeat_interval_ms=500,
                          request_timeout_ms=10000, metadata_max_age_ms=2000)
        from kafka.errors import KafkaError
        try:
            while not stop.is_set():
                try:
                    batch = c.poll(timeout_ms=KAFKA_PYTHON_GROUP_POLL_MS, max_records=200)
                except KafkaError as e:
                    # kafka-python raises some transient errors from poll, e.g.
                    # UnknownBrokerIdError while its fetch targets the fenced broker, which
                    # Metadata no longer lists; an application polls again.
                    consumed.retried(member, e)
                    time.sleep(0.2)
                    continue
                vals = [r.value.decode() for recs in batch.values() for r in recs]
                if vals:
                    consumed.add(member, vals)
        finally:
            c.close()


def wait_until(cond, timeout, what, cluster):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{cluster.logs()}")
        time.sleep(0.1)


@pytest.mark.parametrize("clients", [ConfluentClients(), KafkaPythonClients()], ids=lambda c: c.name)
def test_group_consumes_every_acked_record_across_a_leader_kill(cluster, clients):
    parts = create_replicated(cluster, TOPIC)
    victim = parts[0][0]
    group, coordinator_too = pick_group(cluster, victim, f"grp-{clients.name}")

    consumed = Consumed()
    stop = threading.Event()
    errors = []

    def member(i):
        try:
            clients.consume_loop(cluster.bootstrap, group, i, consumed, stop)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    members = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for m in members:
        m.start()

    acked = set()
    acked_lock = threading.Lock()

    def on_ack(v):
        with acked_lock:
            acked.add(v)

    send, poll, flush, close_producer = clients.producer(cluster.bootstrap, on_ack)
    killed_at = restarted_at = moved_to = None
    try:
        # Both members take part before the records flow.
        wait_until(lambda: group_members(cluster, group) == 2, 30, "two members in the group", cluster)
        for i in range(N):
            send(f"v{i}")
            poll()
            if i % 50 == 49:
                time.sleep(0.1)  # ~10 s of producing in all, so the kill lands mid-stream
            if i == N // 2:
                cluster.kill(victim)
                killed_at = i
            if i == 3 * N // 4:
                # The survivors fence the victim and elect a new leader before it comes back.
                wait_until(lambda: new_leader(cluster, victim) is not None, 30,
                           f"a new leader of {TOPIC}-0 after killing node {victim}", cluster)
                moved_to = new_leader(cluster, victim)
                cluster.start(victim)
                restarted_at = i
        assert flush(90) == 0, "records still unacknowledged after 90 s"

        with acked_lock:
            acked_now = set(acked)
        assert len(acked_now) > N // 2, f"only {len(acked_now)} of {N} records acknowledged"
        # At-least-once: every acknowledged record reaches the group.
        wait_until(lambda: acked_now <= consumed.snapshot()[0], 60,
                   "the group to consume every acknowledged record", cluster)
        # The group carries on after the failover: records sent after the restart are consumed,
        # and both members are still in it.
        late = {f"v{i}" for i in range(restarted_at + 1, N)} & acked_now
        assert late and late <= consumed.snapshot()[0]
        assert not errors, errors
        assert all(m.is_alive() for m in members), "a consumer thread died"
        wait_until(lambda: group_members(cluster, group) == 2, 30,
                   f"two members in the group (last seen: {group_members(cluster, group)})", cluster)
    finally:
        stop.set()
        for m in members:
            m.join(30)
        close_producer()
    values, per_member = consumed.snapshot()
    print(f"{clients.name}: killed node {victim} (coordinator too: {coordinator_too}) after record "
          f"{killed_at}, leader moved to {moved_to}, restarted after {restarted_at}; {len(acked_now)} acknowledged, "
          f"{len(values)} distinct consumed ({consumed.count} with duplicates), per member {per_member}; "
          f"poll errors retried: {consumed.errors}")
