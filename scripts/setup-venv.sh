#!/usr/bin/env bash
# Create .venv (once) and install the project into it (again whenever the requirements change).
# Usage: scripts/setup-venv.sh [requirements-file]   (default: requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS="${1:-requirements.txt}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

python3 - <<'PY' || { echo "Python 3.11 or newer is needed (found $(python3 --version 2>&1))" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian and Ubuntu ship venv's ensurepip in a separate package.
        rm -rf .venv
        echo "Installing python3-venv (needed to create .venv)..." >&2
        as_root apt-get update -qq
        version="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        as_root apt-get install -y -qq "python${version}-venv" >/dev/null 2>&1 \
            || as_root apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv .venv
    fi
fi

stamp=".venv/.installed-$(cat "$REQUIREMENTS" requirements.txt requirements-edge.txt setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
    echo "Installing Python dependencies into .venv ($REQUIREMENTS)..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    # setuptools' notice that a folder named like a package takes precedence is a dozen lines of
    # asterisks on every first start; here that folder is the package itself
    PYTHONWARNINGS="ignore:Editable installation" \
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    touch "$stamp"
fi
