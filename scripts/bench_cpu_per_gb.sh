#!/usr/bin/env bash
# Broker CPU-seconds per GB for produce and for consume from the page cache (issue 14),
# the copying paths (STRATA_BENCH_COPY_PATH=1: produce copies each request, fetch preads
# into memory) against the zero-copy ones (pwritev of patched headers; sendfile), with the
# same release binary, alternating, ROUNDS times. CPU = utime+stime of the broker from
# /proc/PID/stat around each client run. Prints one line per run with the load average.
#
# Needs: a release strata (BIN), rdkafka_performance (PERF, see docs/benchmarks.md).
set -euo pipefail
BIN=${BIN:-target/release/strata}
PERF=${PERF:-/tmp/rdkafka_performance}
RECORDS=${RECORDS:-1000000}   # of 1 KiB
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-/work/bench-data/cpu}
TICKS=$(getconf CLK_TCK)
PID=""
stop() { if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; fi; }
trap stop EXIT

run() { # $1 = copy|zero
  rm -rf "$WORK" && mkdir -p "$WORK"
  local copy=0; [ "$1" = copy ] && copy=1
  : >"$WORK/out"  # before the broker opens it, so the address poll cannot race the redirect
  STRATA_BENCH_COPY_PATH=$copy "$BIN" serve --set log.dirs="$WORK/data" \
    --set listeners=PLAINTEXT://127.0.0.1:0 --set metrics.listener=127.0.0.1:0 >"$WORK/out" 2>"$WORK/broker.log" &
  PID=$!
  local addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/^strata: listening on \([^ ]*\).*/\1/p' "$WORK/out")
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "broker did not start"; exit 1; }
  "$BIN" topic create -b "$addr" t -p 1 >/dev/null
  cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
  local gb; gb=$(echo "$RECORDS * 1024 / 1000000000" | bc -l)
  local c0 c1 c2 t0 t1 t2
  c0=$(cpu); t0=$(date +%s.%N)
  timeout 300 "$PERF" -P -t t -p 0 -s 1024 -a 1 -c "$RECORDS" -b "$addr" \
    -X linger.ms=5 -X batch.size=1000000 >/dev/null 2>&1
  c1=$(cpu); t1=$(date +%s.%N)
  timeout 300 "$PERF" -C -t t -p 0 -o beginning -c "$RECORDS" -b "$addr" >/dev/null 2>&1
  c2=$(cpu); t2=$(date +%s.%N)
  printf '%s produce %.3f CPU-s/GB (%.1f MB/s)  consume %.3f CPU-s/GB (%.1f MB/s)  load %s\n' "$1" \
    "$(echo "($c1 - $c0) / $TICKS / $gb" | bc -l)" "$(echo "$gb * 1000 / ($t1 - $t0)" | bc -l)" \
    "$(echo "($c2 - $c1) / $TICKS / $gb" | bc -l)" "$(echo "$gb * 1000 / ($t2 - $t1)" | bc -l)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
  stop
}

for _ in $(seq 1 "$ROUNDS"); do
  run copy
  run zero
done
