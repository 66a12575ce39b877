#!/usr/bin/env bash
# Runs every Strata test from a fresh clone. Installs what the tests need (kcat from
# Debian, Kafka clients from PyPI), builds the broker, runs the Rust unit, property
# and integration tests (real librdkafka clients against the real binary), then the
# Python client tests (confluent-kafka, kafka-python, kcat), and checks the Terraform
# (parse + checkov; installs @cdktf/hcl2json and checkov under ~/.cache/strata-tooling). Every server it starts
# binds 127.0.0.1 on an ephemeral port and is stopped by the test that started it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v kcat >/dev/null 2>&1; then
    echo "== installing kcat"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq kcat >/dev/null
fi
echo "== installing Python test clients"
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt 2>&1 | grep -v "Running pip as the 'root' user" || true

echo "== building"
cargo build --bins

echo "== Rust tests (unit, property, integration)"
cargo nextest run --workspace --no-fail-fast

echo "== Terraform checks (HCL parse with @cdktf/hcl2json, checkov; no cloud access)"
./terraform/check.sh

echo "== Python client tests"
BROKER_BIN="$PWD/target/debug/strata" python3 -m pytest tests/python -q -p no:cacheprovider
