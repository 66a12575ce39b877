#!/usr/bin/env python3
"""Consumer-group figures for docs/benchmarks-groups.md (confluent-kafka clients):

1. time for a group of 10 consumers to form and stabilise (every member assigned,
   DescribeGroups says Stable with 10 members), with the default
   group.initial.rebalance.delay.ms (3000) and with 0;
2. synchronous commit throughput from one group member (commits/s, one partition per
   commit, and 10 partitions per commit).

Usage: python3 scripts/bench_groups.py [path/to/strata]   (default target/release/strata)
"""

import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from group_helpers import create_topic, free_port  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/strata"


def start_broker(data, settings):
    port = free_port()
    args = [BINARY, "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={data}"]
    for k, v in settings.items():
        args += ["--set", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("strata: listening on "):
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("broker did not start")


def form_group(addr, topic, group, members=10):
    assigned = [threading.Event() for _ in range(members)]
    stop = threading.Event()

    def run(i):
        c = Consumer({"bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False,
                      "heartbeat.interval.ms": 500})
        c.subscribe([topic], on_assign=lambda cons, parts: parts and assigned[i].set())
        while not stop.is_set():
            c.poll(0.05)
        c.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(members)]
    for t in threads:
        t.start()
    for e in assigned:
        e.wait(60)
    admin = AdminClient({"bootstrap.servers": addr})
    while True:
        g = admin.describe_consumer_groups([group])[group].result(10)
        if str(g.state).endswith("STABLE") and len(g.members) == members:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join(30)
    return elapsed


def commit_rate(addr, topic, group, partitions_per_commit, seconds=5.0):
    c = Consumer({"bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False})
    got = threading.Event()
    c.subscribe([topic], on_assign=lambda cons, parts: got.set())
    while not got.is_set():
        c.poll(0.05)
    n, i = 0, 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        i += 1
        offs = [TopicPartition(topic, p, i) for p in range(partitions_per_commit)]
        c.commit(offsets=offs, asynchronous=False)
        n += 1
    rate = n / (time.perf_counter() - start)
    c.close()
    return rate


def main():
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        results = {}
        for delay in (3000, 0):
            data = os.path.join(tmp, f"d{delay}")
            proc, addr = start_broker(data, {"group.initial.rebalance.delay.ms": delay})
            try:
                create_topic(addr, "bench", 10)
                times = [form_group(addr, "bench", f"form-{delay}-{r}") for r in range(3)]
                results[f"form10_delay{delay}"] = times
                if delay == 0:
                    results["commit_1p"] = commit_rate(addr, "bench", "commit-1", 1)
                    results["commit_10p"] = commit_rate(addr, "bench", "commit-10", 10)
            finally:
                proc.terminate()
                proc.wait(30)
        for k, v in results.items():
            if isinstance(v, list):
                print(f"{k}: median {statistics.median(v):.3f} s  (runs: {', '.join(f'{x:.3f}' for x in v)})")
            else:
                print(f"{k}: {v:.0f} commits/s")


if __name__ == "__main__":
    main()
