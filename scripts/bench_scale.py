#!/usr/bin/env python3
"""Scale figures of one node (issue 14), on 127.0.0.1, bounded in time:

1. PARTITIONS partitions (one topic): open files and RSS after creating them, then the
   startup time of a restart (process start until a Metadata answer lists every
   partition with a leader), and idle RSS and open files after it;
2. CONNECTIONS client connections, each having sent an ApiVersions and read the answer:
   RSS per connection (RSS delta / connections).

Usage: python3 scripts/bench_scale.py --bin target/release/strata [--partitions 10000]
       [--connections 1000] [--timeout 600] [--work /work/bench-data/scale]
Prints one JSON object. Needs confluent-kafka.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Broker:
    def __init__(self, binary, data, deadline):
        self.binary, self.data, self.deadline = binary, data, deadline
        self.proc = None
        self.addr = None

    def start(self):
        out = open(os.path.join(os.path.dirname(self.data), "stdout"), "w+")
        err = open(os.path.join(os.path.dirname(self.data), "broker.log"), "a")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--set", f"log.dirs={self.data}",
             "--set", "listeners=PLAINTEXT://127.0.0.1:0",
             "--set", "metrics.listener=127.0.0.1:0"],
            stdout=out, stderr=err)
        while time.monotonic() < self.deadline:
            out.seek(0)
            for line in out.read().splitlines():
                if line.startswith("strata: listening on "):
                    self.addr = line.split()[3]
                    return started
            if self.proc.poll() is not None:
                sys.exit(f"broker exited with {self.proc.returncode}")
            time.sleep(0.05)
        sys.exit("broker did not start in time")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def wait_partitions(addr, topic, n, deadline):
    admin = AdminClient({"bootstrap.servers": addr})
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(topic, timeout=10)
            t = md.topics.get(topic)
            if t and t.error is None and len(t.partitions) == n and all(
                    p.leader >= 0 and p.error is None for p in t.partitions.values()):
                return
        except Exception:  # noqa: BLE001 - the broker may still be starting
            pass
        time.sleep(0.2)
    sys.exit(f"{n} partitions of {topic} not led in time")


def api_versions(sock, correlation):
    # ApiVersions v0: header v1 (api key, version, correlation id, client id), no body.
    body = struct.pack(">hhih", 18, 0, correlation, 5) + b"scale"
    sock.sendall(struct.pack(">i", len(body)) + body)


def read_answer(sock):
    size = b""
    while len(size) < 4:
        chunk = sock.recv(4 - len(size))
        if not chunk:
            raise ConnectionError("closed")
        size += chunk
    left = struct.unpack(">i", size)[0]
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("closed")
        left -= len(chunk)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/strata")
    ap.add_argument("--partitions", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--work", default="/work/bench-data/scale")
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    data = os.path.join(a.work, "data")
    b = Broker(a.bin, data, deadline)
    res = {"partitions": a.partitions, "connections": a.connections,
           "loadavg_start": os.getloadavg()[0]}
    try:
        b.start()
        time.sleep(1)
        res["empty_rss_kib"] = rss_kib(b.proc.pid)
        res["empty_open_files"] = open_files(b.proc.pid)
        admin = AdminClient({"bootstrap.servers": b.addr})
        t0 = time.monotonic()
        fut = admin.create_topics([NewTopic("scale", a.partitions, 1)],
                                  operation_timeout=a.timeout, request_timeout=a.timeout)
        fut["scale"].result(timeout=max(1, deadline - time.monotonic()))
        wait_partitions(b.addr, "scale", a.partitions, deadline)
        res["create_s"] = round(time.monotonic() - t0, 2)
        time.sleep(3)
        res["created_rss_kib"] = rss_kib(b.proc.pid)
        res["created_open_files"] = open_files(b.proc.pid)
        b.stop()

        started = b.start()
        wait_partitions(b.addr, "scale", a.partitions, deadline)
        res["startup_s"] = round(time.monotonic() - started, 2)
        time.sleep(5)
        pid = b.proc.pid
        res["idle_rss_kib"] = rss_kib(pid)
        res["idle_open_files"] = open_files(pid)

        before = rss_kib(pid)
        socks = []
        for i in range(a.connections):
            if time.monotonic() > deadline:
                sys.exit("connections not opened in time")
            s = socket.create_connection(tuple(b.addr.rsplit(":", 1)), timeout=30)
            api_versions(s, i)
            socks.append(s)
        for s in socks:
            read_answer(s)
        time.sleep(2)
        after = rss_kib(pid)
        res["connections_rss_kib"] = after
        res["rss_per_connection_kib"] = round((after - before) / a.connections, 1)
        res["connections_open_files"] = open_files(pid)
        for s in socks:
            s.close()
        res["loadavg_end"] = os.getloadavg()[0]
    finally:
        b.stop()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
