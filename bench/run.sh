#!/usr/bin/env bash
# Starts a throwaway gateway (SQLite, or PostgreSQL with DB_URL=…) and runs bench/issue.py.
#   bench/run.sh [clients] [count]        DB_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-8}; count=${2:-400}
home=$(mktemp -d)
export CERTGATE_HOME=$home CERTGATE_TLS__ENABLED=false CERTGATE_SERVER__HTTP_PORT=${PORT:-18080}
export CERTGATE_LOGGING__LEVEL=WARNING
[ -n "${DB_URL:-}" ] && export CERTGATE_DATABASE__URL=$DB_URL
.venv/bin/certgate serve & pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 1 100); do [ -f "$home/bootstrap.json" ] && curl -fs "http://127.0.0.1:$CERTGATE_SERVER__HTTP_PORT/readyz" >/dev/null && break; sleep 0.2; done
.venv/bin/python bench/issue.py --home "$home" --clients "$clients" --count "$count" --pid "$pid"
