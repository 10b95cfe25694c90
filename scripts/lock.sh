#!/usr/bin/env bash
# Re-pin constraints.txt to the packages the venv has now. After changing a dependency in
# pyproject.toml: `VENV/bin/pip install -U -e '.[dev]'` (resolves anew, no constraints),
# run the tests, then `make lock` and commit both files.
# Usage: scripts/lock.sh VENV
set -euo pipefail
VENV=${1:-.venv}
cd "$(dirname "$0")/.."
{
    echo "# Exact versions of every package jobcarbon's venv installs (runtime and dev), so that"
    echo "# make demo, make test, CI and the Docker image install what was tested."
    echo "# Used by scripts/bootstrap.sh and the Dockerfile as pip constraints (-c)."
    echo "# Regenerate after changing dependencies: make lock (see scripts/lock.sh)"
    "$VENV/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check 2>/dev/null \
        | grep -v "^WARNING" | LC_ALL=C sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages pinned"
