#!/usr/bin/env bash
# Installs what the suite needs, checks lint and types, and runs the whole
# suite (the fuzzing of the real server from its OpenAPI document included,
# tests/test_fuzz.py) twice: on SQLite, with the date-rule tests again at
# other dates (scripts/date_rules.sh), then on PostgreSQL (TEST_POSTGRES_URL, default
# postgresql://postgres@127.0.0.1:5432/test). In CI (CI=true) an unreachable
# PostgreSQL fails the run; elsewhere it is reported and that pass is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements-dev.txt
PY=.venv/bin/python

echo "== lint and types"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy

# One pytest worker per core (pytest-xdist); on PostgreSQL each worker has a
# database of its own (tests/conftest.py).
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -n auto)

echo "== tests on SQLite"
"${PYTEST[@]}" "$@"

echo "== date-rule tests at other dates"
bash scripts/date_rules.sh

PG_URL=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}
if "$PY" - "$PG_URL" <<'PYEOF'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=5).close()
except Exception as exc:
    print(f"PostgreSQL unreachable: {exc}", file=sys.stderr)
    sys.exit(1)
PYEOF
then
  echo "== tests on PostgreSQL"
  TEST_DATABASE_URL="$PG_URL" "${PYTEST[@]}" "$@"
elif [ "${CI:-}" = "true" ]; then
  echo "CI requires PostgreSQL at $PG_URL; failing." >&2
  exit 1
else
  echo "!! PostgreSQL not reachable at $PG_URL: the PostgreSQL pass was NOT run." >&2
fi
