#!/usr/bin/env bash
# Starts a throwaway gateway (SQLite, or PostgreSQL with DB_URL=…), runs one driver
# against it with the server's PID, then stops it.
#   bench/run.sh [issue|est_enroll] [clients] [count]
#   DB_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench bench/run.sh est_enroll 8 800
set -euo pipefail
cd "$(dirname "$0")/.."
driver=${1:-issue}; clients=${2:-8}; count=${3:-400}
home=$(mktemp -d)
export CERTGATE_HOME=$home CERTGATE_SERVER__HTTP_PORT=${PORT:-18080}
export CERTGATE_SERVER__HTTPS_PORT=${TLS_PORT:-18443} CERTGATE_LOGGING__LEVEL=WARNING
[ -n "${DB_URL:-}" ] && export CERTGATE_DATABASE__URL=$DB_URL
.venv/bin/certgate serve & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 1 150); do
  [ -f "$home/bootstrap.json" ] && curl -fs "http://127.0.0.1:$CERTGATE_SERVER__HTTP_PORT/readyz" >/dev/null && break
  sleep 0.2
done
.venv/bin/python "bench/$driver.py" --home "$home" --clients "$clients" --count "$count" --pid "$pid"
