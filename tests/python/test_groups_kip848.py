"""Consumer groups of the new protocol (KIP-848) with confluent-kafka
(`group.protocol=consumer`): the broker assigns, members reconcile incrementally.
Every record is consumed exactly once with synchronous commits across a member leave
and a member join; committed offsets resume a later consumer; ConsumerGroupDescribe
shows the group as type CONSUMER with its assignment; a regex subscription picks up a
topic created later."""

import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BINARY
from group_helpers import Seen, create_topic, expected_pairs, fixed_port_broker, produce_keyed, wait_until

N = 3000
PARTITIONS = 6

# Short heartbeats and sessions so a test takes seconds; the bounds are lowered with them.
BROKER = {
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 500,
    "group.consumer.session.timeout.ms": 6000,
    "group.consumer.min.session.timeout.ms": 6000,
}


class Member(threading.Thread):
    """A new-protocol consumer that commits each poll batch synchronously."""

    def __init__(self, addr, group, topics, seen, assignor=None):
        super().__init__(daemon=True)
        conf = {"bootstrap.servers": addr, "group.id": group, "group.protocol": "consumer",
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 1000}
        if assignor:
            conf["group.remote.assignor"] = assignor
        self.consumer = Consumer(conf)
        self.topics, self.seen = topics, seen
        self.assigned = set()
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.consumed = 0
        self.errors = []
        self.dropped_batches = 0

    def on_assign(self, consumer, parts):
        self.assigned |= {(p.topic, p.partition) for p in parts}

    def on_revoke(self, consumer, parts):
        self.assigned -= {(p.topic, p.partition) for p in parts}

    def run(self):
        self.consumer.subscribe(self.topics, on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stopping.is_set():
            msgs = self.consumer.consume(num_messages=20, timeout=0.3)
            self.errors += [m.error() for m in msgs if m.error() is not None]
            batch = [m for m in msgs if m.error() is None]
            if not batch:
                continue
            time.sleep(0.1)  # "processing": keeps the run long enough to rebalance mid-stream
            latest, first = {}, {}
            for m in batch:
                latest[(m.topic(), m.partition())] = m.offset() + 1
                first.setdefault((m.topic(), m.partition()), m.offset())
            offsets = [TopicPartition(t, p, o) for (t, p), o in latest.items()]
            if not self.commit(offsets):
                # The membership ended (the coordinator restarted and forgot it, or the
                # member was fenced): the batch is not processed; rewind, so that the
                # partitions' next owner (maybe this member again) reads it from the
                # committed offsets. Polling again lets the client rejoin.
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
        """Commits synchronously; False if the member's membership is gone."""
        gone = {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
                getattr(KafkaError, "FENCED_MEMBER_EPOCH", 110)}
        for _ in range(100):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                return True
            except KafkaException as e:
                if e.args[0].code() in gone:
                    return False
                time.sleep(0.2)
        raise AssertionError("commit kept failing")

    def stop(self):
        self.stopping.set()
        self.stopped.wait(30)
        self.consumer.close()


@pytest.fixture
def kip848_broker(make_broker):
    return fixed_port_broker(make_broker, **BROKER)


def pairs(addr, topic):
    return {(topic, p, o) for p, o in expected_pairs(addr, topic, PARTITIONS)}


def test_leave_and_join_every_record_once_then_resume_and_describe(kip848_broker):
    b = kip848_broker
    topic, group = "kip848-basic", "grp-kip848"
    create_topic(b.addr, topic, PARTITIONS)
    produce_keyed(b.addr, topic, N)
    seen = Seen()
    members = [Member(b.addr, group, [topic], seen) for _ in range(3)]
    for m in members:
        m.start()
    try:
        wait_until(lambda: seen.count() >= N // 3, 60, "a third of the records", log=b.log)
        members[0].stop()  # leaves with member epoch -1
        newcomer = Member(b.addr, group, [topic], seen)
        newcomer.start()
        members.append(newcomer)
        wait_until(lambda: newcomer.consumed > 0, 60, "the newcomer to consume", log=b.log)
        wait_until(lambda: seen.count() >= N, 90, "every record", log=b.log)
        # Every partition owned by exactly one live member once the group settles.
        live = members[1:]
        wait_until(lambda: sum(len(m.assigned) for m in live) == PARTITIONS
                   and all(m.assigned for m in live), 30, "a stable assignment", log=b.log)
        time.sleep(1)  # a duplicate delivered late would show up here
        owned = [p for m in live for p in m.assigned]
        assert len(owned) == len(set(owned)) == PARTITIONS

        admin = AdminClient({"bootstrap.servers": b.addr})
        desc = admin.describe_consumer_groups([group])[group].result(15)
        assert desc.type == ConsumerGroupType.CONSUMER
        assert len(desc.members) == 3
        described = sorted((tp.topic, tp.partition) for mem in desc.members
                           for tp in mem.assignment.topic_partitions)
        assert described == [(topic, p) for p in range(PARTITIONS)]
        out = subprocess.run([str(BINARY), "group", "describe", group, "-b", b.addr],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "Type: consumer" in out.stdout and out.stdout.count("\tMember: ") == 3, out.stdout
    finally:
        for m in members[1:]:
            m.stop()
    seen.assert_exactly(pairs(b.addr, topic))
    assert not [e for m in members for e in m.errors if e.fatal()]

    # Committed offsets: a later member of the group reads only what came after.
    produce_keyed(b.addr, topic, 300)
    later = Seen()
    m = Member(b.addr, group, [topic], later)
    m.start()
    try:
        wait_until(lambda: later.count() >= 300, 60, "the records produced after the commits", log=b.log)
        time.sleep(1)
    finally:
        m.stop()
    assert later.count() == 300
    assert not (set(later.items) & set(seen.items))


def test_regex_subscription_picks_up_a_topic_created_later(kip848_broker):
    b = kip848_broker
    create_topic(b.addr, "kip848-rx-a", 2)
    produce_keyed(b.addr, "kip848-rx-a", 50)
    seen = Seen()
    m = Member(b.addr, "grp-kip848-rx", ["^kip848-rx-.*"], seen)
    m.start()
    try:
        wait_until(lambda: seen.count() >= 50, 60, "the first topic's records", log=b.log)
        create_topic(b.addr, "kip848-rx-b", 2)
        produce_keyed(b.addr, "kip848-rx-b", 50)
        wait_until(lambda: seen.count() >= 100, 60, "the later topic's records", log=b.log)
    finally:
        m.stop()
    topics = {t for t, _, _ in seen.items}
    assert topics == {"kip848-rx-a", "kip848-rx-b"}


def test_unknown_remote_assignor_is_refused(kip848_broker):
    b = kip848_broker
    create_topic(b.addr, "kip848-assignor", 1)
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "grp-kip848-assignor",
                  "group.protocol": "consumer", "group.remote.assignor": "no-such-assignor"})
    c.subscribe(["kip848-assignor"])
    errors = []
    deadline = time.time() + 20
    while time.time() < deadline and not errors:
        try:
            msg = c.poll(0.5)
        except KafkaException as e:
            errors.append(e.args[0])
            break
        if msg is not None and msg.error() is not None:
            errors.append(msg.error())
    c.close()
    # librdkafka raises UNSUPPORTED_ASSIGNOR as a fatal consumer error with the broker's text.
    assert any("assignor or its version range is not supported" in e.str()
               for e in errors), errors


def test_classic_member_joins_a_consumer_group(kip848_broker):
    # Kafka 4's mixed mode: a classic member joining a consumer group with members is
    # served by it (the broker assigns; test_groups_mixed.py covers the conversions).
    b = kip848_broker
    create_topic(b.addr, "kip848-mixed", 2)
    seen = Seen()
    m = Member(b.addr, "grp-kip848-mixed", ["kip848-mixed"], seen)
    m.start()
    try:
        wait_until(lambda: len(m.assigned) == 2, 30, "the consumer-protocol member's assignment", log=b.log)
        classic = Consumer({"bootstrap.servers": b.addr, "group.id": "grp-kip848-mixed",
                            "group.protocol": "classic"})
        classic.subscribe(["kip848-mixed"])
        try:
            wait_until(lambda: classic.poll(0.2) is None and len(classic.assignment()) == 1
                       and len(m.assigned) == 1, 40, "one partition each", log=b.log)
            admin = AdminClient({"bootstrap.servers": b.addr})
            desc = admin.describe_consumer_groups(["grp-kip848-mixed"])["grp-kip848-mixed"].result(15)
            assert desc.type == ConsumerGroupType.CONSUMER and len(desc.members) == 2
        finally:
            classic.close()
    finally:
        m.stop()


def describe_cli(addr, group):
    """(group epoch, {member id: member epoch}) from `strata group describe`."""
    out = subprocess.run([str(BINARY), "group", "describe", group, "-b", addr],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    head = [ln for ln in out.stdout.splitlines() if ln.startswith("Group: ")][0]
    fields = dict(f.split(": ", 1) for f in head.split("\t"))
    members = {}
    for ln in out.stdout.splitlines():
        if ln.startswith("\tMember: "):
            f = dict(x.split(": ", 1) for x in ln.strip("\t").split("\t"))
            members[f["Member"]] = int(f["Epoch"])
    return int(fields["GroupEpoch"]), fields["State"], members


def settled(addr, group, members):
    """The group is Stable and every member owns partitions; its description then."""
    if not all(m.assigned for m in members) or sum(len(m.assigned) for m in members) != PARTITIONS:
        return None
    epoch, state, described = describe_cli(addr, group)
    return (epoch, described) if state == "Stable" and len(described) == len(members) else None


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_broker_restart_keeps_the_group(kip848_broker, how):
    # The group's records are in __consumer_offsets: after the restart the members keep
    # their ids and epochs, the group its epoch, and nobody rejoins or reassigns.
    b = kip848_broker
    topic, group = f"kip848-restart-{how}", f"grp-kip848-restart-{how}"
    create_topic(b.addr, topic, PARTITIONS)
    produce_keyed(b.addr, topic, N)
    seen = Seen()
    members = [Member(b.addr, group, [topic], seen) for _ in range(4)]
    for m in members:
        m.start()
    try:
        # One member leaves first: the group epoch (5) is then not what a group rebuilt
        # from scratch by three rejoining members would reach (3).
        wait_until(lambda: seen.count() >= N // 8 and settled(b.addr, group, members), 60,
                   "a stable group of four", log=b.log)
        members.pop().stop()
        wait_until(lambda: seen.count() >= N // 4 and settled(b.addr, group, members), 60,
                   "a stable group a quarter through", log=b.log)
        before = settled(b.addr, group, members)
        logged = len(b.log())
        if how == "kill9":
            b.kill()
        else:
            b.stop()
        b.start()
        assert seen.count() < N, "the restart must happen mid-stream"
        wait_until(lambda: seen.count() >= N, 120, "every record", log=b.log)
        time.sleep(1)
        after = describe_cli(b.addr, group)
        assert before[0] >= 5 and (after[0], after[2]) == before, (before, after)
        assert after[1] == "Stable"
        since = b.log()[logged:]
        assert "computed the target assignment" not in since, since[-3000:]
        assert sum(m.dropped_batches for m in members) == 0
    finally:
        for m in members:
            m.stop()
    seen.assert_exactly(pairs(b.addr, topic))


def test_describe_consumer_groups_of_a_classic_group_still_works(kip848_broker):
    # librdkafka asks ConsumerGroupDescribe first; GROUP_ID_NOT_FOUND for a classic group
    # makes it fall back to DescribeGroups.
    b = kip848_broker
    create_topic(b.addr, "kip848-classic", 2)
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "grp-kip848-classic", "group.protocol": "classic"})
    c.subscribe(["kip848-classic"])
    try:
        wait_until(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, 30, "a classic assignment")
        admin = AdminClient({"bootstrap.servers": b.addr})
        desc = admin.describe_consumer_groups(["grp-kip848-classic"])["grp-kip848-classic"].result(15)
        assert desc.type == ConsumerGroupType.CLASSIC
        assert len(desc.members) == 1
    finally:
        c.close()


