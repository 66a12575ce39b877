"""Replication throttles (KIP-73) set the way Kafka's tools set them, with kafka-python's admin
client on a 3-node cluster: the rates on each broker involved, the throttled replica lists on the
topic (leader side: the current replicas, follower side: the new one). A throttled move of a
partition takes several times longer than the same move unthrottled in the same run, and
completes; malformed values are INVALID_CONFIG.
"""
import time

from confluent_kafka import Producer
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import InvalidConfigurationError

VALUE = b"x" * (64 << 10)
RECORDS = 64  # 4 MiB
RATE = 1 << 20


def fill(cluster, topic):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all",
                  "compression.type": "none"})
    for i in range(RECORDS):
        p.produce(topic, key=str(i).encode(), value=VALUE, partition=0)
        p.poll(0)
    assert p.flush(60) == 0


def move(ka, cluster, topic, target):
    start = time.time()
    result = ka.alter_partition_reassignments({TopicPartition(topic, 0): target})
    assert all(v is None for v in result.values()), result
    deadline = time.time() + 120
    while ka.list_partition_reassignments({topic: [0]}):
        assert time.time() < deadline, "the move did not finish"
        time.sleep(0.1)
    took = time.time() - start
    assert cluster.partitions(topic)[0][1] == target
    return took


def error_of(result):
    """The error class kafka-python reports for the one resource of an AlterConfigs answer."""
    for _, resources in result.items():
        for _, err in resources.items():
            return err
    return None


def test_kafka_style_throttle_slows_a_move_in_proportion(cluster):
    ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
    try:
        for t in ("py-fast", "py-slow"):
            ka.create_topics([NewTopic(t, -1, -1, replica_assignments={0: [1]})])
            fill(cluster, t)
        fast = move(ka, cluster, "py-fast", [2])

        # As kafka-reassign-partitions --throttle: the rates on the brokers involved, the
        # replica lists on the topic.
        for b in (1, 2):
            ka.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(b), configs={
                "leader.replication.throttled.rate": str(RATE),
                "follower.replication.throttled.rate": str(RATE)})])
        ka.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "py-slow", configs={
            "leader.replication.throttled.replicas": "0:1",
            "follower.replication.throttled.replicas": "0:2"})])
        slow = move(ka, cluster, "py-slow", [2])
        print(f"4 MiB moved in {fast:.2f} s unthrottled, {slow:.2f} s at {RATE} B/s")
        assert slow >= 2 * fast, (fast, slow)

        # Malformed values are refused.
        bad = [
            ConfigResource(ConfigResourceType.TOPIC, "py-slow",
                           configs={"leader.replication.throttled.replicas": "0-1"}),
            ConfigResource(ConfigResourceType.TOPIC, "py-slow",
                           configs={"follower.replication.throttled.replicas": "0:1,*"}),
            ConfigResource(ConfigResourceType.BROKER, "1",
                           configs={"leader.replication.throttled.rate": "-1"}),
        ]
        for r in bad:
            err = error_of(ka.alter_configs([r]))
            assert err is not None and "InvalidConfiguration" in str(err), (r, err)

        # Cleared as kafka-reassign-partitions --verify does: the overrides removed.
        ka.reset_configs([ConfigResource(ConfigResourceType.TOPIC, "py-slow", configs=[
            "leader.replication.throttled.replicas", "follower.replication.throttled.replicas"])])
        for b in (1, 2):
            ka.reset_configs([ConfigResource(ConfigResourceType.BROKER, str(b), configs=[
                "leader.replication.throttled.rate", "follower.replication.throttled.rate"])])
        described = ka.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                        config_filter="all")
        entry = described["broker"]["1"]["leader.replication.throttled.rate"]
        value = entry.get("value") if isinstance(entry, dict) else entry
        assert value == str(2**63 - 1), entry
    finally:
        ka.close()
