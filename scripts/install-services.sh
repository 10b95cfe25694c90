#!/usr/bin/env bash
# Install (idempotently) the real services the test suites start: each file in
# scripts/install.d/ installs what one area needs. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/install.d/*.sh; do
    [ -e "$step" ] || continue
    # Each step runs in its own shell with the helpers of scripts/lib.sh (apt_ensure, ...).
    bash -euo pipefail -c '. scripts/lib.sh; . "$1"' _ "$step"
done
