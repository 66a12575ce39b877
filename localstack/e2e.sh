#!/usr/bin/env bash
# End to end on LocalStack S3: produce, tier, consume from the remote tier.
#
#   1. start LocalStack (start.sh) on a free port and create a bucket;
#   2. run `strata serve` with remote.storage.url=s3://<bucket>/e2e and the standard AWS
#      environment (endpoint, static keys, region, path-style);
#   3. create a topic with remote.storage.enable=true, small segments and a short
#      local retention, so closed segments are uploaded and then leave the local disk;
#   4. produce N records (kcat, or confluent-kafka if kcat is missing);
#   5. wait until segment objects appear in the bucket and the local log start offset
#      has moved past 0 (`strata tier status`);
#   6. consume from offset 0 and check all N records come back, in order.
#
# Part of scripts/test.sh; by hand: localstack/e2e.sh (E2E_STRATA_BIN picks the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

N="${E2E_RECORDS:-5000}"
TOPIC="tiered-e2e"
BUCKET="strata-e2e"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/strata-e2e.XXXXXX")"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export LOCALSTACK_PORT="$PORT" LOCALSTACK_STATE_DIR="$WORK/localstack" LOCALSTACK_BUCKET="$BUCKET" LOCALSTACK_PREFIX="e2e"
STRATA_PID=""

step() { echo "== e2e: $*" >&2; }
cleanup() {
    local rc=$?
    if [ -n "$STRATA_PID" ] && kill -0 "$STRATA_PID" 2>/dev/null; then
        kill -TERM "$STRATA_PID" 2>/dev/null || true
        wait "$STRATA_PID" 2>/dev/null || true
    fi
    "$ROOT/localstack/stop.sh" || true
    if [ "$rc" -ne 0 ]; then
        echo "== e2e: FAILED; broker log:" >&2
        tail -n 60 "$WORK/strata.log" >&2 2>/dev/null || true
        echo "== e2e: work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

[ -x target/debug/strata ] || cargo build --bins
CLI="$ROOT/target/debug/strata"                 # admin CLI of this checkout
STRATA="${E2E_STRATA_BIN:-$CLI}"                # the broker under test

step "starting LocalStack on 127.0.0.1:$PORT"
eval "$("$ROOT/localstack/start.sh")"
PY="${DEV_TOOLING_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-tooling}/localstack-4.13.1/bin/python"

step "starting strata with remote.storage.url=$STRATA_REMOTE_STORAGE_URL"
# Created before the broker starts: the background job opens it only once it runs, and
# awk must not race it (a missing file is awk's exit 2, which set -e turns into a failure).
: >"$WORK/stdout"
"$STRATA" serve \
    --set listeners=PLAINTEXT://127.0.0.1:0 \
    --set "log.dirs=$WORK/data" \
    --set "remote.storage.url=$STRATA_REMOTE_STORAGE_URL" \
    --set log.retention.check.interval.ms=500 \
    >"$WORK/stdout" 2>"$WORK/strata.log" &
STRATA_PID=$!
ADDR=""
for _ in $(seq 1 600); do
    ADDR="$(awk '/^strata: listening on / {print $4; exit}' "$WORK/stdout")"
    [ -n "$ADDR" ] && break
    if ! kill -0 "$STRATA_PID" 2>/dev/null; then
        echo "strata exited during startup:" >&2
        cat "$WORK/strata.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "strata did not start within 60 s" >&2; exit 1; }
step "broker at $ADDR"

"$CLI" topic create "$TOPIC" -b "$ADDR" -p 1 \
    -c remote.storage.enable=true \
    -c segment.bytes=65536 \
    -c local.retention.ms=1000 \
    -c retention.ms=-1

step "producing $N records"
seq -f "record-%06g" 1 "$N" >"$WORK/expected"
if command -v kcat >/dev/null 2>&1; then
    kcat -P -b "$ADDR" -t "$TOPIC" -p 0 -X acks=all -X linger.ms=0 -X batch.num.messages=100 -l "$WORK/expected"
else
    python3 - "$ADDR" "$TOPIC" "$WORK/expected" <<'PY'
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": "all", "linger.ms": 0, "batch.num.messages": 100})
for line in open(sys.argv[3]):
    p.produce(sys.argv[2], line.rstrip("\n").encode(), partition=0)
p.flush(30)
PY
fi

step "waiting for segments in s3://$BUCKET/e2e and for local segments to be deleted"
deadline=$((SECONDS + 120))
while :; do
    objects="$("$PY" - "$BUCKET" <<'PY'
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1], Prefix="e2e/")
        for o in page.get("Contents", [])]
print(sum(1 for k in keys if k.endswith(".log")))
PY
)"
    local_start="$("$CLI" tier status "$TOPIC" -b "$ADDR" 2>/dev/null | awk -F'\t' -v t="$TOPIC" '$1==t && $2==0 {print $5}')"
    if [ "${objects:-0}" -gt 0 ] && [ -n "$local_start" ] && [ "$local_start" != "-" ] && [ "$local_start" -gt 0 ]; then
        step "$objects segment object(s) in the bucket; local log starts at offset $local_start"
        break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "no tiering after 120 s: ${objects:-0} segment objects, local start '${local_start}'" >&2
        "$CLI" tier status "$TOPIC" -b "$ADDR" >&2 || true
        exit 1
    fi
    sleep 1
done

step "consuming from offset 0 (the first offsets are only in the remote tier)"
if command -v kcat >/dev/null 2>&1; then
    kcat -C -b "$ADDR" -t "$TOPIC" -p 0 -o beginning -e -q -c "$N" >"$WORK/got"
else
    python3 - "$ADDR" "$TOPIC" "$N" >"$WORK/got" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "e2e", "enable.auto.commit": False})
c.assign([TopicPartition(sys.argv[2], 0, 0)])
n = int(sys.argv[3]); got = 0
while got < n:
    m = c.poll(10)
    if m is None: break
    if m.error(): raise SystemExit(str(m.error()))
    print(m.value().decode()); got += 1
PY
fi
if ! cmp -s "$WORK/expected" "$WORK/got"; then
    echo "consumed records differ from produced ones: $(wc -l <"$WORK/got") of $N lines" >&2
    diff "$WORK/expected" "$WORK/got" | head -5 >&2
    exit 1
fi
step "PASS: $N records produced, tiered to LocalStack S3, consumed from offset 0"
