#!/usr/bin/env bash
# Create the virtual environment and install jobcarbon with its dev tools at the versions in
# constraints.txt, once per change of pyproject.toml or constraints.txt.
# Usage: scripts/bootstrap.sh PYTHON VENV
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
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
# pip's own exit status decides (pipefail); only the noise of unreachable find-links goes.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing jobcarbon and its dependencies into $VENV (first run takes a few minutes)"
    quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c constraints.txt -e '.[dev]'
    "$VENV/bin/python" -c 'import jobcarbon, schemas, consumers, warehouse' # fail loudly if not
    echo "$want" > "$stamp"
fi
