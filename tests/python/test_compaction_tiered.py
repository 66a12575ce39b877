"""Compaction on a tiered topic with a real client (confluent-kafka) against moto: small
segments and a short local retention leave most segments only in the remote tier, where
remote compaction passes rewrite them; a consumer from offset 0 then reads exactly the latest
value of every live key at its original offset, and no tombstone past delete.retention.ms, and
`strata tier status` shows the passes. A broker killed with SIGKILL in the middle of remote
passes loses no latest value.

Needs `S3_TEST_ENDPOINT` (moto, as scripts/test.sh starts it); skipped without it unless
`CI=true`, where it fails instead."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import BINARY
from test_compaction import produce, read_all, versions

S3 = os.environ.get("S3_TEST_ENDPOINT")
BUCKET = os.environ.get("S3_TEST_BUCKET", "strata-test")

pytestmark = pytest.mark.skipif(
    not S3 and os.environ.get("CI") != "true",
    reason="S3_TEST_ENDPOINT is not set (start moto_server and create the bucket)")

KEYS = 150
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "remote.storage.enable": "true",
    "segment.bytes": "8192",
    "segment.ms": "400",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3000",
    "local.retention.ms": "1000",
    "local.retention.bytes": "16384",
}


def settings(test, extra=None):
    assert S3, "CI=true but S3_TEST_ENDPOINT is not set: scripts/test.sh must start moto"
    return {
        "remote.storage.url": f"s3://{BUCKET}/{test}-{uuid.uuid4()}",
        "remote.storage.s3.endpoint": S3,
        "remote.storage.s3.region": "us-east-1",
        "remote.storage.s3.path.style": "true",
        "remote.storage.s3.access.key.id": "test",
        "remote.storage.s3.secret.access.key": "test",
        "remote.log.manager.task.interval.ms": 100,
        "remote.fetch.chunk.bytes": 65536,
        "log.cleaner.backoff.ms": 200,
        **(extra or {}),
    }


def create(b, name):
    from confluent_kafka.admin import AdminClient, NewTopic
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic(name, 1, 1, config=TOPIC_CONFIG)])[name].result(15)


def tier_status(b, topic):
    """`strata tier status` of partition 0 as column -> value."""
    out = subprocess.run([str(BINARY), "tier", "status", "-b", b.addr, topic],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    return dict(zip(header.split("\t"), row.split("\t")))


def wait_tiered(b, topic, end, timeout=90):
    """Until the remote tier holds every offset below `end`."""
    deadline, row = time.time() + timeout, None
    while time.time() < deadline:
        row = tier_status(b, topic)
        if row.get("REMOTE-END") == str(end):
            return row
        time.sleep(0.2)
    raise AssertionError(f"{topic}: not tiered up to {end}: {row}\n{b.log()[-4000:]}")


def produce_tracked(b, topic, records, latest):
    for (k, v), o in zip(records, produce(b, topic, records)):
        latest[k] = (o, v)
    return max(o for o, _ in latest.values()) + 1


def compacted(latest):
    return sorted((o, k, v) for k, (o, v) in latest.items() if v is not None)


def check_latest(got, latest, when):
    offsets = [o for o, _, _ in got]
    assert offsets == sorted(set(offsets)), f"{when}: offsets go back"
    last = {k: (o, v) for o, k, v in got}
    for k, (o, v) in latest.items():
        if k in last:
            assert last[k] == (o, v), f"{when}: {k}: latest {(o, v)}, read {last[k]}"
        else:
            assert v is None, f"{when}: the latest value of {k} (offset {o}) is lost"


def changelog(b, topic):
    """Four rounds of versions, each tiered before the next, then tombstones."""
    create(b, topic)
    latest = {}
    for r in range(4):
        end = produce_tracked(b, topic, versions(KEYS, 2, f"-{r}"), latest)
        wait_tiered(b, topic, end)
    produce_tracked(b, topic, [(f"key-{k}".encode(), None) for k in range(0, KEYS, 10)], latest)
    return latest


def wait_exact(b, topic, latest, timeout=120):
    want, got = compacted(latest), None
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = read_all(b, topic)
        check_latest(got, latest, "while compacting")
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{topic}: {len(got)} records, want {len(want)}\n{b.log()[-6000:]}")


def test_a_tiered_compacted_topic_reads_compacted_from_zero(make_broker):
    b = make_broker(settings("py-tcompact"))
    topic = "py-changelog"
    latest = changelog(b, topic)
    produced = KEYS * 8 + KEYS // 10
    time.sleep(3)  # past the tombstones' delete.retention.ms
    end = produce_tracked(b, topic, versions(20, 1, "-late"), latest)
    wait_tiered(b, topic, end)
    wait_exact(b, topic, latest)
    assert len(compacted(latest)) < produced // 4
    assert "remote compaction pass swapped" in b.log()
    row = tier_status(b, topic)
    assert row["COMPACTED-BELOW"] == str(end), row
    assert int(row["COMPACTIONS"].split()[0]) >= 1, row
    assert row["COMPACTED-RANGE"].startswith("0-"), row
    before, after = (int(x) for x in row["COMPACT-BYTES"].split("->"))
    assert after <= before, row
    # Most data is only remote: the local log starts at (or next to) the end.
    assert int(row["LOCAL-START"]) >= end - 50, row


def test_kill9_during_remote_passes_loses_no_latest_value(make_broker):
    # Slow passes (40 KB/s of reads and uploads) so that the kills land inside them.
    b = make_broker(settings("py-tcompact-kill", {"remote.log.compaction.max.bytes.per.second": 40000}))
    topic = "py-crashy"
    latest = changelog(b, topic)
    for r in range(3):
        started = b.log().count("remote compaction pass started")
        deadline = time.time() + 60
        while b.log().count("remote compaction pass started") == started:
            assert time.time() < deadline, "no remote pass started"
            time.sleep(0.05)
        time.sleep(0.2 + 0.6 * r)
        b.restart_same_port()
        check_latest(read_all(b, topic), latest, f"after kill {r}")
        produce_tracked(b, topic, versions(KEYS, 2, f"-k{r}"), latest)
    end = max(o for o, _ in latest.values()) + 1
    wait_tiered(b, topic, end)
    wait_exact(b, topic, latest, 180)
