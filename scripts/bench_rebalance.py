#!/usr/bin/env python3
"""Rebalance time, classic against KIP-848, in one run (figures in docs/benchmarks.md).

For N = 10, 50, 200 confluent-kafka consumers (librdkafka, one process, one thread each)
subscribing together to a topic of N partitions: the time from starting them until every
member holds exactly one partition at the same moment (the group is balanced). Three
setups, each on a fresh broker:
- classic protocol (`group.protocol=classic`, range assignor), broker default
  `group.initial.rebalance.delay.ms=3000`;
- classic with `group.initial.rebalance.delay.ms=0`;
- the consumer protocol (`group.protocol=consumer`, KIP-848, server-side `uniform`
  assignor), broker defaults (`group.consumer.heartbeat.interval.ms=5000`);
- the consumer protocol with `group.consumer.heartbeat.interval.ms=500`: members learn
  a new target assignment, and that a partition was released, on their heartbeats.
Each setup runs 3 times for N < 200 (the median is reported with the runs) and once for
200. Every run is bounded (180 s); a run that does not balance is reported as such.

Usage: python3 scripts/bench_rebalance.py [path/to/strata] [N ...]
       (default target/release/strata, N = 10 50 200)
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
from confluent_kafka import Consumer  # noqa: E402
from group_helpers import create_topic, free_port  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/strata"
SIZES = [int(n) for n in sys.argv[2:]] or [10, 50, 200]
LIMIT_S = 180


def start_broker(data, settings):
    port = free_port()
    args = [BINARY, "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--set", f"log.dirs={data}", "--set", "metrics.listener=127.0.0.1:0"]
    for k, v in settings.items():
        args += ["--set", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("strata: listening on "):
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("broker did not start")


def balance_time(addr, topic, group, members, protocol):
    sizes = [0] * members
    stop = threading.Event()
    ready = threading.Barrier(members + 1)

    def run(i):
        conf = {"bootstrap.servers": addr, "group.id": group, "enable.auto.commit": False,
                "group.protocol": protocol, "log_level": 3}
        c = Consumer(conf)
        ready.wait()
        c.subscribe([topic])
        while not stop.is_set():
            c.poll(0.05)
            sizes[i] = len(c.assignment())
        c.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(members)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    elapsed = None
    while time.perf_counter() - start < LIMIT_S:
        if all(s == 1 for s in sizes):
            elapsed = time.perf_counter() - start
            break
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join(60)
    return elapsed


def main():
    setups = [
        ("classic, initial delay 3000 ms (default)", "classic", {}),
        ("classic, initial delay 0", "classic", {"group.initial.rebalance.delay.ms": 0}),
        ("consumer (KIP-848), heartbeat 5000 ms (default)", "consumer", {}),
        ("consumer (KIP-848), heartbeat 500 ms", "consumer",
         {"group.consumer.heartbeat.interval.ms": 500,
          "group.consumer.min.heartbeat.interval.ms": 500}),
    ]
    with tempfile.TemporaryDirectory(prefix="strata-bench-") as tmp:
        for n in SIZES:
            for i, (name, protocol, settings) in enumerate(setups):
                runs = []
                for r in range(3 if n < 200 else 1):
                    proc, addr = start_broker(os.path.join(tmp, f"d{n}-{i}-{r}"), settings)
                    try:
                        create_topic(addr, "bench", n)
                        runs.append(balance_time(addr, "bench", f"g-{n}-{i}", n, protocol))
                    finally:
                        proc.terminate()
                        proc.wait(30)
                if None in runs:
                    shown = f"not balanced in {LIMIT_S} s (runs: {runs})"
                else:
                    shown = (f"median {statistics.median(runs):.2f} s "
                             f"(runs: {', '.join(f'{x:.2f}' for x in runs)})")
                print(f"{n} members, {name}: {shown}", flush=True)


if __name__ == "__main__":
    main()
