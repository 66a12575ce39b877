#!/usr/bin/env bash
# Starts LocalStack's S3 on 127.0.0.1 without docker, creates the bucket, and prints the
# environment for Strata on stdout (progress goes to stderr), so that
#
#     eval "$(localstack/start.sh)"
#     strata serve          # STRATA_REMOTE_STORAGE_URL is remote.storage.url
#
# works. LocalStack is pip-installed (pinned) into a venv under $DEV_TOOLING_DIR
# (default ~/.cache/strata-tooling). Stop it with localstack/stop.sh.
#
# Settings (environment; not STRATA_*, which strata reads as broker settings):
#   LOCALSTACK_PORT       gateway port (default 4566)
#   LOCALSTACK_STATE_DIR  pid file, log and volume dir (default $TMPDIR/strata-localstack-<port>)
#   LOCALSTACK_BUCKET     bucket to create (default strata)
#   LOCALSTACK_PREFIX     key prefix for remote.storage.url (default cluster)
#   LOCALSTACK_START_TIMEOUT  seconds to wait for health (default 180)
set -euo pipefail

PORT="${LOCALSTACK_PORT:-4566}"
STATE="${LOCALSTACK_STATE_DIR:-${TMPDIR:-/tmp}/strata-localstack-$PORT}"
BUCKET="${LOCALSTACK_BUCKET:-strata}"
PREFIX="${LOCALSTACK_PREFIX:-cluster}"
TIMEOUT="${LOCALSTACK_START_TIMEOUT:-180}"
TOOLING="${DEV_TOOLING_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-tooling}"
LOCALSTACK_VERSION="4.13.1"
VENV="$TOOLING/localstack-$LOCALSTACK_VERSION"
ENDPOINT="http://127.0.0.1:$PORT"

log() { echo "localstack: $*" >&2; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import localstack, boto3' 2>/dev/null; then
    log "installing localstack-core $LOCALSTACK_VERSION under $VENV (first run only)"
    mkdir -p "$TOOLING"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "localstack-core[base-runtime]==$LOCALSTACK_VERSION" 'cbor2<6' 'pyopenssl<24.3' boto3 >&2
fi

mkdir -p "$STATE/volume"
if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    log "already running (pid $(cat "$STATE/pid")) on $ENDPOINT"
else
    log "starting on $ENDPOINT (log: $STATE/localstack.log)"
    # setsid: LocalStack and its children get their own process group, which
    # stop.sh ends as a whole.
    GATEWAY_LISTEN="127.0.0.1:$PORT" \
    SERVICES=s3 \
    EAGER_SERVICE_LOADING=1 \
    DISABLE_EVENTS=1 \
    SKIP_SSL_CERT_DOWNLOAD=1 \
    DNS_ADDRESS=0 \
    LOCALSTACK_VOLUME_DIR="$STATE/volume" \
    RUNTIME_COMPONENTS=aws \
    GATEWAY_SERVER=hypercorn \
        setsid "$VENV/bin/python" -m localstack.runtime.main \
        >"$STATE/localstack.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
fi

# Wait until /_localstack/health reports S3 up.
deadline=$((SECONDS + TIMEOUT))
until "$VENV/bin/python" - "$ENDPOINT" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=2) as r:
    s3 = json.load(r).get("services", {}).get("s3")
sys.exit(0 if s3 in ("running", "available") else 1)
PY
do
    if ! kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        log "exited during startup; last lines of its log:"
        tail -n 30 "$STATE/localstack.log" >&2
        exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "not healthy after ${TIMEOUT}s; last lines of its log:"
        tail -n 30 "$STATE/localstack.log" >&2
        exit 1
    fi
    sleep 1
done
log "healthy after ${SECONDS}s"

"$VENV/bin/python" - "$ENDPOINT" "$BUCKET" <<'PY'
import sys, boto3
from botocore.config import Config
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test",
                  config=Config(s3={"addressing_style": "path"}))
if bucket not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=bucket)
print(f"localstack: bucket {bucket} ready", file=sys.stderr)
PY

cat <<ENV
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ALLOW_HTTP=true
export AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false
export AWS_S3_FORCE_PATH_STYLE=true
export STRATA_REMOTE_STORAGE_URL=s3://$BUCKET/$PREFIX
export LOCALSTACK_STATE_DIR=$STATE
ENV
