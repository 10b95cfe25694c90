#!/usr/bin/env bash
# Install (idempotently) the real services the test suites start: each file in
# scripts/install.d/ installs what one area needs. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
for step in scripts/install.d/*.sh; do
    [ -e "$step" ] || continue
    bash "$step"
done
