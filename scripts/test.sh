#!/usr/bin/env bash
# Runs the test suite (all layers). pytest exits 5 when a selection collected nothing
# (e.g. `make test ARGS="-k something"`); that is reported, not treated as a crash.
# -rs lists every skip with its reason; with CI set, a skipped end-to-end test fails the
# run instead (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
set +e
"$BIN/python" -m pytest -q -p no:cacheprovider -rs "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$rc"
