#!/usr/bin/env bash
# Fetch the real face photos of tests/nvrlib/test_faces.py into a cache (idempotent: quick when
# they are there). What they are, where they come from and why they are not committed:
# tests/support/face_photos.py and docs/design/faces.md.
#
# Usage: scripts/fetch-face-photos.sh [DIR]   (default $NVR_FACE_PHOTOS_DIR or
#        /var/cache/nvr-tests/faces)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" -m tests.support.face_photos "$@"
