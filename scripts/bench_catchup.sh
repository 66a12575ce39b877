#!/usr/bin/env bash
# Catch-up read benchmark (issue 14), every figure of one scenario from the same run:
#   1. one partition of MB megabytes of 1 KiB records is produced and tiered to moto;
#   2. the broker restarts with an empty chunk cache;
#   3. rdkafka_performance -C with client defaults reads the tiered records from offset 0
#      (broker CPU seconds measured from /proc around it);
#   4. the same .log objects are read with plain GETs (curl), one after another, then
#      8 at a time.
# Then the same with PARTS partitions read by one consumer against 8 parallel raw GETs.
#
# Needs: a release strata (BIN), rdkafka_performance (PERF, see docs/benchmarks.md), moto at
# S3_TEST_ENDPOINT with bucket S3_TEST_BUCKET, python3 with boto3 (moto's dependency).
set -euo pipefail
BIN=${BIN:-target/release/strata}
PERF=${PERF:-/tmp/rdkafka_performance}
S3=${S3_TEST_ENDPOINT:?set S3_TEST_ENDPOINT=http://127.0.0.1:PORT (moto)}
BUCKET=${S3_TEST_BUCKET:-strata-test}
MB=${MB:-512}
PARTS=${PARTS:-16}
SEGMENT=${SEGMENT:-67108864}        # one partition
SEGMENT_MANY=${SEGMENT_MANY:-8388608} # each of the PARTS partitions
WORK=${WORK:-/work/bench-data/catchup}
TICKS=$(getconf CLK_TCK)

rm -rf "$WORK" && mkdir -p "$WORK"
PID=""
ADDR=""
stop() { if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap stop EXIT

start() { # $1 = prefix
  local out="$WORK/stdout.$RANDOM"
  : >"$out"  # before the broker opens it, so the address poll cannot race the redirect
  env ${BROKER_ENV:-} "$BIN" serve --set log.dirs="$WORK/data" --set listeners=PLAINTEXT://127.0.0.1:0 \
    --set metrics.listener=127.0.0.1:0 --set remote.storage.url="s3://$BUCKET/$1" \
    --set remote.storage.s3.endpoint="$S3" --set remote.storage.s3.region=us-east-1 \
    --set remote.storage.s3.path.style=true --set remote.storage.s3.access.key.id=test \
    --set remote.storage.s3.secret.access.key=test \
    --set remote.log.manager.task.interval.ms=500 ${EXTRA:-} >"$out" 2>>"$WORK/broker.log" &
  PID=$!
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/^strata: listening on \([^ ]*\).*/\1/p' "$out")
    [ -n "$ADDR" ] && return 0
    sleep 0.1
  done
  echo "broker did not start"; tail -20 "$WORK/broker.log"; exit 1
}

cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

# Sum of the TIERED-END column of `strata tier status` for the topic (records tiered).
tiered() { "$BIN" tier status -b "$ADDR" "$1" | awk -v t="$1" '$1 == t && $6 ~ /^[0-9]+$/ {s += $6} END {print s + 0}'; }

# Waits until every closed segment is uploaded: the tiered count stops moving and is > 0.
wait_tiered() {
  local last=-1 now
  for _ in $(seq 1 600); do
    now=$(tiered "$1")
    if [ "$now" -gt 0 ] && [ "$now" = "$last" ]; then echo "$now"; return 0; fi
    last=$now
    sleep 2
  done
  echo "not tiered in time" >&2; exit 1
}

keys() { # .log objects under prefix $1, in key order
  python3 - "$S3" "$BUCKET" "$1" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3] + "/"):
    for o in page.get("Contents", []):
        if o["Key"].endswith(".log"):
            print(o["Key"], o["Size"])
EOF
}

raw_gets() { # $1 = parallelism, stdin = "key size" lines; prints MB/s (10^6 bytes)
  local list; list=$(cat)
  local bytes; bytes=$(echo "$list" | awk '{s += $2} END {print s}')
  local t0; t0=$(date +%s.%N)
  echo "$list" | awk '{print $1}' | xargs -P "$1" -I{} curl -sf -o /dev/null "$S3/$BUCKET/{}"
  local t1; t1=$(date +%s.%N)
  python3 -c "print(f'{$bytes / ($t1 - $t0) / 1e6:.0f}')"
}

