"""Starts the real strata binary on an ephemeral 127.0.0.1 port for each test module.

`Broker.restart_same_port()` kills it with SIGKILL and starts it again on the same data
dir and port, so clients reconnect to the address they know (crash tests)."""

import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("BROKER_BIN", ROOT / "target" / "debug" / "strata"))


class Broker:
    def __init__(self, settings=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="strata-py-")
        self.data = pathlib.Path(self.tmp.name) / "data"
        self.log_path = pathlib.Path(self.tmp.name) / "broker.log"
        self.settings = dict(settings or {})
        self.proc = None
        self.addr = None
        self.start()

    def start(self, port=0):
        args = [str(BINARY), "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                "--set", f"log.dirs={self.data}",
                # Brokers may run in parallel: none may take the default metrics port.
                "--set", "metrics.listener=127.0.0.1:0"]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        log = open(self.log_path, "ab")
        # The broker rejects unknown STRATA_* variables, so pass none of the test's own.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_LOG"}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
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
        self.tmp.cleanup()


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
