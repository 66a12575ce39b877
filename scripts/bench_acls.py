#!/usr/bin/env python3
"""The authorizer's cost: produce and consume throughput, 1 KiB records, on a broker with
ACLs on (the client allowed by a literal ACL among --acls unrelated ones) against the same
broker configuration with no authorizer, in one run, rounds alternating
(docs/benchmarks.md, "Security").

Both brokers serve SASL_PLAINTEXT with PLAIN (no TLS, so only authorization differs) and
bind 127.0.0.1; they are stopped at the end. Uses bench_security.py's producer and consumer.

    cargo build --release --bins
    python3 scripts/bench_acls.py --binary target/release/strata --records 300000 --acls 1000
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

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench_security import consume, produce  # noqa: E402
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,  # noqa: E402
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_admin="admin-pw" user_bench="bench-pw";')


def start(binary, tmp, authorizer):
    args = [binary, "serve", "--set", f"log.dirs={tmp / 'data'}", "--set", "metrics.listener=none",
            "--set", "listeners=SASL_PLAINTEXT://127.0.0.1:0",
            "--set", "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN",
            "--set", f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
            "--set", "group.initial.rebalance.delay.ms=0"]
    if authorizer:
        args += ["--set", "authorizer.class.name=strata", "--set", "super.users=User:admin"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(tmp / "broker.log", "wb"), text=True)
    addr, ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            if line.startswith("strata: listening on "):
                addr.append(line.split()[3])
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        raise SystemExit("the broker did not start; see " + str(tmp / "broker.log"))
    return proc, addr[0]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (from /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def conf(addr, user, pw):
    return {"bootstrap.servers": addr, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": pw}


def grant(addr, topics, unrelated):
    admin = AdminClient(conf(addr, "admin", "admin-pw"))
    acls = [AclBinding(ResourceType.TOPIC, f"other-{i}", ResourcePatternType.LITERAL,
                       f"User:u{i}", "*", AclOperation.READ, AclPermissionType.ALLOW)
            for i in range(unrelated)]
    for t in topics:
        for op in (AclOperation.WRITE, AclOperation.READ):
            acls.append(AclBinding(ResourceType.TOPIC, t, ResourcePatternType.LITERAL,
                                   "User:bench", "*", op, AclPermissionType.ALLOW))
    acls.append(AclBinding(ResourceType.GROUP, "bench-", ResourcePatternType.PREFIXED,
                           "User:bench", "*", AclOperation.READ, AclPermissionType.ALLOW))
    for f in admin.create_acls(acls).values():
        f.result(120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT.parent / "target" / "release" / "strata"))
    ap.add_argument("--records", type=int, default=300000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--acls", type=int, default=1000)
    args = ap.parse_args()
    tmps = [pathlib.Path(tempfile.mkdtemp(prefix=f"strata-aclbench-{k}-")) for k in ("off", "on")]
    brokers = {}
    try:
        for name, tmp in zip(("off", "on"), tmps):
            brokers[name] = start(args.binary, tmp, name == "on")
        topics = {name: [f"bench-{name}-{r}" for r in range(args.rounds)] for name in brokers}
        for name, (_, addr) in brokers.items():
            admin = AdminClient(conf(addr, "admin", "admin-pw"))
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics[name]]).values():
                f.result(30)
        t0 = time.time()
        grant(brokers["on"][1], topics["on"], args.acls)
        print(f"created {args.acls + 2 * args.rounds + 1} ACLs in {time.time() - t0:.1f} s", flush=True)
        results = {"off": [], "on": []}
        for r in range(args.rounds):
            # Alternate which broker goes first: the second one meets the first one's
            # write-back on the shared disk.
            for name in (("off", "on") if r % 2 == 0 else ("on", "off")):
                proc, addr = brokers[name]
                c = conf(addr, "bench", "bench-pw")
                topic = topics[name][r]
                cpu0 = cpu_seconds(proc.pid)
                pmb, prs = produce(c, topic, args.records, args.size)
                cpu1 = cpu_seconds(proc.pid)
                cmb, crs = consume(c, topic, args.records, args.size)
                cpu2 = cpu_seconds(proc.pid)
                gb = args.records * args.size / 1e9
                pcpu, ccpu = (cpu1 - cpu0) / gb, (cpu2 - cpu1) / gb
                results[name].append((pmb, cmb, pcpu, ccpu))
                print(f"round {r} authorizer {name:3} produce {pmb:7.1f} MB/s ({prs:8.0f} rec/s, "
                      f"broker {pcpu:5.2f} CPU s/GB)   consume {cmb:7.1f} MB/s ({crs:8.0f} rec/s, "
                      f"broker {ccpu:5.2f} CPU s/GB)", flush=True)

        def median(name, i):
            v = sorted(x[i] for x in results[name])
            return v[len(v) // 2]

        print(f"median of {args.rounds} ({args.acls} unrelated ACLs): on/off produce "
              f"{median('on', 0) / median('off', 0):.2f}x, consume {median('on', 1) / median('off', 1):.2f}x; "
              f"broker CPU per GB on/off produce {median('on', 2) / median('off', 2):.2f}x, "
              f"consume {median('on', 3) / median('off', 3):.2f}x")
    except BaseException:
        print(f"broker logs kept in {tmps}")
        raise
    else:
        for t in tmps:
            shutil.rmtree(t, ignore_errors=True)
    finally:
        for proc, _ in brokers.values():
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
