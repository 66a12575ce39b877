"""Starts the real strata binary on an ephemeral 127.0.0.1 port for each test module.

`Broker.restart_same_port()` kills it with SIGKILL and starts it again on the same data
dir and port, so clients reconnect to the address they know (crash tests).

`Cluster` (fixture `cluster`) starts three nodes, each broker and controller, on fixed
127.0.0.1 ports so that a node killed and started again keeps its address."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("BROKER_BIN", ROOT / "target" / "debug" / "strata"))


class Broker:
    def __init__(self, settings=None, env=None):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="strata-py-"))
        self.data = self.tmp / "data"
        self.log_path = self.tmp / "broker.log"
        self.settings = dict(settings or {})
        self.extra_env = dict(env or {})
        self.proc = None
        self.addr = None
        # Listener name -> "host:port" as bound (from the "strata: listener" lines).
        self.listeners = {}
        self.start()

    def start(self, port=0):
        args = [str(BINARY), "serve", "--set", f"log.dirs={self.data}",
                # Brokers may run in parallel: none may take the default metrics port.
                "--set", "metrics.listener=127.0.0.1:0"]
        if "listeners" not in self.settings:
            args += ["--set", f"listeners=PLAINTEXT://127.0.0.1:{port}"]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        log = open(self.log_path, "ab")
        # The broker rejects unknown STRATA_* variables, so pass none of the test's own.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_LOG"}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        ready = threading.Event()
        self.listeners = {}

        def read():
            for line in self.proc.stdout:
                if line.startswith("strata: metrics on "):
                    self.metrics_addr = line.split()[3]
                if line.startswith("strata: console on "):
                    self.console_url = line.split()[3]
                if line.startswith("strata: listener "):
                    parts = line.split()
                    self.listeners[parts[2]] = parts[4]
                if line.startswith("strata: listening on "):
                    self.addr = line.split()[3]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.time() + 60
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.time() > deadline:
                break
        if not ready.is_set():
            self.kill()
            raise RuntimeError("broker did not start:\n" + self.log())

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    def restart_same_port(self):
        """kill -9, then start again on the same data dir and port."""
        port = self.port
        self.kill()
        self.start(port)
        assert self.port == port

    def close(self):
        self.kill()
        if os.environ.get("KEEP_BROKER_DATA"):
            print(f"broker data and log kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def broker():
    b = Broker()
    yield b
    b.close()


@pytest.fixture
def make_broker():
    made = []

    def make(settings=None):
        b = Broker(settings)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`n` nodes with node ids 1..n, each broker and controller (combined mode), on fixed
    ports: `kill(id)` then `start(id)` brings a node back at the same address."""

    def __init__(self, n=3, settings=None, node_settings=None):
        """`node_settings`: node id -> settings of that node only (e.g. its `broker.rack`)."""
        ports = [(free_port(), free_port()) for _ in range(n)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        base = {"controller.quorum.voters": voters, "group.initial.rebalance.delay.ms": 0,
                "offsets.topic.num.partitions": 10, **(settings or {})}
        self.nodes = [None] * n
        errors = []

        # The nodes start together: each waits for a quorum before it listens.
        def make(i):
            try:
                p, c = ports[i]
                own = (node_settings or {}).get(i + 1, {})
                self.nodes[i] = Broker({**base, **own, "node.id": i + 1,
                                        "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"})
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        if errors or any(b is None for b in self.nodes):
            self.close()
            raise RuntimeError(f"cluster did not start: {errors}")
        self.wait_for_brokers(n)

    @property
    def bootstrap(self):
        return ",".join(b.addr for b in self.nodes)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def kill(self, node_id):
        self.node(node_id).kill()

    def start(self, node_id):
        self.node(node_id).start()

    def metadata(self, topic=None):
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=10)

    def wait_for_brokers(self, n, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                if len(self.metadata().brokers) == n:
                    return
            except Exception:  # noqa: BLE001 - the cluster may still be electing
                pass
            if time.time() > deadline:
                raise AssertionError(f"the cluster did not list {n} brokers within {timeout} s")
            time.sleep(0.2)

    def partitions(self, topic):
        """partition -> (leader, replicas, isr) for `topic`."""
        t = self.metadata(topic).topics[topic]
        return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in t.partitions.values()}

    def wait_for_isr(self, topic, size, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                parts = self.partitions(topic)
                if parts and all(leader >= 0 and len(isr) >= size for leader, _, isr in parts.values()):
                    return parts
            except Exception:  # noqa: BLE001 - a node may be down
                parts = None
            if time.time() > deadline:
                raise AssertionError(f"{topic}: the ISR did not reach {size} within {timeout} s: {parts}")
            time.sleep(0.2)

    def logs(self, lines=40):
        return "\n".join(f"--- node {i + 1}\n" + "\n".join(b.log().splitlines()[-lines:])
                         for i, b in enumerate(self.nodes) if b)

    def close(self):
        for b in self.nodes:
            if b:
                b.close()


@pytest.fixture
def cluster():
    c = Cluster(3)
    yield c
    c.close()