consume() { # $1 = topic, $2 = records, rest = -p args; prints "MB/s cpu_s_per_GB"
  local topic=$1 n=$2; shift 2
  local c0; c0=$(cpu)
  local rec=""
  if [ -n "${PROFILE:-}" ]; then # PROFILE=path: perf record of the broker while it serves
    perf record -q -F 999 ${PROFILE_CALLGRAPH:--g} -p "$PID" -o "$PROFILE.$topic" >/dev/null 2>&1 &
    rec=$!
  fi
  local out; out=$("$PERF" -C -t "$topic" "$@" -o beginning -c "$n" -b "$ADDR" 2>&1 | tail -5)
  local c1; c1=$(cpu)
  if [ -n "$rec" ]; then kill -INT "$rec"; wait "$rec" 2>/dev/null || true; fi
  local line; line=$(echo "$out" | grep -E "messages .* consumed in" | tail -1)
  local bytes ms
  bytes=$(echo "$line" | sed -E 's/.*\(([0-9]+) bytes\).*/\1/')
  ms=$(echo "$line" | sed -E 's/.* consumed in ([0-9]+)ms.*/\1/')
  python3 -c "b=$bytes; s=$ms/1000; print(f'{b/s/1e6:.0f} {($c1-$c0)/$TICKS/(b/1e9):.2f} {b} {s:.2f}')"
}

scenario() { # $1 = name, $2 = partitions, $3 = segment bytes
  local name=$1 parts=$2 segment=$3 prefix="catchup-$1-$(date +%s)"
  start "$prefix"
  "$BIN" topic create -b "$ADDR" "$name" -p "$parts" -c remote.storage.enable=true \
    -c segment.bytes="$segment" -c local.retention.bytes=1 >/dev/null
  local records=$((MB * 1000 * 1000 / 1024))
  local pargs=()
  for p in $(seq 0 $((parts - 1))); do pargs+=(-p "$p"); done
  if [ "$parts" = 1 ]; then
    "$PERF" -P -t "$name" -p 0 -s 1024 -a 1 -c "$records" -b "$ADDR" -X linger.ms=5 -X batch.size=1000000 >/dev/null 2>&1
  else
    "$PERF" -P -t "$name" -s 1024 -a 1 -c "$records" -b "$ADDR" -X linger.ms=5 -X batch.size=1000000 >/dev/null 2>&1
  fi
  local n; n=$(wait_tiered "$name")
  stop
  rm -rf "$WORK/data/remote-cache"
  start "$prefix"
  sleep 2
  local got; got=$(consume "$name" "$n" "${pargs[@]}")
  local list; list=$(keys "$prefix")
  local objects; objects=$(echo "$list" | wc -l)
  local seq par
  seq=$(echo "$list" | raw_gets 1)
  par=$(echo "$list" | raw_gets 8)
  read -r rate cpu bytes secs <<<"$got"
  echo "$name: partitions=$parts records=$n bytes=$bytes objects=$objects consumer=${rate}MB/s (${secs}s, broker ${cpu} CPU-s/GB) raw_seq=${seq}MB/s raw_8=${par}MB/s ratio_seq=$(python3 -c "print(f'{$rate/$seq:.0%}')") ratio_8=$(python3 -c "print(f'{$rate/$par:.0%}')") load=$(cut -d' ' -f1 /proc/loadavg)"
  stop
}

# ONLY=one or ONLY=many runs one scenario; EXTRA="--set k=v ..." adds broker settings;
# PROFILE=/tmp/prof records the broker with perf while the consumer reads (/tmp/prof.<topic>).
[ "${ONLY:-one}" = one ] && scenario one 1 "$SEGMENT"
[ "${ONLY:-many}" = many ] && scenario many "$PARTS" "$SEGMENT_MANY"
true
