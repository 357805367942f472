#!/usr/bin/env bash
# Set up .venv and run the whole system on the embedded defaults: the hub (SQLite catalog in
# ./data, footage in ./data/recordings) fed by two synthetic `test` cameras. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh requirements.txt
exec .venv/bin/python scripts/run_system.py "$@"