def classic_consume(addr, group, topic, at_least, timeout=60):
    """A classic-protocol member consumes at least `at_least` records, commits them
    synchronously and leaves; returns what it consumed."""
    c = Consumer({"bootstrap.servers": addr, "group.id": group, "group.protocol": "classic",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    try:
        while len(got) < at_least and time.time() < deadline:
            for m in c.consume(num_messages=50, timeout=0.5):
                if m.error() is None:
                    got.append((m.topic(), m.partition(), m.offset()))
        if got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    assert len(got) >= at_least, f"the classic member consumed {len(got)} of {at_least}"
    return got


def test_empty_groups_convert_both_ways_and_keep_their_offsets(kip848_broker):
    # classic -> consumer when the first consumer-protocol member joins the empty classic
    # group; consumer -> classic when a classic member joins the empty consumer group,
    # also after a restart has restored that empty consumer group from its records.
    b = kip848_broker
    topic, group = "kip848-convert", "grp-kip848-convert"
    create_topic(b.addr, topic, 2)
    produce_keyed(b.addr, topic, 300)
    first = classic_consume(b.addr, group, topic, 100)
    seen = Seen()
    m = Member(b.addr, group, [topic], seen)
    m.start()
    try:
        wait_until(lambda: seen.count() + len(first) >= 300, 60, "the rest, by the consumer member", log=b.log)
        time.sleep(1)
    finally:
        m.stop()  # leaves: the consumer group is empty
    assert m.dropped_batches == 0
    epoch, state, members = describe_cli(b.addr, group)
    assert state == "Empty" and not members and epoch >= 2, (epoch, state, members)
    b.kill()
    b.start()
    produce_keyed(b.addr, topic, 100)
    last = classic_consume(b.addr, group, topic, 100)
    everything = first + seen.items + last
    assert len(everything) == len(set(everything)), "a record was consumed twice"
    assert set(everything) == {(topic, p, o) for p, o in expected_pairs(b.addr, topic, 2)}


def raw_consumer_heartbeat(addr, group, member_id, epoch, topics):
    """One ConsumerGroupHeartbeat v0 on a raw socket: (error code, error message).
    librdkafka 2.12 retries GROUP_ID_NOT_FOUND without surfacing it, so the answer is
    read off the wire."""
    import socket
    import struct

    def uvarint(n):
        out = b""
        while n >= 0x80:
            out += bytes([(n & 0x7F) | 0x80])
            n >>= 7
        return out + bytes([n])

    def cstr(s):
        return uvarint(0) if s is None else uvarint(len(s.encode()) + 1) + s.encode()

    body = cstr(group) + cstr(member_id) + struct.pack(">i", epoch) + cstr(None) + cstr(None)
    body += struct.pack(">i", 30000 if epoch == 0 else -1)
    body += uvarint(len(topics) + 1) + b"".join(cstr(t) for t in topics)
    body += cstr(None) + uvarint(1) + uvarint(0)  # no assignor, owns nothing, no tags
    header = struct.pack(">hhih", 68, 0, 7, 4) + b"test" + uvarint(0)
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        frame = header + body
        s.sendall(struct.pack(">i", len(frame)) + frame)

        def read(n):
            data = b""
            while len(data) < n:
                chunk = s.recv(n - len(data))
                assert chunk, "connection closed"
                data += chunk
            return data

        (size,) = struct.unpack(">i", read(4))
        resp = read(size)
    assert struct.unpack(">i", resp[:4])[0] == 7
    pos = 5  # correlation id, empty tagged fields
    _throttle, code = struct.unpack(">ih", resp[pos:pos + 6])
    pos += 6
    n = resp[pos]  # short messages: one-byte length
    message = resp[pos + 1:pos + n].decode() if n else None
    return code, message


def test_a_classic_group_with_members_is_not_upgraded_when_disabled(make_broker):
    # Under group.consumer.migration.policy=disabled a classic group with members gets
    # Kafka 4's answers (empty groups still convert).
    b = fixed_port_broker(make_broker, **BROKER, **{"group.consumer.migration.policy": "disabled"})
    create_topic(b.addr, "kip848-noupgrade", 2)
    group = "grp-kip848-noupgrade"
    c = Consumer({"bootstrap.servers": b.addr, "group.id": group, "group.protocol": "classic"})
    c.subscribe(["kip848-noupgrade"])
    try:
        wait_until(lambda: c.poll(0.2) is None and len(c.assignment()) == 2, 30, "a classic assignment")
        code, msg = raw_consumer_heartbeat(b.addr, group, "", 0, ["kip848-noupgrade"])
        assert (code, msg) == (69, f"Cannot upgrade classic group {group} to consumer group "
                                   "because online upgrade is disabled."), (code, msg)
        code, msg = raw_consumer_heartbeat(b.addr, group, "m", 3, [])
        assert (code, msg) == (69, f"Group {group} is not a consumer group."), (code, msg)
        assert len(c.assignment()) == 2
    finally:
        c.close()
