"""KIP-612 connection creation rates with raw connections from 127.0.0.1: the `ip` quota
entity's `connection_creation_rate` (set with `strata quota set --ip`, AlterClientQuotas)
holds an address to its rate (connections over it are accepted, never served, and closed
after the throttle time), the throttle is a metric, DescribeClientQuotas shows the entity,
and the broker-wide `max.connection.creation.rate` makes the listener wait."""

import socket
import struct
import subprocess
import time
import urllib.request

from conftest import BINARY

RATE = 5
ATTEMPTS = 60


def strata_quota(broker, *args):
    out = subprocess.run([str(BINARY), "quota", "-b", broker.addr, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def served(addr, timeout=3.0):
    """Opens a connection and sends ApiVersions v0: True if the broker answered."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
            s.sendall(struct.pack(">i", len(body)) + body)
            head = s.recv(4)
            return len(head) == 4
    except OSError:
        return False


def burst(addr, n):
    """Opens `n` connections as fast as possible, then sends ApiVersions on each: how many
    were served within 2 s, and how long opening them took."""
    host, port = addr.rsplit(":", 1)
    start = time.time()
    socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(n)]
    elapsed = time.time() - start
    body = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    for s in socks:
        try:
            s.sendall(struct.pack(">i", len(body)) + body)
        except OSError:
            pass
    time.sleep(2)
    ok = 0
    for s in socks:
        s.setblocking(False)
        try:
            ok += len(s.recv(4)) == 4
        except OSError:
            pass
        s.close()
    return ok, elapsed


def test_ip_connection_creation_rate_throttles_and_bounds_accepted_connections(make_broker):
    b = make_broker({})
    assert served(b.addr)
    strata_quota(b, "set", "--ip", "127.0.0.1", f"connection_creation_rate={RATE}")
    described = strata_quota(b, "describe", "--ip", "127.0.0.1")
    assert f"ip=127.0.0.1\tconnection_creation_rate={RATE}" in described, described
    # A user/client-id key on an ip entity is refused, as Kafka refuses it.
    bad = subprocess.run([str(BINARY), "quota", "-b", b.addr, "set", "--ip", "127.0.0.1", "producer_byte_rate=1"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "connection_creation_rate" in bad.stderr, bad.stderr

    time.sleep(1.1)  # the CLI's own connections above count too
    ok, elapsed = burst(b.addr, ATTEMPTS)
    # At most RATE a second over the span (and the first window), far below ATTEMPTS.
    bound = RATE * (elapsed + 2)
    assert 1 <= ok <= bound, (ok, bound, elapsed)
    assert ok < ATTEMPTS / 2, (ok, elapsed)
    text = urllib.request.urlopen(f"http://{b.metrics_addr}/metrics", timeout=10).read().decode()
    throttled = [ln for ln in text.splitlines()
                 if ln.startswith("strata_client_quota_throttled_total")
                 and 'quota="connection_creation_rate"' in ln and 'source="127.0.0.1"' in ln]
    assert throttled and float(throttled[0].split()[-1]) >= ATTEMPTS - ok - 1, throttled

    # Removing the quota serves every connection again.
    strata_quota(b, "remove", "--ip", "127.0.0.1", "connection_creation_rate")
    time.sleep(1)
    assert all(served(b.addr) for _ in range(20))


def test_default_ip_quota_applies_to_addresses_without_their_own(make_broker):
    b = make_broker({})
    strata_quota(b, "set", "--default-ip", "connection_creation_rate=2")
    assert "ip=<default>\tconnection_creation_rate=2" in strata_quota(b, "describe", "--default-ip")
    time.sleep(1.1)
    ok, elapsed = burst(b.addr, 20)
    assert 1 <= ok <= 2 * (elapsed + 2), (ok, elapsed)
    # An address's own quota wins over the default.
    strata_quota(b, "set", "--ip", "127.0.0.1", "connection_creation_rate=1000")
    time.sleep(1)
    assert all(served(b.addr) for _ in range(20))


def test_broker_wide_max_connection_creation_rate_delays_accepting(make_broker):
    b = make_broker({"max.connection.creation.rate": "5"})
    start = time.time()
    answers = [served(b.addr, timeout=10.0) for _ in range(20)]
    elapsed = time.time() - start
    # Every connection is served (clients wait in the backlog), at about 5 a second.
    assert all(answers)
    assert elapsed >= 1.5, elapsed
