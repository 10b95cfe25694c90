#!/usr/bin/env bash
# check.sh [--full]: build Slurm's jobcomp/kafka plugin with the jobcarbon patch series.
#
#   1. fetch Debian trixie's slurm-wlm 24.11.5 source (fetch-source.sh: private apt state,
#      pinned sha256 of the upstream tarball);
#   2. unpack it, apply Debian's own patches (less `rpath` and `miscellanea-manpages`, which
#      edit configure.ac/Makefile.am without regenerating), then this directory's `series`;
#   3. configure, and build src/plugins/jobcomp/kafka (with --full: all of Slurm, installed
#      into the tree's `inst/`, for the one-host cluster tests).
#
# The unpacked, configured (and built) tree is cached under $JOBCARBON_SLURM_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/jobcarbon/slurm: per machine, so CI's fresh clones reuse it), keyed by the sha256 of the upstream and Debian tarballs. The series
# applied to it is recorded; when the series changes it is reverse-applied and the new one
# applied, so make rebuilds only what the patches touch. Prints `plugin=<path to .so>`,
# `tree=`, and with --full `prefix=`; fails on any compiler warning in the patched files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=${JOBCARBON_SLURM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jobcarbon/slurm}
FULL=0
[ "${1:-}" = "--full" ] && FULL=1
JOBS=${JOBS:-$(nproc)}
mkdir -p "$CACHE"
log() { printf '[check.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# One builder at a time per cache (parallel test runs share it).
exec 8>"$CACHE/.lock"
flock 8

DEBTAR=$("$HERE/fetch-source.sh" "$CACHE")
ORIG=$CACHE/dl/slurm-wlm_24.11.5.orig.tar.gz
KEY=$(cat "$ORIG" "$DEBTAR" | sha256sum | cut -c1-16)
T=$CACHE/tree-$KEY
SRC=$T/src
APPLIED=$T/applied          # copy of the series currently applied to $SRC

series_files() { grep -v -e '^#' -e '^[[:space:]]*$' "$HERE/series"; }
series_hash() { (cd "$HERE" && cat series $(series_files)) | sha256sum | cut -c1-16; }

# --- unpack + Debian patches (once per source key) ---------------------------------
if [ ! -f "$T/.unpacked" ]; then
    log "unpacking $(basename "$ORIG") + $(basename "$DEBTAR") into $T"
    rm -rf "$T" "$CACHE"/tree-*     # trees of other source versions are stale
    mkdir -p "$SRC"
    tar -xzf "$ORIG" -C "$SRC" --strip-components=1
    rm -rf "$SRC/debian"
    tar -xJf "$DEBTAR" -C "$SRC"
    while read -r p; do
        case "$p" in '' | '#'* | rpath | miscellanea-manpages) continue ;; esac
        patch -d "$SRC" -p1 -s --no-backup-if-mismatch <"$SRC/debian/patches/$p"
    done <"$SRC/debian/patches/series"
    touch "$T/.unpacked"
fi

# --- our series: revert what is applied if it differs, apply the current one ----------
WANT=$(series_hash)
HAVE=$(cat "$APPLIED/.hash" 2>/dev/null || true)
if [ "$WANT" != "$HAVE" ]; then
    if [ -d "$APPLIED" ]; then
        log "series changed: reverting the previously applied one"
        for p in $(grep -v -e '^#' -e '^[[:space:]]*$' "$APPLIED/series" | tac); do
            patch -d "$SRC" -p1 -R -s --no-backup-if-mismatch <"$APPLIED/$p" || {
                log "revert failed: starting from a clean tree"
                rm -rf "$T"
                exec "$0" "$@"
            }
        done
        rm -rf "$APPLIED"
    fi
    for p in $(series_files); do
        log "applying $p"
        patch -d "$SRC" -p1 --no-backup-if-mismatch --forward -F0 <"$HERE/$p" >&2 || {
            echo "check.sh: $p does not apply to slurm-wlm 24.11.5" >&2
            exit 1
        }
    done
    mkdir -p "$APPLIED"
    cp "$HERE/series" $(cd "$HERE" && series_files | sed "s|^|$HERE/|") "$APPLIED/"
    echo "$WANT" >"$APPLIED/.hash"
