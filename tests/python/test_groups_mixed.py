"""Kafka 4's online migration (KIP-848) with confluent-kafka: a classic group with
members converts to a consumer group when a `group.protocol=consumer` member joins (the
classic members stay, served through JoinGroup/SyncGroup/Heartbeat with the broker's
assignment), and back to a classic group when that member leaves. The group type is
checked at each step (ConsumerGroupDescribe / DescribeGroups through the AdminClient,
and `strata group describe`); every partition is owned once at each settled step, and
every record is consumed exactly once with synchronous commits across both conversions.

librdkafka 2.12 classic members use the default eager assignors (range, roundrobin):
they revoke everything before rejoining, so the broker hands the consumer member the
freed partitions after their rejoin."""

import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BINARY
from group_helpers import Seen, create_topic, expected_pairs, fixed_port_broker, produce_keyed, wait_until

PARTITIONS = 6
PHASE = 900

BROKER = {
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 500,
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 6000,
    "group.initial.rebalance.delay.ms": 0,
}

GONE = {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS,
        getattr(KafkaError, "FENCED_MEMBER_EPOCH", 110), getattr(KafkaError, "STALE_MEMBER_EPOCH", 113)}


class Member(threading.Thread):
    """A consumer of either protocol that commits each poll batch synchronously; a batch
    whose commit is refused (the membership moved on) is not counted and is re-read by
    the partition's next owner from the committed offsets."""

    def __init__(self, addr, group, topic, seen, protocol):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": addr, "group.id": group, "group.protocol": protocol,
                "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        if protocol == "classic":
            conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        self.protocol = protocol
        self.consumer = Consumer(conf)
        self.topic, self.seen = topic, seen
        self.assigned = set()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.consumed = 0
        self.dropped_batches = 0
        self.errors = []

    def on_assign(self, consumer, parts):
        if self.protocol == "classic":
            self.assigned = {(p.topic, p.partition) for p in parts}  # eager: the whole set
        else:
            self.assigned |= {(p.topic, p.partition) for p in parts}

    def on_revoke(self, consumer, parts):
        self.assigned -= {(p.topic, p.partition) for p in parts}

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stopping.is_set():
            msgs = self.consumer.consume(num_messages=20, timeout=0.3)
            self.errors += [m.error() for m in msgs if m.error() is not None]
            batch = [m for m in msgs if m.error() is None]
            if not batch:
                continue
            time.sleep(0.05)
            latest, first = {}, {}
            for m in batch:
                latest[(m.topic(), m.partition())] = m.offset() + 1
                first.setdefault((m.topic(), m.partition()), m.offset())
            if not self.commit([TopicPartition(t, p, o) for (t, p), o in latest.items()]):
                for (t, p), o in first.items():
                    try:
                        self.consumer.seek(TopicPartition(t, p, o))
                    except KafkaException:
                        pass
                self.dropped_batches += 1
                continue
            self.seen.add((m.topic(), m.partition(), m.offset()) for m in batch)
            self.consumed += len(batch)
        self.stopped.set()

    def commit(self, offsets):
        for _ in range(100):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                return True
            except KafkaException as e:
                if e.args[0].code() in GONE:
                    return False
                time.sleep(0.2)
        raise AssertionError("commit kept failing")

    def stop(self):
        self.stopping.set()
        self.stopped.wait(30)
        self.consumer.close()


