#!/usr/bin/env python3
"""Reassignment time against the size of a partition's history, tiered and not (issue 17).

    S3_TEST_ENDPOINT=http://127.0.0.1:PORT S3_TEST_BUCKET=strata-test \
        scripts/bench_reassign.py target/release/strata 32 128 512

For each size (MiB of 1 KiB records) and each mode, a 3-node cluster on 127.0.0.1 gets a
one-partition topic on nodes [1, 2]; once written (and, when tiered, once everything but the
local tail is in the bucket), the partition is moved to [1, 3] with AlterPartitionReassignments
and timed until ListPartitionReassignments no longer lists it. Node 3's
strata_replica_fetch_bytes_total is what the new replica copied from the leader.

- `tiered`: remote.storage.enable=true, 4 MiB segments, local.retention.bytes 8 MiB: the move
  copies the local tail only, so its time should not grow with the history.
- `local`: the same records without tiering: the move copies the whole log.

Bounded: every wait has a deadline; servers bind 127.0.0.1 on ephemeral ports.
"""
import os
import pathlib
import re
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "python"))
os.environ.setdefault("BROKER_BIN", sys.argv[1] if len(sys.argv) > 1 else "target/release/strata")

import conftest  # noqa: E402  (the test suite's Cluster: 3 nodes on 127.0.0.1)
from confluent_kafka import Producer  # noqa: E402
from kafka import TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

S3 = os.environ["S3_TEST_ENDPOINT"]
BUCKET = os.environ.get("S3_TEST_BUCKET", "strata-test")
SEGMENT = 4 << 20
LOCAL = 8 << 20


def local_bytes(node, topic):
    d = node.data / f"{topic}-0"
    total = 0
    for f in d.glob("*.log") if d.exists() else []:
        try:
            total += f.stat().st_size
        except FileNotFoundError:  # deleted by retention since the glob
            pass
    return total


def fetched(node, topic):
    with urllib.request.urlopen(f"http://{node.metrics_addr}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'strata_replica_fetch_bytes_total\{[^}]*topic="%s"[^}]*\} (\S+)' % re.escape(topic), text)
    return int(float(m.group(1))) if m else 0


def run(mib, tiered):
    prefix = f"bench-reassign-{int(time.time() * 1000)}"
    cluster = conftest.Cluster(3, settings={
        "remote.storage.url": f"s3://{BUCKET}/{prefix}",
        "remote.storage.s3.endpoint": S3,
        "remote.storage.s3.region": "us-east-1",
        "remote.storage.s3.path.style": "true",
        "remote.storage.s3.access.key.id": "test",
        "remote.storage.s3.secret.access.key": "test",
        "remote.log.manager.task.interval.ms": 100,
    })
    topic = "moved"
    try:
        ka = KafkaAdminClient(bootstrap_servers=cluster.bootstrap.split(","))
        config = {"segment.bytes": str(SEGMENT), "min.insync.replicas": "1"}
        if tiered:
            config.update({"remote.storage.enable": "true", "local.retention.bytes": str(LOCAL)})
        ka.create_topics([NewTopic(topic, -1, -1, replica_assignments={0: [1, 2]}, topic_configs=config)])
        cluster.wait_for_isr(topic, 2)
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
        leader = cluster.node(1)
        deadline = time.time() + 600
        while tiered and local_bytes(leader, topic) > LOCAL + 2 * SEGMENT:
            assert time.time() < deadline, "the tail was not tiered in time"
            time.sleep(0.5)
        tail = local_bytes(leader, topic)
        start = time.time()
        ka.alter_partition_reassignments({TopicPartition(topic, 0): [1, 3]})
        deadline = start + 900
        while ka.list_partition_reassignments({topic: [0]}):
            assert time.time() < deadline, "the move did not finish in time"
            time.sleep(0.05)
        took = time.time() - start
        copied = fetched(cluster.node(3), topic)
        ka.close()
        return tail, took, copied
    finally:
        cluster.close()


def main():
    sizes = [int(s) for s in sys.argv[2:]] or [32, 128, 512]
    print("| history | mode | leader's local log | move time | copied by the new replica |")
    print("|---|---|---|---|---|")
    for mib in sizes:
        # MODES=tiered (or local) runs one mode only.
        for tiered in [m == "tiered" for m in os.environ.get("MODES", "tiered,local").split(",")]:
            tail, took, copied = run(mib, tiered)
            print(f"| {mib} MiB | {'tiered' if tiered else 'local'} | {tail / 2**20:.1f} MiB "
                  f"| {took:.2f} s | {copied / 2**20:.1f} MiB |", flush=True)


if __name__ == "__main__":
    main()
