#!/usr/bin/env bash
# Produce throughput and latency on a local 3-node cluster (each node broker and controller):
# replication factor 1 against 3, with acks=1 and acks=all, all on the same running cluster.
#
#   cargo build --release --bin strata --example loadgen
#   scripts/cluster_bench.sh                 # RECORDS=500000 LAT_RECORDS=200000 SIZE=1024
#
# For each of (RF=1, acks=1), (RF=3, acks=1), (RF=3, acks=all) it runs examples/loadgen twice on
# a fresh one-partition topic: with the default client queue (100,000 records: throughput) and
# with --queue-messages 1000 (latency mostly the broker's and replication's, not the queue's).
# Each run starts after a `sync`. The nodes' data and logs go to a temporary dir that is removed at the end (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BROKER_BIN:-target/release/strata}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
RECORDS=${RECORDS:-500000}
LAT_RECORDS=${LAT_RECORDS:-200000}
SIZE=${SIZE:-1024}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/strata-cluster-bench.XXXXXX")
for f in "$BIN" "$LOADGEN"; do
  [ -x "$f" ] || { echo "$f not built: cargo build --release --bin strata --example loadgen" >&2; exit 2; }
done

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORTS=(); CPORTS=()
for i in 1 2 3; do PORTS+=("$(free_port)"); CPORTS+=("$(free_port)"); done
VOTERS="1@127.0.0.1:${CPORTS[0]},2@127.0.0.1:${CPORTS[1]},3@127.0.0.1:${CPORTS[2]}"
for i in 1 2 3; do
  mkdir -p "$DIR/node$i"
  env -u STRATA_LOG_FORMAT STRATA_LOG=info "$BIN" serve \
    --set node.id=$i --set controller.quorum.voters="$VOTERS" \
    --set listeners="PLAINTEXT://127.0.0.1:${PORTS[$((i-1))]},CONTROLLER://127.0.0.1:${CPORTS[$((i-1))]}" \
    --set log.dirs="$DIR/node$i/data" --set metrics.listener=none \
    >"$DIR/node$i/stdout" 2>"$DIR/node$i/broker.log" &
  PIDS+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 600); do grep -q "strata: listening on" "$DIR/node$i/stdout" && break; sleep 0.1; done
  grep -q "strata: listening on" "$DIR/node$i/stdout" || { echo "node $i did not start; see $DIR" >&2; KEEP=1; exit 1; }
done
BOOT="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
echo "cluster: $BOOT (data in $DIR); $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # topic rf acks records [extra loadgen flags]
  local topic=$1 rf=$2 acks=$3 n=$4; shift 4
  # Write back the previous run's data first, so that no run pays for another's writeback.
  sync; sleep 2
  echo "== RF=$rf acks=$acks records=$n $* (load average $(cut -d' ' -f1 /proc/loadavg))"
  "$LOADGEN" --bootstrap "$BOOT" --topic "$topic" --replication-factor "$rf" --acks "$acks" \
    --records "$n" --size "$SIZE" --no-consume --timeout-secs 120 "$@"
}

run rf1-a1 1 1 "$RECORDS"
run rf3-a1 3 1 "$RECORDS"
run rf3-aall 3 all "$RECORDS"
run rf1-a1-lat 1 1 "$LAT_RECORDS" --queue-messages 1000
run rf3-a1-lat 3 1 "$LAT_RECORDS" --queue-messages 1000
run rf3-aall-lat 3 all "$LAT_RECORDS" --queue-messages 1000
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
