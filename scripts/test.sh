#!/usr/bin/env bash
# Set up .venv plus the test-only system packages, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crash -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh requirements-dev.txt
bash scripts/install-test-deps.sh
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$status"
