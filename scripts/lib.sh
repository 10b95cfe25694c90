# Shared shell helpers for scripts/ (sourced).

# apt_ensure PKG...: install the Debian packages that are missing, with one apt-get update.
apt_ensure() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}"
    # One apt at a time (parallel test runs share the machine's dpkg lock).
    (
        flock 9
        if [ ! -f /tmp/.jobcarbon-apt-updated ]; then
            $sudo apt-get update -qq >/dev/null
            touch /tmp/.jobcarbon-apt-updated
        fi
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
    ) 9>/tmp/.jobcarbon-apt.lock
}
