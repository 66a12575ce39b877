"""Consumer groups with kafka-python: exactly-once consumption with synchronous commits
while members leave and join, and across a broker restart."""

import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from group_helpers import KAFKA_PYTHON_GROUP_POLL_MS, Seen, create_topic, expected_pairs, fixed_port_broker, produce_keyed, wait_until

N = 3000
PARTITIONS = 6


class Member(threading.Thread):
    """Polls a batch, "processes" it, commits it synchronously; rebalances happen in
    poll, after the previous batch was committed."""

    def __init__(self, addr, group, topic, seen):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=addr, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=500,
            request_timeout_ms=10000, reconnect_backoff_max_ms=500)
        self.topic, self.seen = topic, seen
        self.stopping = threading.Event()
        self.stopped = threading.Event()
        self.consumed = 0
        self.errors = []

    def run(self):
        self.consumer.subscribe([self.topic])
        while not self.stopping.is_set():
            try:
                polled = self.consumer.poll(timeout_ms=KAFKA_PYTHON_GROUP_POLL_MS, max_records=20)
            except KafkaError:
                time.sleep(0.2)
                continue
            batch = [r for records in polled.values() for r in records]
            if not batch:
                continue
            time.sleep(0.1)
            latest = {}
            for r in batch:
                latest[TopicPartition(r.topic, r.partition)] = OffsetAndMetadata(r.offset + 1, None, -1)
            committed = False
            for _ in range(100):
                try:
                    self.consumer.commit(latest)
                    committed = True
                    break
                except CommitFailedError as e:
                    # The group moved on (e.g. our session ended while the broker was
                    # down): the batch is not committed and will be redelivered.
                    self.errors.append(repr(e))
                    break
                except KafkaError as e:
                    self.errors.append(repr(e))
                    time.sleep(0.2)
            if not committed:
                continue
            self.seen.add((r.partition, r.offset) for r in batch)
            self.consumed += len(batch)
        self.stopped.set()

    def stop(self):
        self.stopping.set()
        self.stopped.wait(30)
        self.consumer.close()


def run_group(broker, topic, group, restart=None):
    create_topic(broker.addr, topic, PARTITIONS)
    produce_keyed(broker.addr, topic, N)
    seen = Seen()
    members = [Member(broker.addr, group, topic, seen) for _ in range(3)]
    for m in members:
        m.start()
    try:
        wait_until(lambda: seen.count() >= N // 3, 60, "a third of the records")
        members[0].stop()
        newcomer = Member(broker.addr, group, topic, seen)
        newcomer.start()
        members.append(newcomer)
        wait_until(lambda: newcomer.consumed > 0, 60, "the newcomer to consume")
        if restart:
            restart(broker)
            assert seen.count() < N, "the restart must happen mid-stream"
        wait_until(lambda: seen.count() >= N, 120, "every record",
                   log=lambda: broker.log() + "\n" + repr([m.errors[-5:] for m in members]))
        time.sleep(1)
    finally:
        for m in members[1:]:
            m.stop()
    seen.assert_exactly(expected_pairs(broker.addr, topic, PARTITIONS))


@pytest.fixture
def group_broker(make_broker):
    return fixed_port_broker(make_broker)


def test_members_leave_and_join_every_record_once(group_broker):
    run_group(group_broker, "kp-basic", "kp-grp-basic")


def kill9_restart(b):
    b.kill()
    b.start()


def sigterm_restart(b):
    b.stop()
    b.start()


@pytest.mark.parametrize("restart", [sigterm_restart, kill9_restart], ids=["sigterm", "kill9"])
def test_broker_restart_resumes_from_committed_offsets(group_broker, restart):
    run_group(group_broker, "kp-restart", "kp-grp-restart", restart=restart)


def test_admin_offset_delete_list_describe_delete(broker):
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupSubscribedToTopicError, NoError
    addr, topic, group = broker.addr, "kp-admin", "kp-admin-g"
    create_topic(addr, topic, 2)
    c = KafkaConsumer(bootstrap_servers=addr, group_id=group, enable_auto_commit=False,
                      session_timeout_ms=6000, heartbeat_interval_ms=500)
    c.subscribe([topic])
    wait_until(lambda: c.poll(timeout_ms=100) is not None and c.assignment(), 30, "an assignment")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    c.commit({tp0: OffsetAndMetadata(3, "m", -1), tp1: OffsetAndMetadata(4, None, -1)})
    admin = KafkaAdminClient(bootstrap_servers=addr)
    try:
        # A live member is subscribed: its offsets cannot be deleted (OffsetDelete).
        assert admin.delete_group_offsets(group, [tp0])[tp0] is GroupSubscribedToTopicError
        described = admin.describe_groups([group])
        assert "Stable" in repr(described) and group in repr(described)
        assert group in repr(admin.list_groups())
        c.close()  # LeaveGroup: the group becomes Empty
        assert admin.delete_group_offsets(group, [tp0])[tp0] is NoError
        c2 = KafkaConsumer(bootstrap_servers=addr, group_id=group, enable_auto_commit=False)
        assert c2.committed(tp0) is None
        assert c2.committed(tp1) == 4
        c2.close()
        admin.delete_groups([group])
        assert group not in repr(admin.list_groups())
    finally:
        admin.close()
