"""Starts the real strata binary on an ephemeral 127.0.0.1 port for each test module."""

import os
import pathlib
import signal
import subprocess
import tempfile
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("STRATA_BIN", ROOT / "target" / "debug" / "strata"))


class Broker:
    def __init__(self, settings=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="strata-py-")
        self.data = pathlib.Path(self.tmp.name) / "data"
        self.log_path = pathlib.Path(self.tmp.name) / "broker.log"
        self.settings = dict(settings or {})
        self.proc = None
        self.addr = None
        self.start()

    def start(self):
        args = [str(BINARY), "serve", "--set", "listeners=PLAINTEXT://127.0.0.1:0",
                "--set", f"log.dirs={self.data}"]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        log = open(self.log_path, "ab")
        # STRATA_BIN is for this harness; the broker rejects unknown STRATA_* variables.
        env = {k: v for k, v in os.environ.items() if k != "STRATA_BIN"}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                if line.startswith("strata: listening on "):
                    self.addr = line.split()[3]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
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
