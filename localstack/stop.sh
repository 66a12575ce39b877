#!/usr/bin/env bash
# Stops the LocalStack that start.sh started (its process group, by the recorded pid).
set -euo pipefail
PORT="${LOCALSTACK_PORT:-4566}"
STATE="${LOCALSTACK_STATE_DIR:-${TMPDIR:-/tmp}/strata-localstack-$PORT}"
if [ ! -f "$STATE/pid" ]; then
    echo "localstack: not running (no $STATE/pid)" >&2
    exit 0
fi
PID="$(cat "$STATE/pid")"
if kill -0 "$PID" 2>/dev/null; then
    kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
        kill -KILL -- "-$PID" 2>/dev/null || kill -KILL "$PID" 2>/dev/null || true
    fi
    echo "localstack: stopped (pid $PID)" >&2
fi
rm -f "$STATE/pid"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "$STATE"
fi
