#!/usr/bin/env bash
# Property-based fuzzing of the REST API with schemathesis (PyPI) against a listening
# gateway: every operation of /api/v1/openapi.json, as the bootstrap admin, bounded in time.
# Fails on any 5xx and on any response that does not match its documented schema.
#
#   scripts/api_fuzz.sh                 SQLite in a temporary CERTGATE_HOME
#   DATABASE_URL=postgresql+asyncpg://… scripts/api_fuzz.sh
#   FUZZ_MAX_TIME=120 FUZZ_EXAMPLES=25 FUZZ_SEED=1 (defaults) bound the run.
set -euo pipefail
cd "$(dirname "$0")/.."

max_time="${FUZZ_MAX_TIME:-120}"
examples="${FUZZ_EXAMPLES:-25}"
seed="${FUZZ_SEED:-1}"

# schemathesis in a venv of its own: it pins hypothesis/pytest differently from the gateway.
if [ ! -x .venv-fuzz/bin/st ]; then
  python3 -m venv .venv-fuzz
  .venv-fuzz/bin/pip install --quiet --upgrade pip
  .venv-fuzz/bin/pip install --quiet "schemathesis>=4.0"
fi

certgate="${CERTGATE:-.venv/bin/certgate}"
home="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port="$(free_port)"
https_port="$(free_port)"
export CERTGATE_HOME="$home/home"
export CERTGATE_SERVER__HOST=127.0.0.1
export CERTGATE_SERVER__HTTP_PORT="$http_port"
export CERTGATE_SERVER__HTTPS_PORT="$https_port"
if [ -n "${DATABASE_URL:-}" ]; then export CERTGATE_DATABASE__URL="$DATABASE_URL"; fi
# The fuzzer makes up alert URLs (any address, any name): nothing may be sent to them.
export CERTGATE_EVENTS__DELIVERY_ENABLED=false
mkdir -p "$CERTGATE_HOME"
log="$home/serve.log"

"$certgate" serve >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$home"
}
trap cleanup EXIT

base="http://127.0.0.1:$http_port"
for _ in $(seq 1 120); do
  if curl -fsS "$base/readyz" >/dev/null 2>&1 && [ -s "$CERTGATE_HOME/bootstrap.json" ]; then
    break
  fi
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
token="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' \
  "$CERTGATE_HOME/bootstrap.json")"

status=0
.venv-fuzz/bin/st run "$base/api/v1/openapi.json" \
  --url "$base" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "$examples" \
  --seed "$seed" \
  --max-time "$max_time" \
  --request-timeout 30 \
  --workers 1 \
  --no-shrink \
  --continue-on-failure \
  --suppress-health-check all \
  --warnings off || status=$?

# An unhandled error in the server log fails the run even if the answer looked fine (the
# REST middleware logs "unhandled error"); aiohttp's own tracebacks for malformed HTTP that
# it answered 400 itself (schemathesis probes NUL in headers) are not ours.
if ! python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
blocks = re.split(r"\n(?=\S+ \S+ (?:ERROR|WARNING|INFO|DEBUG) )", text)
bad = [b for b in blocks if "Traceback" in b and "aiohttp.http_exceptions." not in b]
for b in bad[:5]:
    print(b[:3000], file=sys.stderr)
sys.exit(1 if bad else 0)
PY
then
  echo "api_fuzz: the gateway logged an unhandled error (above)" >&2
  status=1
fi
exit "$status"
