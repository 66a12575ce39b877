#!/usr/bin/env python3
"""Transactional produce (a commit every 100 ms) against idempotent produce, 1 KiB
records, one partition, one broker, in the same run (docs/benchmarks.md, "Transactions").

Each round produces for SECONDS with each producer in turn (idempotent, then
transactional) as fast as librdkafka takes records; the figure is records acknowledged
(idempotent) or committed (transactional) per second.

Usage: python3 scripts/bench_txn.py [path/to/strata] [rounds]   (default target/release/strata, 3)
"""

import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from confluent_kafka import KafkaException, Producer  # noqa: E402
from group_helpers import create_topic, free_port  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/strata"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
SECONDS = 10
VALUE = b"x" * 1024
COMMIT_EVERY = 0.1


def start_broker(data):
    port = free_port()
    args = [BINARY, "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--set", f"log.dirs={data}", "--set", "metrics.listener=127.0.0.1:0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("strata: listening on "):
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("broker did not start")


def idempotent(addr, topic):
    acked = [0]
    p = Producer({"bootstrap.servers": addr, "enable.idempotence": True, "linger.ms": 5,
                  "queue.buffering.max.kbytes": 65536})

    def cb(err, _msg):
        if err is None:
            acked[0] += 1

    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < SECONDS:
        try:
            p.produce(topic, VALUE, on_delivery=cb)
            sent += 1
        except BufferError:
            p.poll(0.001)
        if sent % 1000 == 0:
            p.poll(0)
    p.flush(60)
    return acked[0] / (time.perf_counter() - start)


def transactional(addr, topic, tid):
    p = Producer({"bootstrap.servers": addr, "transactional.id": tid, "linger.ms": 5,
                  "queue.buffering.max.kbytes": 65536})
    p.init_transactions(30)
    committed, in_txn = [0], [0]
    p.begin_transaction()
    start = time.perf_counter()

    def commit():
        p.commit_transaction(30)
        committed[0] += in_txn[0]
        in_txn[0] = 0
        p.begin_transaction()

    last = time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        try:
            p.produce(topic, VALUE)
            in_txn[0] += 1
        except BufferError:
            p.poll(0.001)
        if time.perf_counter() - last >= COMMIT_EVERY:
            commit()
            last = time.perf_counter()
    p.commit_transaction(30)
    committed[0] += in_txn[0]
    return committed[0] / (time.perf_counter() - start)


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-txn-"))
    proc, addr = start_broker(tmp / "data")
    try:
        idem, txn = [], []
        for r in range(ROUNDS):
            create_topic(addr, f"idem-{r}", 1)
            create_topic(addr, f"txn-{r}", 1)
            idem.append(idempotent(addr, f"idem-{r}"))
            txn.append(transactional(addr, f"txn-{r}", f"bench-{r}"))
            print(f"round {r}: idempotent {idem[-1]:,.0f} rec/s, transactional {txn[-1]:,.0f} rec/s, "
                  f"ratio {txn[-1] / idem[-1]:.2f}", flush=True)
        mi, mt = statistics.median(idem), statistics.median(txn)
        print(f"median: idempotent {mi:,.0f} rec/s ({mi / 1024:,.1f} MiB/s), transactional "
              f"{mt:,.0f} rec/s ({mt / 1024:,.1f} MiB/s), ratio {mt / mi:.2f}")
    except KafkaException as e:
        print("failed:", e)
        raise
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
