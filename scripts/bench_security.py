#!/usr/bin/env python3
"""Produce and consume throughput over SASL_SSL (SCRAM-SHA-256, TLS 1.3) against
PLAINTEXT, 1 KiB records, on one broker in one run (docs/benchmarks.md, "Security").

The client is confluent-kafka (librdkafka with OpenSSL, from its wheel), the same for
both listeners, so the ratio is the broker's cost of TLS and SASL plus the client's TLS.
Key material is generated here (tests/python/security_helpers.py); the broker binds
127.0.0.1 only and is stopped at the end.

    cargo build --release --bins
    python3 scripts/bench_security.py --binary target/release/strata --records 500000
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from security_helpers import Pki  # noqa: E402


def start_broker(binary, tmp, pki):
    args = [binary, "serve", "--set", f"log.dirs={tmp / 'data'}", "--set", "metrics.listener=none",
            "--set", "listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
            "--set", f"ssl.keystore.location={pki.broker}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(tmp / "broker.log", "wb"), text=True)
    listeners, ready = {}, threading.Event()

    def read():
        for line in proc.stdout:
            if line.startswith("strata: listener "):
                parts = line.split()
                listeners[parts[2]] = parts[4]
            if line.startswith("strata: listening on "):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise SystemExit("the broker did not start; see " + str(tmp / "broker.log"))
    return proc, listeners


def produce(conf, topic, records, size):
    p = Producer({**conf, "linger.ms": 5, "batch.size": 1000000, "acks": 1,
                  "queue.buffering.max.messages": 500000, "queue.buffering.max.kbytes": 1048576})
    value = os.urandom(size)
    errors = []

    def report(err, _msg):
        if err is not None and len(errors) < 5:
            errors.append(err)

    t0 = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.001)
    left = p.flush(120)
    elapsed = time.perf_counter() - t0
    assert left == 0 and not errors, f"{left} records not delivered: {errors}"
    return records * size / elapsed / 1e6, records / elapsed


def consume(conf, topic, records, size):
    c = Consumer({**conf, "group.id": f"bench-{topic}-{time.time()}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                  "max.partition.fetch.bytes": 10485760})
    c.subscribe([topic])
    got, t0 = 0, None
    deadline = time.time() + 180
    while got < records and time.time() < deadline:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                continue
            if t0 is None:
                t0 = time.perf_counter()
            got += 1
    elapsed = time.perf_counter() - t0
    c.close()
    assert got >= records, f"consumed {got} of {records}"
    return records * size / elapsed / 1e6, records / elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "strata"))
    ap.add_argument("--records", type=int, default=500000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="strata-secbench-"))
    pki = Pki(tmp)
    proc, listeners = start_broker(args.binary, tmp, pki)
    try:
        plain = {"bootstrap.servers": listeners["PLAINTEXT"]}
        subprocess.run([args.binary, "user", "scram", "set", "bench", "--password", "bench-secret",
                        "-b", listeners["PLAINTEXT"]], check=True, capture_output=True)
        secure = {"bootstrap.servers": listeners["SASL_SSL"], "security.protocol": "SASL_SSL",
                  "ssl.ca.location": pki.ca, "sasl.mechanism": "SCRAM-SHA-256",
                  "sasl.username": "bench", "sasl.password": "bench-secret"}
        admin = AdminClient(plain)
        results = {"PLAINTEXT": [], "SASL_SSL": []}
        for r in range(args.rounds):
            for name, conf in (("PLAINTEXT", plain), ("SASL_SSL", secure)):
                topic = f"bench-{name.lower()}-{r}"
                for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
                    f.result()
                pmb, prs = produce(conf, topic, args.records, args.size)
                cmb, crs = consume(conf, topic, args.records, args.size)
                results[name].append((pmb, cmb))
                print(f"round {r} {name:10} produce {pmb:7.1f} MB/s ({prs:9.0f} rec/s)   "
                      f"consume {cmb:7.1f} MB/s ({crs:9.0f} rec/s)", flush=True)
        best = {k: (max(p for p, _ in v), max(c for _, c in v)) for k, v in results.items()}
        print(f"best of {args.rounds}: PLAINTEXT produce {best['PLAINTEXT'][0]:.1f} consume "
              f"{best['PLAINTEXT'][1]:.1f} MB/s; SASL_SSL produce {best['SASL_SSL'][0]:.1f} consume "
              f"{best['SASL_SSL'][1]:.1f} MB/s; ratio produce "
              f"{best['SASL_SSL'][0] / best['PLAINTEXT'][0]:.2f}x consume "
              f"{best['SASL_SSL'][1] / best['PLAINTEXT'][1]:.2f}x")
    except BaseException:
        print(f"broker log kept in {tmp / 'broker.log'}")
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
