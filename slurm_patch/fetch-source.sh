#!/usr/bin/env bash
# fetch-source.sh CACHE: download Debian trixie's slurm-wlm 24.11.5 source into CACHE/dl.
#
# apt runs with a private sources list, state and cache directory under CACHE/apt: the
# machine's apt configuration is neither read nor changed. The registry answers 404 for this
# package's .dsc, so the upstream tarball and the Debian patches are fetched separately
# (--tar-only, --diff-only). The upstream tarball's sha256 is pinned.
set -euo pipefail
CACHE=${1:?usage: fetch-source.sh CACHE}
ORIG=slurm-wlm_24.11.5.orig.tar.gz
ORIG_SHA256=e1a5547edd212c38b5e3230a284133f777b32746551f094aaa81cc4af375e332
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

A=$CACHE/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$CACHE/dl"
cat >"$A/trixie-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: $KEYRING

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: $KEYRING
SRC
APTOPTS=(-o "Dir::Etc::SourceList=$A/trixie-src.sources" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache" -o "Dir::State::status=/dev/null"
    -o APT::Sandbox::User=root -o Debug::NoLocking=1 -qq)

sha_ok() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

cd "$CACHE/dl"
if ! sha_ok "$ORIG" "$ORIG_SHA256" || ! ls slurm-wlm_24.11.5-*.debian.tar.xz >/dev/null 2>&1; then
    apt-get "${APTOPTS[@]}" update
    sha_ok "$ORIG" "$ORIG_SHA256" || apt-get "${APTOPTS[@]}" source --download-only --tar-only slurm-wlm/trixie
    # Debian's own patches (security backports); trixie-security first, then trixie.
    ls slurm-wlm_24.11.5-*.debian.tar.xz >/dev/null 2>&1 \
        || apt-get "${APTOPTS[@]}" source --download-only --diff-only slurm-wlm/trixie-security \
        || apt-get "${APTOPTS[@]}" source --download-only --diff-only slurm-wlm/trixie
fi
if ! sha_ok "$ORIG" "$ORIG_SHA256"; then
    echo "fetch-source: $ORIG is missing or its sha256 is not $ORIG_SHA256" >&2
    exit 1
fi
ls "$CACHE"/dl/slurm-wlm_24.11.5-*.debian.tar.xz | sort -V | tail -1
