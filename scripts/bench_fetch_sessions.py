#!/usr/bin/env python3
"""Fetch sessions (KIP-227) figures for docs/benchmarks.md: a kafka-python consumer of
1,000 partitions that has caught up and keeps polling while a producer writes 200
records/s spread over the partitions, for WINDOW seconds, with sessions on (the default
1000 slots) and off (0 slots), alternating, in one run. Reports, per setting: Fetch
requests, partitions listed per request, partitions answered per response, and broker
CPU-seconds over the window (from /proc/<pid>/stat).

Usage: python3 scripts/bench_fetch_sessions.py [path/to/strata] [rounds]
"""

import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from group_helpers import free_port  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/strata"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
PARTITIONS = 1000
WINDOW = 15.0
TICKS = os.sysconf("SC_CLK_TCK")


def start(data, slots):
    port, mport = free_port(), free_port()
    proc = subprocess.Popen(
        [BINARY, "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
         "--set", f"log.dirs={data}", "--set", f"metrics.listener=127.0.0.1:{mport}",
         "--set", f"max.incremental.fetch.session.cache.slots={slots}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("strata: listening on "):
            return proc, f"127.0.0.1:{port}", f"127.0.0.1:{mport}"
    raise RuntimeError("broker did not start")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def metric(maddr, name):
    body = urllib.request.urlopen(f"http://{maddr}/metrics", timeout=10).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", body, re.M))


def round_(slots):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strata-sessions-"))
    proc, addr, maddr = start(tmp / "data", slots)
    try:
        admin = AdminClient({"bootstrap.servers": addr})
        admin.create_topics([NewTopic("s", PARTITIONS, 1)])["s"].result(60)
        p = Producer({"bootstrap.servers": addr, "linger.ms": 5})
        for part in range(PARTITIONS):
            p.produce("s", value=b"x" * 100, partition=part)
        p.flush(30)
        c = KafkaConsumer(bootstrap_servers=addr, enable_auto_commit=False, fetch_max_wait_ms=500)
        c.assign([TopicPartition("s", part) for part in range(PARTITIONS)])
        c.seek_to_beginning()
        got = 0
        while got < PARTITIONS:
            got += sum(len(b) for b in c.poll(timeout_ms=500).values())
        stop = threading.Event()

        def feed():
            i = 0
            while not stop.is_set():
                for _ in range(20):
                    p.produce("s", value=b"y" * 100, partition=i % PARTITIONS)
                    i += 1
                p.poll(0)
                time.sleep(0.1)
            p.flush(10)

        t = threading.Thread(target=feed)
        t.start()
        req0 = metric(maddr, "strata_fetch_session_requests_total")
        listed0 = metric(maddr, "strata_fetch_request_partitions_total")
        out0 = metric(maddr, "strata_fetch_session_partitions_left_out_total")
        cpu0 = cpu_seconds(proc.pid)
        end = time.time() + WINDOW
        while time.time() < end:
            c.poll(timeout_ms=200)
        cpu = cpu_seconds(proc.pid) - cpu0
        reqs = metric(maddr, "strata_fetch_session_requests_total") - req0
        listed = metric(maddr, "strata_fetch_request_partitions_total") - listed0
        left_out = metric(maddr, "strata_fetch_session_partitions_left_out_total") - out0
        stop.set()
        t.join()
        c.close()
        return {"requests": reqs, "listed": listed / reqs, "answered": PARTITIONS - left_out / reqs,
                "cpu": cpu}
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    runs = {1000: [], 0: []}
    for _ in range(ROUNDS):
        for slots in (1000, 0):
            r = round_(slots)
            runs[slots].append(r)
            print(f"slots={slots}: {r['requests']:.0f} fetches, {r['listed']:.0f} partitions "
                  f"listed/request, {r['answered']:.0f} answered/response, "
                  f"broker {r['cpu']:.2f} CPU-s in {WINDOW:.0f} s", flush=True)
    on, off = (statistics.median(x["cpu"] for x in runs[s]) for s in (1000, 0))
    print(f"median broker CPU-s: sessions {on:.2f}, without {off:.2f}, ratio {on / off:.2f}x")


if __name__ == "__main__":
    main()
