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

# need_go fails with a clear message when no Go toolchain new enough for go.mod is on PATH.
need_go() {
    if ! command -v go >/dev/null 2>&1; then
        echo "error: Go is not installed. authd needs Go 1.26 or newer (Debian's golang package is older):" >&2
        echo "       install it from https://go.dev/dl/ and put it on PATH, then run this again." >&2
        return 1
    fi
}
