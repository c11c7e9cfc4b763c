#!/usr/bin/env bash
# Installs the server into .venv, migrates the embedded SQLite database in
# ./instance, loads a demo organisation, product, devices and release, prints
# tokens and serves it with gunicorn at http://127.0.0.1:${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt
exec .venv/bin/upgrade-server demo --serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
