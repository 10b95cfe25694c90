#!/usr/bin/env bash
# Create the virtual environment and install jobcarbon with its dev tools, once per change
# of pyproject.toml. Usage: scripts/bootstrap.sh PYTHON VENV
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
cd "$(dirname "$0")/.."

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "jobcarbon needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.jobcarbon-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing jobcarbon and its dependencies into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c 'import jobcarbon, schemas, consumers, warehouse' # fail loudly if not
    echo "$want" > "$stamp"
fi
