"""Log compaction with real clients (confluent-kafka): a compacted topic keeps the latest
value of every key at its original offset, tombstones go after delete.retention.ms,
compact,delete also applies retention.ms, a record without a key is refused, and a broker
killed with SIGKILL in the middle of cleaning passes loses no latest value."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KEYS = 200
VERSIONS = 10
# The cleaner looks for work often, cleans at any dirty ratio, and the segments are small and
# roll by time, so that a test sees passes within seconds.
CLEANER = {"log.cleaner.backoff.ms": 100, "log.retention.check.interval.ms": 200}
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": "16384",
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1500",
    # Retention does not apply to a compact-only topic: a short one must delete nothing.
    "retention.ms": "1000",
}


def create(b, name, config):
    a = AdminClient({"bootstrap.servers": b.addr})
    a.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(15)


def produce(b, topic, records, codec="none"):
    """records: (key, value or None) in order; returns the offset of each."""
    p = Producer({"bootstrap.servers": b.addr, "compression.type": codec, "linger.ms": 5,
                  "enable.idempotence": True})
    offsets, errors = [None] * len(records), []

    def done(i):
        def cb(err, msg):
            if err:
                errors.append(err)
            else:
                offsets[i] = msg.offset()
        return cb

    for i, (k, v) in enumerate(records):
        p.produce(topic, key=k, value=v, partition=0, on_delivery=done(i))
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    assert errors == [], errors
    return offsets


def read_all(b, topic, timeout=30):
    """Every record of partition 0 from the log start, as (offset, key, value)."""
    c = Consumer({"bootstrap.servers": b.addr, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            raise KafkaException(m.error())
        out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def versions(keys, rounds, round_tag=""):
    """`rounds` versions of each key, interleaved as a changelog writes them."""
    return [(f"key-{k}".encode(), f"v{r}{round_tag}-of-{k}".encode())
            for r in range(rounds) for k in range(keys)]


def wait_compacted(b, topic, latest, timeout=60):
    """Reads from 0 until the log holds exactly `latest` (key -> (offset, value)), the latest
    record of every live key at its original offset, and nothing else."""
    deadline, got = time.time() + timeout, None
    while time.time() < deadline:
        got = read_all(b, topic)
        seen = {k: (o, v) for o, k, v in got}
        # A consumer reading from 0 always gets at least the latest value of every key.
        for k, want in latest.items():
            assert seen.get(k) == want, f"{k}: latest {want}, read {seen.get(k)}"
        if len(got) == len(latest):
            return got
        time.sleep(0.5)
    raise AssertionError(f"{topic}: {len(got)} records left after {timeout} s, want {len(latest)}")


@pytest.mark.parametrize("codec", ["none", "lz4"])
def test_compaction_keeps_the_latest_value_of_every_key_and_drops_tombstones(make_broker, codec):
    b = make_broker(CLEANER)
    topic = f"changelog-{codec}"
    create(b, topic, TOPIC_CONFIG)
    records = versions(KEYS, VERSIONS)
    offsets = produce(b, topic, records, codec)
    latest = {}
    for (k, v), o in zip(records, offsets):
        latest[k] = (o, v)
    # Retention never runs on a compact-only topic, and the cleaner leaves one record a key.
    got = wait_compacted(b, topic, latest)
    assert [o for o, _, _ in got] == sorted(o for o, _ in latest.values())

    # Tombstones for a tenth of the keys: they stay readable, then go after
    # delete.retention.ms once a pass has run after it.
    dead = [f"key-{k}".encode() for k in range(0, KEYS, 10)]
    produce(b, topic, [(k, None) for k in dead], codec)
    got = read_all(b, topic)
    assert any(k in dead and v is None for _, k, v in got), "tombstones are readable at first"
    time.sleep(2)
    # New writes make the log dirty again, so a pass runs after the horizon.
    more = versions(5, 1, "-late")
    more_offsets = produce(b, topic, more, codec)
    for k in dead:
        del latest[k]
    for (k, v), o in zip(more, more_offsets):
        latest[k] = (o, v)
    wait_compacted(b, topic, latest)
    assert "cleaned log" in b.log()


def test_compact_delete_applies_retention_and_compaction(make_broker):
    b = make_broker(CLEANER)
    create(b, "both", {**TOPIC_CONFIG, "cleanup.policy": "compact,delete", "retention.ms": "1500"})
    produce(b, "both", versions(50, 4))
    deadline = time.time() + 30
    while time.time() < deadline and read_all(b, "both"):
        time.sleep(0.5)
    assert read_all(b, "both") == [], "compact,delete deletes by retention.ms too"


def test_a_record_without_a_key_is_refused_on_a_compacted_topic(make_broker):
    b = make_broker(CLEANER)
    create(b, "needs-keys", TOPIC_CONFIG)
    p = Producer({"bootstrap.servers": b.addr, "retries": 0, "enable.idempotence": False})
    errors = []
    p.produce("needs-keys", value=b"no key", partition=0, on_delivery=lambda e, m: errors.append(e))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].name() == "INVALID_RECORD", errors[0]
    # A keyed record goes through.
    assert produce(b, "needs-keys", [(b"k", b"v")]) == [0]


def test_kill9_during_cleaning_loses_no_latest_value(make_broker):
    # A slow cleaner (a small I/O rate) so that the kills land in the middle of passes.
    b = make_broker({**CLEANER, "log.cleaner.io.max.bytes.per.second": 400000})
    create(b, "crashy", TOPIC_CONFIG)
    latest = {}
    for round_ in range(4):
        records = versions(KEYS, 5, f"-r{round_}")
        for (k, v), o in zip(records, produce(b, "crashy", records)):
            latest[k] = (o, v)
        time.sleep(0.7 + 0.3 * round_)
        b.restart_same_port()
        got = read_all(b, "crashy")
        seen = {k: (o, v) for o, k, v in got}
        for k, want in latest.items():
            assert seen.get(k) == want, f"after kill {round_}: {k}: latest {want}, read {seen.get(k)}"
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(set(offsets)), "offsets stay unique and increasing"
    wait_compacted(b, "crashy", latest)
    assert list(b.data.glob("crashy-0/*.cleaned")) == []
    assert not (b.data / "crashy-0" / "cleaner-swap").exists()


def test_an_invalid_cleanup_policy_is_invalid_config(make_broker):
    b = make_broker(CLEANER)
    a = AdminClient({"bootstrap.servers": b.addr})
    f = a.create_topics([NewTopic("bad-policy", 1, 1, config={"cleanup.policy": "shred"})])["bad-policy"]
    with pytest.raises(KafkaException) as e:
        f.result(15)
    assert e.value.args[0].name() == "INVALID_CONFIG", e.value
