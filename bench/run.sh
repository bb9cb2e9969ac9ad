#!/usr/bin/env bash
# Starts a throwaway gateway (SQLite, or PostgreSQL with DB_URL=…), runs one driver
# against it with the server's PID, then stops it.
#   bench/run.sh [issue|est_enroll|scep_enroll|acme_flow] [clients] [count]
#   DB_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench bench/run.sh est_enroll 8 800
# ACME validators reach the driver: http-01 on HTTP01_PORT, DNS (every name 127.0.0.1) on
# DNS_PORT. PYSPY=out.svg also records the server with py-spy (PYSPY_ARGS, e.g. --native).
set -euo pipefail
cd "$(dirname "$0")/.."
driver=${1:-issue}; clients=${2:-8}; count=${3:-400}
home=$(mktemp -d)
export CERTGATE_HOME=$home CERTGATE_SERVER__HTTP_PORT=${PORT:-18080}
export CERTGATE_SERVER__HTTPS_PORT=${TLS_PORT:-18443} CERTGATE_LOGGING__LEVEL=WARNING
export CERTGATE_ACME__HTTP01_PORT=${HTTP01_PORT:-18402}
export CERTGATE_ACME__RESOLVERS=127.0.0.1:${DNS_PORT:-18053}
[ -n "${DB_URL:-}" ] && export CERTGATE_DATABASE__URL=$DB_URL
.venv/bin/certgate serve & pid=$!
spy=
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; [ -z "$spy" ] || wait $spy; rm -rf "$home"' EXIT
for _ in $(seq 1 150); do
  [ -f "$home/bootstrap.json" ] && curl -fs "http://127.0.0.1:$CERTGATE_SERVER__HTTP_PORT/readyz" >/dev/null && break
  sleep 0.2
done
if [ -n "${PYSPY:-}" ]; then
  "$(command -v py-spy || echo .venv/bin/py-spy)" record -o "$PYSPY" --pid "$pid" ${PYSPY_ARGS:-} >/dev/null 2>&1 & spy=$!
fi
.venv/bin/python "bench/$driver.py" --home "$home" --clients "$clients" --count "$count" --pid "$pid"
