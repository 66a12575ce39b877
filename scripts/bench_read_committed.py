#!/usr/bin/env python3
"""read_committed against read_uncommitted consumption of the same log, in which 10% of
the records belong to aborted transactions: one partition, one broker, 1 KiB records, in
the same run (docs/benchmarks.md, "Transactions").

A transactional producer writes TRANSACTIONS transactions of RECORDS_PER_TXN records;
every tenth is aborted. Then each round reads the whole partition from offset 0 to its
end with a fresh consumer, once with isolation.level=read_uncommitted and once with
read_committed (order alternating between rounds); the figures are the time to reach the
end, the records delivered per second and the log bytes read per second.

Usage: python3 scripts/bench_read_committed.py [path/to/strata] [rounds] [transactions]
       (default target/release/strata, 3, 300)
"""

import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "python"))
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from group_helpers import create_topic, free_port  # noqa: E402

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/strata"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
TRANSACTIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
RECORDS_PER_TXN = 1000
VALUE = b"x" * 1024
TOPIC = "rc"


def start_broker(data):
    port = free_port()
    args = [BINARY, "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--set", f"log.dirs={data}", "--set", "metrics.listener=127.0.0.1:0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("strata: listening on "):
            return proc, f"127.0.0.1:{port}"
    raise RuntimeError("broker did not start")


def fill(addr):
    """Writes the log; returns (records committed, records aborted)."""
    p = Producer({"bootstrap.servers": addr, "transactional.id": "bench-rc", "linger.ms": 5,
                  "queue.buffering.max.kbytes": 65536})
    p.init_transactions(30)
    committed = aborted = 0
    for t in range(TRANSACTIONS):
        p.begin_transaction()
        for _ in range(RECORDS_PER_TXN):
            while True:
                try:
                    p.produce(TOPIC, VALUE, partition=0)
                    break
                except BufferError:
                    p.poll(0.01)
        p.flush(60)
        if t % 10 == 9:
            p.abort_transaction(30)
            aborted += RECORDS_PER_TXN
        else:
            p.commit_transaction(30)
            committed += RECORDS_PER_TXN
    return committed, aborted


def read(addr, isolation):
    """Reads partition 0 from offset 0 to its end: (records, seconds)."""
    c = Consumer({"bootstrap.servers": addr, "group.id": f"bench-{isolation}-{time.time()}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": isolation})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    n, start = 0, time.perf_counter()
    while True:
        msgs = c.consume(1000, 0.1)
        done = False
        for m in msgs:
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done = True
                    continue
                raise KafkaException(m.error())
            n += 1
        if done:
            break
    elapsed = time.perf_counter() - start
    c.close()
    return n, elapsed


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-rc-"))
    proc, addr = start_broker(tmp / "data")
    try:
        create_topic(addr, TOPIC, 1)
        committed, aborted = fill(addr)
        log_mib = (committed + aborted) * (len(VALUE) + 8) / (1 << 20)
        print(f"log: {committed:,} committed + {aborted:,} aborted records "
              f"({100 * aborted / (committed + aborted):.0f}% aborted), ~{log_mib:,.0f} MiB",
              flush=True)
        times = {"read_uncommitted": [], "read_committed": []}
        for r in range(ROUNDS):
            order = ["read_uncommitted", "read_committed"]
            if r % 2:
                order.reverse()
            for isolation in order:
                n, s = read(addr, isolation)
                want = committed + aborted if isolation == "read_uncommitted" else committed
                assert n == want, f"{isolation}: read {n}, want {want}"
                times[isolation].append(s)
                print(f"round {r} {isolation}: {n:,} records in {s:.2f} s = {n / s:,.0f} rec/s, "
                      f"log {log_mib / s:,.1f} MiB/s", flush=True)
        mu = statistics.median(times["read_uncommitted"])
        mc = statistics.median(times["read_committed"])
        print(f"median: read_uncommitted {mu:.2f} s ({(committed + aborted) / mu:,.0f} rec/s, "
              f"log {log_mib / mu:,.1f} MiB/s), read_committed {mc:.2f} s ({committed / mc:,.0f} "
              f"rec/s, log {log_mib / mc:,.1f} MiB/s); log read rate committed/uncommitted "
              f"{mu / mc:.2f}")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
