#!/usr/bin/env bash
# Fuzzes the running API from its own OpenAPI document with schemathesis
# (the editors' console under /console is HTML, not in that document, and
# so not fuzzed; tests/it/api_docs.rs keeps it out),
# once per role: every response as documented (status, content type,
# headers, schema; an undocumented status such as 500 fails), every error
# problem+json; and nothing in the server's log says 500 or panic. Bounded by SCHEMATHESIS_SECONDS
# per role (default 45). Uses the debug binary and a private cluster in a
# temporary directory; leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${FACTLOG_BIN:-target/debug/factlog}
SECONDS_PER_ROLE=${SCHEMATHESIS_SECONDS:-45}
VENV=${SCHEMATHESIS_VENV:-/tmp/factlog-schemathesis-venv}
[ -x "$BIN" ] || cargo build --quiet
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi

WORK=$(mktemp -d /tmp/factlog-fuzz.XXXXXX)
chmod 755 "$WORK"
BIN=$(realpath "$BIN")
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# exec, so that $! below is factlog itself and the trap can stop it.
run() { (cd "$WORK" && exec env -u DATABASE_URL FACTLOG_RATE_LIMIT=0 "$BIN" "$@"); }

# Not through run(): a backgrounded function is a subshell of its own, and
# $! must be factlog itself for the trap to stop it.
(cd "$WORK" && exec env -u DATABASE_URL FACTLOG_RATE_LIMIT=0 "$BIN" serve --listen "127.0.0.1:$PORT") \
    >"$WORK/serve.log" 2>&1 &
SERVER=$!
cleanup() {
    # SIGTERM: graceful shutdown, and as the cluster's last user it stops it.
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    run db stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
python3 - "$BASE/readyz" <<'PY'
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("factlog serve did not become ready")
PY

status=0
for role in editor auditor reader admin; do
    token=$(run token create --name "fuzz-$role" --role "$role" 2>/dev/null)
    echo "schemathesis: as $role"
    "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
        --header "Authorization: Bearer $token" \
        --exclude-path /v1/events/stream \
        --checks status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
        --max-time "$SECONDS_PER_ROLE" \
        --request-timeout 15 \
        --seed 20261125 \
        --warnings off \
        || status=1
done
if grep -q ' 500 \|"status":500\|panicked' "$WORK/serve.log"; then
    echo "schemathesis: the server logged a 500 or a panic" >&2
    status=1
fi
exit $status
