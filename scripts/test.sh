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
# tests spend most of their time waiting on real time (the CPU is 1.3-1.5 cores busy on
# average). Four finished sooner (9.8-10.8 min against 11.8 with three, measured 2026-12-03)
# but made the timing tests of the live view and of crash recovery fail now and then.
# NVR_TEST_WORKERS=0 runs everything in this process.
workers="${NVR_TEST_WORKERS:-3}"
if [ "$workers" = "0" ]; then
    .venv/bin/python -m pytest "$@"
else
    .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
fi
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
    exit 1
fi
exit "$status"
