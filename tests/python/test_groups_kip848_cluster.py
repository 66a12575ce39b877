"""A KIP-848 consumer group (confluent-kafka, `group.protocol=consumer`) in a 3-node
cluster whose coordinator is killed with SIGKILL mid-stream: the node that takes over
the group's `__consumer_offsets` partition replays the group's records (Kafka 4's
ConsumerGroupMetadata, member metadata, target and current assignment), so the members
keep their ids and epochs and go on heartbeating without a rejoin; the group epoch
continues; every record is consumed exactly once with synchronous commits."""

import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster
from group_helpers import Seen, wait_until
from test_groups_kip848 import PARTITIONS, Member, describe_cli

N = 3000
TOPIC = "kip848-failover"
SETTINGS = {
    "group.consumer.heartbeat.interval.ms": 500,
    "group.consumer.min.heartbeat.interval.ms": 500,
    # Sessions restart when the new coordinator loads the group; a member must reach it
    # within this, even on a loaded CI machine (one run with 10 s saw a member expire).
    "group.consumer.session.timeout.ms": 30000,
    "group.consumer.min.session.timeout.ms": 6000,
}


def coordinator_of(bootstrap, group):
    """The coordinator (node id) FindCoordinator names for `group`, or None."""
    a = AdminClient({"bootstrap.servers": bootstrap})
    try:
        return a.describe_consumer_groups([group], request_timeout=10)[group].result(15).coordinator.id
    except Exception:  # noqa: BLE001 - the group may not be loaded yet
        return None


def test_coordinator_kill_keeps_the_group():
    cluster = Cluster(3, settings=SETTINGS)
    members = []
    try:
        a = AdminClient({"bootstrap.servers": cluster.bootstrap})
        t = NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})
        a.create_topics([t])[TOPIC].result(30)
        cluster.wait_for_isr(TOPIC, 3, timeout=30)
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5})
        for i in range(N):
            p.produce(TOPIC, key=f"k{i}".encode(), value=f"v{i}".encode())
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(30) == 0
        group = "grp-kip848-failover"
        seen = Seen()
        members = [Member(cluster.bootstrap, group, [TOPIC], seen) for _ in range(4)]
        for m in members:
            m.start()

        def settled():
            if sum(len(m.assigned) for m in members) != PARTITIONS or not all(m.assigned for m in members):
                return None
            epoch, state, described = describe_cli(cluster.nodes[0].addr, group)
            return (epoch, described) if state == "Stable" and len(described) == len(members) else None

        # One member leaves first, so the group epoch (5) is not what three members
        # rejoining a group rebuilt from scratch would reach (3).
        wait_until(lambda: seen.count() >= N // 8 and settled(), 90, "a stable group of four", log=cluster.logs)
        members.pop().stop()
        wait_until(lambda: seen.count() >= N // 4 and settled(), 90, "a stable group", log=cluster.logs)
        before = settled()
        victim = coordinator_of(cluster.bootstrap, group)
        assert victim in (1, 2, 3), victim
        cluster.kill(victim)
        killed_at = time.time()
        assert seen.count() < N, "the kill must happen mid-stream"
        wait_until(lambda: seen.count() >= N, 120, "every record", log=cluster.logs)
        live = next(b for i, b in enumerate(cluster.nodes) if i + 1 != victim)
        wait_until(lambda: coordinator_of(live.addr, group) not in (None, victim), 30, "a new coordinator")
        after = describe_cli(live.addr, group)
        print(f"killed coordinator {victim}; group epoch {before[0]} -> {after[0]}; "
              f"all consumed {time.time() - killed_at:.1f} s after the kill")
        moves = [ln for b in cluster.nodes for ln in b.log().splitlines()
                 if "expired" in ln or "computed the target" in ln or "loaded __consumer_offsets" in ln]
        assert before[0] >= 5 and (after[0], after[2]) == before, (before, after, moves[-20:])
        assert sum(m.dropped_batches for m in members) == 0
        time.sleep(1)  # a duplicate delivered late would show up here
        seen.assert_exactly({(TOPIC, p, o) for p in range(PARTITIONS) for o in range(high(live.addr, p))})
    finally:
        for m in members:
            m.stop()
        cluster.close()


def high(addr, partition):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": addr, "group.id": "watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(TOPIC, partition), timeout=10)[1]
    finally:
        c.close()
