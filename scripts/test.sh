#!/usr/bin/env bash
# Runs every Strata test from a fresh clone. Installs what the tests need (kcat from
# Debian, Kafka clients and moto from PyPI), starts a moto S3 server on a free port
# (stopped at exit, even on failure) for the remote-tier tests, builds the broker,
# runs the Rust unit, property and integration tests (real librdkafka clients
# against the real binary), checks the Terraform (HCL parse + checkov, installed under
# ~/.cache/strata-tooling), then runs the Python client tests (confluent-kafka,
# kafka-python, kcat), after the LocalStack end-to-end run (localstack/e2e.sh).
# Every server it starts binds 127.0.0.1 on an ephemeral port.
set -euo pipefail
cd "$(dirname "$0")/.."

# kcat for the client tests; chromium and its driver for the web console test.
if ! command -v kcat >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "== installing kcat, chromium and chromium-driver"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq kcat chromium chromium-driver >/dev/null
fi
echo "== installing Python test clients and moto"
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt 'moto[server]' 2>&1 | grep -v "Running pip as the 'root' user" || true

echo "== starting moto (S3) for the remote-tier tests"
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MOTO_LOG=$(mktemp)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; rm -f "$MOTO_LOG"' EXIT
export S3_TEST_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export S3_TEST_BUCKET="strata-test"
for _ in $(seq 1 100); do
    if curl -sf -o /dev/null -X PUT "$S3_TEST_ENDPOINT/$S3_TEST_BUCKET"; then break; fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then echo "moto did not start:"; cat "$MOTO_LOG"; exit 1; fi
    sleep 0.2
done
curl -sf -o /dev/null "$S3_TEST_ENDPOINT/$S3_TEST_BUCKET" || { echo "cannot create bucket on moto"; cat "$MOTO_LOG"; exit 1; }

# With fault-injection: the tier tests start the broker with STRATA_TIER_FAULTS,
# which a binary built without it refuses.
echo "== building"
cargo build --bins --features fault-injection

echo "== Rust tests (unit, property, integration)"
cargo nextest run --workspace --no-fail-fast --features strata/fault-injection

echo "== Terraform checks (HCL parse with @cdktf/hcl2json, checkov; no cloud access)"
./terraform/check.sh

echo "== LocalStack end to end (produce, tier to LocalStack S3, consume from offset 0)"
E2E_STRATA_BIN="$PWD/target/debug/strata" ./localstack/e2e.sh

echo "== Python client tests"
BROKER_BIN="$PWD/target/debug/strata" python3 -m pytest tests/python -q -p no:cacheprovider
