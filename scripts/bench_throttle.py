#!/usr/bin/env python3
"""Replication throttles (KIP-73) in a reassignment, and produce throughput during a rebalance
(issue 17).

    scripts/bench_throttle.py target/debug/strata [MiB per moved partition] [throttle MiB/s ...]

One 3-node cluster on 127.0.0.1 (combined mode, no remote tier). Throttles are set as
kafka-reassign-partitions --throttle sets them: both rates on the brokers, the moved
partition's current replicas in leader.replication.throttled.replicas and its new one in
follower.replication.throttled.replicas; removed after each move.

1. Move time: for each throttle (none first), a fresh one-partition topic on [1, 2] filled
   with MiB of 1 KiB records is moved to [1, 3] (AlterPartitionReassignments, timed until
   ListPartitionReassignments no longer lists it).
2. Produce throughput during a rebalance: an acks=all producer (confluent-kafka, 1 KiB
   records, 3 partitions with replication factor 2, as fast as it is acknowledged) runs
   throughout; acknowledged MiB/s is measured for 10 s with nothing moving, then while two
   pre-filled partitions move (their replicas rotate to other brokers), unthrottled and then
   with each throttle.

Bounded: every wait has a deadline; servers bind 127.0.0.1 on ephemeral ports.
"""
import os
import pathlib
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "python"))
os.environ.setdefault("BROKER_BIN", sys.argv[1] if len(sys.argv) > 1 else "target/debug/strata")

import conftest  # noqa: E402  (the test suite's Cluster: 3 nodes on 127.0.0.1)
from confluent_kafka import Producer  # noqa: E402
from kafka import TopicPartition  # noqa: E402
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic  # noqa: E402

MIB = 1 << 20
RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
LISTS = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


def load():
    return "%.1f" % os.getloadavg()[0]


def fill(cluster, topic, mib):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 20,
                  "batch.size": 1 << 20, "queue.buffering.max.kbytes": 1 << 18})
    value = b"x" * 1024
    for i in range(mib * 1024):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(300) == 0, "records left unsent"


def throttle(ka, moves, rate):
    """moves: topic -> (current, target). Sets the throttles; rate None removes them."""
    for topic, (current, target) in moves.items():
        res = ConfigResource(ConfigResourceType.TOPIC, topic, configs={
            LISTS[0]: ",".join(f"0:{b}" for b in current),
            LISTS[1]: ",".join(f"0:{b}" for b in target if b not in current)})
        if rate is None:
            ka.reset_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=list(LISTS))])
        else:
            ka.alter_configs([res])
    for b in (1, 2, 3):
        if rate is None:
            ka.reset_configs([ConfigResource(ConfigResourceType.BROKER, str(b), configs=list(RATES))])
        else:
            ka.alter_configs([ConfigResource(ConfigResourceType.BROKER, str(b),
                                             configs={k: str(rate) for k in RATES})])


def move(ka, moves, rate):
    """Runs the moves under `rate` (B/s, None = unthrottled); returns the seconds they took."""
    if rate is not None:
        throttle(ka, moves, rate)
    start = time.time()
    ka.alter_partition_reassignments({TopicPartition(t, 0): target for t, (_, target) in moves.items()})
    deadline = start + 900
    while ka.list_partition_reassignments({t: [0] for t in moves}):
        assert time.time() < deadline, "the moves did not finish in time"
        time.sleep(0.05)
    took = time.time() - start
    if rate is not None:
        throttle(ka, moves, None)
    return took


class Load:
    """An acks=all producer counting acknowledged bytes."""

    def __init__(self, cluster, topic):
        self.acked = 0
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, args=(cluster, topic), daemon=True)
        self.thread.start()

    def run(self, cluster, topic):
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5,
                      "queue.buffering.max.kbytes": 1 << 16})
        value = b"y" * 1024

        def done(err, _msg):
            with self.lock:
                if err:
                    self.errors += 1
                else:
                    self.acked += 1024

        i = 0
        while not self.stop.is_set():
            try:
                p.produce(topic, value=value, partition=i % 3, on_delivery=done)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 200 == 0:
                p.poll(0)
        p.flush(60)

    def bytes(self):
        with self.lock:
            return self.acked


def rate_during(load, fn):
    """MiB/s acknowledged while fn() runs, and fn's result."""
    before, t0 = load.bytes(), time.time()
    out = fn()
    return (load.bytes() - before) / (time.time() - t0) / MIB, out


def main():
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    throttles = [int(r) * MIB for r in sys.argv[3:]] or [16 * MIB, 4 * MIB]
    cluster = conftest.Cluster(3)
    try:
        ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))

        print(f"Move time of a {mib} MiB partition, [1, 2] -> [1, 3]:\n")
        print("| throttle | move time | effective copy rate | load average |")
        print("|---|---|---|---|")
        for rate in [None] + throttles:
            topic = f"moved-{rate or 0}"
            ka.create_topics([NewTopic(topic, -1, -1, replica_assignments={0: [1, 2]})])
            cluster.wait_for_isr(topic, 2)
            fill(cluster, topic, mib)
            took = move(ka, {topic: ([1, 2], [1, 3])}, rate)
            label = "none" if rate is None else f"{rate // MIB} MiB/s"
            print(f"| {label} | {took:.2f} s | {mib / took:.1f} MiB/s | {load()} |", flush=True)

        ka.create_topics([NewTopic("load", -1, -1, replica_assignments={
            0: [1, 2], 1: [2, 3], 2: [3, 1]})])
        cluster.wait_for_isr("load", 2)
        big = {}
        for rate in [None] + throttles:
            for j, (cur, target) in enumerate([([1, 2], [2, 3]), ([2, 3], [3, 1])]):
                t = f"big-{rate or 0}-{j}"
                ka.create_topics([NewTopic(t, -1, -1, replica_assignments={0: cur})])
                cluster.wait_for_isr(t, 2)
                fill(cluster, t, mib)
                big.setdefault(rate, {})[t] = (cur, target)
        load_ = Load(cluster, "load")
        time.sleep(3)
        print(f"\nProduce throughput (acks=all, 1 KiB records) while two {mib} MiB partitions "
              "move:\n")
        print("| phase | acknowledged | move time | load average |")
        print("|---|---|---|---|")
        base, _ = rate_during(load_, lambda: time.sleep(10))
        print(f"| nothing moving (10 s) | {base:.1f} MiB/s | - | {load()} |", flush=True)
        for rate in [None] + throttles:
            got, took = rate_during(load_, lambda r=rate: move(ka, big[r], r))
            label = "unthrottled" if rate is None else f"throttled to {rate // MIB} MiB/s"
            print(f"| moving, {label} | {got:.1f} MiB/s ({got / base:.0%}) | {took:.2f} s "
                  f"| {load()} |", flush=True)
        after, _ = rate_during(load_, lambda: time.sleep(10))
        print(f"| nothing moving again (10 s) | {after:.1f} MiB/s | - | {load()} |", flush=True)
        load_.stop.set()
        load_.thread.join(90)
        print(f"\nproduce errors: {load_.errors}")
        ka.close()
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