fi

# --- configure (once per tree and configuration) ------------------------------------
# The configuration's identity: the flags, plus which optional libraries configure can find
# (a dev package installed after the tree was configured, e.g. the MySQL client for
# accounting_storage/mysql, must reconfigure it and rebuild everything).
CONF_FLAGS="--prefix=$T/inst --sysconfdir=$T/inst/etc --disable-dependency-tracking"
CONF_ID=$(printf '%s\n' "$CONF_FLAGS" \
    "mysql=$(command -v mysql_config mariadb_config 2>/dev/null | head -1)" \
    "lua=$(pkg-config --modversion lua5.3 2>/dev/null || true)" | sha256sum | cut -c1-16)
if [ ! -f "$T/.configured" ] || [ "$(cat "$T/.configured")" != "$CONF_ID" ]; then
    log "configure ($CONF_ID)"
    # shellcheck disable=SC2086
    (cd "$SRC" && ./configure -q $CONF_FLAGS >"$T/configure.log" 2>&1) || {
        tail -30 "$T/configure.log" >&2
        exit 1
    }
    grep -q '^#define HAVE_RDKAFKA 1' "$SRC/config.h" || {
        echo "check.sh: configure did not find librdkafka (install librdkafka-dev)" >&2
        exit 1
    }
    # A new configuration rebuilds and reinstalls all of Slurm on the next --full.
    rm -f "$T"/inst/.installed-*
    echo "$CONF_ID" >"$T/.configured"
fi
if [ "$FULL" = 1 ]; then
    for want in HAVE_MYSQL HAVE_LUA; do
        grep -q "^#define $want 1" "$SRC/config.h" || {
            echo "check.sh --full: configure did not define $want (install default-libmysqlclient-dev liblua5.3-dev: scripts/install.d/40-slurm-build.sh)" >&2
            exit 1
        }
    done
fi

# --- build the plugin: every source it compiles, from clean, with warnings kept --------
log "building jobcomp/kafka"
make -s -C "$SRC/src/plugins/jobcomp/common" clean >/dev/null
make -s -C "$SRC/src/plugins/jobcomp/kafka" clean >/dev/null
make -C "$SRC/src/plugins/jobcomp/kafka" -j"$JOBS" >"$T/plugin-build.log" 2>&1 || {
    tail -40 "$T/plugin-build.log" >&2
    exit 1
}
if grep -E 'warning:' "$T/plugin-build.log" >&2; then
    echo "check.sh: the jobcomp/kafka build has compiler warnings (above)" >&2
    exit 1
fi
SO=$SRC/src/plugins/jobcomp/kafka/.libs/jobcomp_kafka.so
[ -f "$SO" ] || { echo "check.sh: $SO was not built" >&2; exit 1; }
echo "tree=$T"
echo "plugin=$SO"

# --- optional: all of Slurm, installed into the tree ---------------------------------
if [ "$FULL" = 1 ]; then
    STAMP=$T/inst/.installed-$WANT-$CONF_ID
    if [ ! -f "$STAMP" ]; then
        log "full build (make -j$JOBS), a few minutes the first time"
        make -C "$SRC" -j"$JOBS" >"$T/full-build.log" 2>&1 || { tail -40 "$T/full-build.log" >&2; exit 1; }
        if grep -E 'warning:' "$T/full-build.log" >&2; then
            echo "check.sh: the full build has compiler warnings (above)" >&2
            exit 1
        fi
        make -C "$SRC" install >"$T/install.log" 2>&1 || { tail -40 "$T/install.log" >&2; exit 1; }
        rm -f "$T"/inst/.installed-*
        touch "$STAMP"
    fi
    echo "prefix=$T/inst"
fi
