#!/usr/bin/env bash
# Set up .venv plus the test-only system packages, then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k crash -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh requirements-dev.txt
bash scripts/install-test-deps.sh
bash scripts/unpack-debian-ffmpeg.sh  # a second ffmpeg (Debian's 5.1) for tests/e2e
bash scripts/fetch-face-photos.sh     # real face photos for tests/nvrlib/test_faces.py (cached)
set +e
# Three workers, one test file each at a time (module fixtures stay in one process): the e2e
# tests spend most of their time waiting on real time (the CPU is 0.9-1.3 cores busy on
# average). Four finished sooner (8.9-10.4 min against 12.3 with three, measured 2026-12-04 on
# 2 cores) but made two timing tests fail in each of two runs (crash recovery, back-fill after
# a cut, a spooled frame count, an accessibility check racing a thumbnail).
# NVR_TEST_WORKERS=0 runs everything in this process.
workers="${NVR_TEST_WORKERS:-3}"
if [ "$workers" = "0" ]; then
    .venv/bin/python -m pytest "$@"
else
    # longest files first (tests/support/schedule.py), not xdist's most-tests-first
    .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder "$@"
fi
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$status"