def cli_describe(addr, group):
    out = subprocess.run([str(BINARY), "group", "describe", group, "-b", addr],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def member_ids(described):
    return sorted(ln.split("\t")[1] for ln in described.splitlines() if ln.startswith("\tMember: "))


def settled(members):
    """Every live member owns partitions, each of the 6 exactly once."""
    owned = [p for m in members for p in m.assigned]
    return all(m.assigned for m in members) and len(owned) == len(set(owned)) == PARTITIONS


def group_type(admin, group):
    return admin.describe_consumer_groups([group])[group].result(15)


@pytest.fixture
def mixed_broker(make_broker):
    return fixed_port_broker(make_broker, **BROKER)


def test_classic_group_converts_to_consumer_and_back_while_consuming(mixed_broker):
    b = mixed_broker
    topic, group = "mixed-migrate", "grp-mixed-migrate"
    create_topic(b.addr, topic, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": b.addr})
    seen = Seen()
    produce_keyed(b.addr, topic, PHASE)
    classic = [Member(b.addr, group, topic, seen, "classic") for _ in range(2)]
    for m in classic:
        m.start()
    newcomer = None
    try:
        # 1. A classic group of two.
        wait_until(lambda: seen.count() >= PHASE and settled(classic), 60, "the classic group to consume", log=b.log)
        d = group_type(admin, group)
        assert d.type == ConsumerGroupType.CLASSIC and len(d.members) == 2
        assert "ProtocolType: consumer" in cli_describe(b.addr, group)

        # 2. A consumer-protocol member joins: online upgrade, classic members stay.
        newcomer = Member(b.addr, group, topic, seen, "consumer")
        newcomer.start()
        produce_keyed(b.addr, topic, PHASE)
        members = classic + [newcomer]
        wait_until(lambda: seen.count() >= 2 * PHASE and newcomer.consumed > 0 and settled(members), 90,
                   "the mixed group to settle and consume", log=b.log)
        d = group_type(admin, group)
        assert d.type == ConsumerGroupType.CONSUMER and len(d.members) == 3
        described = sorted((tp.topic, tp.partition) for mem in d.members for tp in mem.assignment.topic_partitions)
        assert described == [(topic, p) for p in range(PARTITIONS)]
        out = cli_describe(b.addr, group)
        assert "Type: consumer" in out, out
        assert out.count("Protocol: classic") == 2 and out.count("Protocol: consumer") == 1, out
        assert "converted the classic group to a consumer group" in b.log()

        # 3. The consumer-protocol member leaves: online downgrade, the classic members
        #    rebalance among themselves and consume the rest.
        newcomer.stop()
        produce_keyed(b.addr, topic, PHASE)
        wait_until(lambda: seen.count() >= 3 * PHASE and settled(classic), 90,
                   "the classic group to take everything back", log=b.log)
        d = group_type(admin, group)
        assert d.type == ConsumerGroupType.CLASSIC and len(d.members) == 2
        assert "ProtocolType: consumer" in cli_describe(b.addr, group)
        assert "converted the consumer group to a classic group" in b.log()
        time.sleep(1)  # a duplicate delivered late would show up here
    finally:
        for m in classic:
            m.stop()
        if newcomer is not None and not newcomer.stopped.is_set():
            newcomer.stop()
    seen.assert_exactly({(topic, p, o) for p, o in expected_pairs(b.addr, topic, PARTITIONS)})
    assert not [e for m in classic + [newcomer] for e in m.errors if e.fatal()]


def test_mixed_group_survives_a_broker_restart(mixed_broker):
    # The converted group's records (ClassicMemberMetadata included) are in
    # __consumer_offsets: after kill -9 the classic members keep heartbeating in the
    # consumer group, and every record is still consumed exactly once.
    b = mixed_broker
    topic, group = "mixed-restart", "grp-mixed-restart"
    create_topic(b.addr, topic, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": b.addr})
    seen = Seen()
    produce_keyed(b.addr, topic, PHASE)
    classic = [Member(b.addr, group, topic, seen, "classic") for _ in range(2)]
    for m in classic:
        m.start()
    newcomer = Member(b.addr, group, topic, seen, "consumer")
    members = classic + [newcomer]
    try:
        wait_until(lambda: seen.count() >= PHASE // 3 and settled(classic), 60, "the classic group", log=b.log)
        newcomer.start()
        produce_keyed(b.addr, topic, PHASE)
        wait_until(lambda: newcomer.consumed > 0 and settled(members), 90, "the mixed group", log=b.log)
        before = cli_describe(b.addr, group)
        b.kill()
        b.start()
        produce_keyed(b.addr, topic, PHASE)
        wait_until(lambda: seen.count() >= 3 * PHASE and settled(members), 120, "every record after the restart",
                   log=b.log)
        d = group_type(admin, group)
        assert d.type == ConsumerGroupType.CONSUMER and len(d.members) == 3, before
        out = cli_describe(b.addr, group)
        assert out.count("Protocol: classic") == 2, (before, out)
        assert member_ids(out) == member_ids(before), "the members kept their ids: nobody rejoined anew"
        time.sleep(1)
    finally:
        for m in members:
            if m.is_alive() or m is not newcomer:
                m.stop()
    seen.assert_exactly({(topic, p, o) for p, o in expected_pairs(b.addr, topic, PARTITIONS)})


def test_upgrade_only_policy_keeps_the_consumer_group_after_the_last_consumer_member_leaves(make_broker):
    # group.consumer.migration.policy=upgrade: the group upgrades but never goes back;
    # its classic members go on inside the consumer group.
    b = fixed_port_broker(make_broker, **BROKER, **{"group.consumer.migration.policy": "upgrade"})
    topic, group = "mixed-upgrade-only", "grp-mixed-upgrade-only"
    create_topic(b.addr, topic, PARTITIONS)
    admin = AdminClient({"bootstrap.servers": b.addr})
    seen = Seen()
    produce_keyed(b.addr, topic, PHASE)
    classic = [Member(b.addr, group, topic, seen, "classic") for _ in range(2)]
    for m in classic:
        m.start()
    newcomer = Member(b.addr, group, topic, seen, "consumer")
    try:
        wait_until(lambda: seen.count() >= PHASE // 3 and settled(classic), 60, "the classic group", log=b.log)
        newcomer.start()
        produce_keyed(b.addr, topic, PHASE)
        wait_until(lambda: newcomer.consumed > 0 and settled(classic + [newcomer]), 90, "the mixed group",
                   log=b.log)
        newcomer.stop()
        produce_keyed(b.addr, topic, PHASE)
        wait_until(lambda: seen.count() >= 3 * PHASE and settled(classic), 90,
                   "the classic members to take everything", log=b.log)
        d = group_type(admin, group)
        assert d.type == ConsumerGroupType.CONSUMER and len(d.members) == 2
        assert "converted the consumer group to a classic group" not in b.log()
        time.sleep(1)
    finally:
        for m in classic:
            m.stop()
        if not newcomer.stopped.is_set() and newcomer.is_alive():
            newcomer.stop()
    seen.assert_exactly({(topic, p, o) for p, o in expected_pairs(b.addr, topic, PARTITIONS)})
