#!/usr/bin/env bash
# Runs every test: go vet, unit and integration tests, the Streamlit package's pytest tests, then the
# end-to-end tests (real nginx, real Streamlit, headless Chromium), installing what they need first (Debian packages nginx, chromium,
# python3-venv, and Streamlit in /opt/streamlit/venv). Needs root (or sudo) for the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/deps.sh
need_go
go vet ./...
# Every package under the race detector (tests/ packages skip here without AUTHD_E2E).
go test -race -count=1 ./...
# Timing tests skip under -race; run them once without it: the admin console's users list at
# 10,000 users renders in under 50 ms at the server.
go test -count=1 -run 'TestConsoleTenThousandUsers' ./authd/internal/server

apt_ensure nginx chromium python3-venv ca-certificates fonts-dejavu-core curl strace zbar-tools
export STREAMLIT="${STREAMLIT:-/opt/streamlit/venv/bin/streamlit}"
streamlit_venv "$(dirname "$(dirname "$STREAMLIT")")"
# The Streamlit package (conf/clients/streamlit_authd): installed into the Streamlit venv the way an
# operator would, with pytest, and tested against a real authd built from this checkout. The e2e
# tests below run the demo app with the checkout's copy of the package.
venv_py="$(dirname "$STREAMLIT")/python"
echo "==> streamlit_authd package tests"
"$venv_py" -m pip install -q pytest
# aiosmtpd: the real SMTP server (STARTTLS required) the account e2e test delivers mail to.
"$venv_py" -m pip install -q aiosmtpd
"$venv_py" -m pip install -q --force-reinstall --no-deps ./conf/clients/streamlit_authd
(cd conf/clients/streamlit_authd && "$venv_py" -m pytest -q -p no:cacheprovider)
echo "==> end-to-end tests (screenshots in tests/out/)"
# oidc_test.go in it builds and runs tests/oidcprovider (a real OIDC provider: zitadel/oidc's op).
AUTHD_E2E=1 go test -count=1 -timeout 15m -v ./tests/e2e

# Several servers: the Redis stores' tests (skipped above when redis-server was missing), the
# load-balanced deployment (real Redis with AOF, two authd, two Streamlit, nginx/lb-example.conf),
# and Redis topologies: Sentinel and Cluster failover under load, Redis over TLS.
apt_ensure redis-server redis-tools redis-sentinel
echo "==> Redis store tests"
go test -race -count=1 -run Redis ./authd/...
echo "==> cluster tests"
AUTHD_E2E=1 go test -count=1 -timeout 10m -v ./tests/cluster

# systemd (systemd-socket-activate, systemd-analyze) and supervisor, for the restart tests: socket
# activation, the units, supervisorctl signal USR2 (no systemd runs as PID 1 here; nothing starts
# Debian's own supervisord: the test runs its own).
apt_ensure systemd supervisor

# OpenLDAP for the LDAP sign-in tests (tests/security/ldap_test.go): each test configures its own
# slapd in a temporary directory on loopback ports and kills it at the end; Debian's own instance
# is neither configured nor used.
apt_ensure slapd ldap-utils

# The adversarial suite: every SECURITY.md line through real nginx with the shipped snippets
# (corpora in tests/security/testdata), then a short bounded pass of every fuzz target; a crasher
# is written to the package's testdata/fuzz and fails the run. AUTHD_FUZZTIME=0 skips fuzzing.
echo "==> security suite"
AUTHD_E2E=1 go test -count=1 -timeout 10m -v ./tests/security
# The Debian package: systemd/deb/build.sh, installed into this machine with apt-get, configured,
# run as the authd user behind the snippets it installed, removed and purged; lintian reports on it.
# It needs root, runs one at a time, and skips (touching nothing) when an authd it did not install
# is here, for example from supervisor/up.sh. The first build compiles everything (-trimpath).
echo "==> Debian package"
apt_ensure lintian
AUTHD_E2E=1 go test -count=1 -timeout 30m -v ./tests/deb

# Budgets are execution counts: a duration -fuzztime can end in a spurious "context deadline
# exceeded" on Go 1.26 (go.dev/issue/75804). Only a reproducer written to testdata/fuzz fails the run.
fuzztime="${AUTHD_FUZZTIME:-50000x}"
if [ "$fuzztime" != "0" ]; then
  echo "==> fuzzing, $fuzztime per target"
  for target in \
    server:FuzzSafeRedirect server:FuzzCookieValue server:FuzzVerify server:FuzzClientIP \
    policy:FuzzCanonical policy:FuzzCanonicalReadsOneWay policy:FuzzDecideAnonymous \
    users:FuzzParse users:FuzzCanonicalName config:FuzzParse \
    session:FuzzParse session:FuzzDecodeOp machine:FuzzParseAuthorization doctor:FuzzCheck; do
    pkg="./authd/internal/${target%%:*}" fn="${target#*:}"
    corpus="$pkg/testdata/fuzz/$fn"
    before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
    rc=0
    timeout -k 10 180 go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" || rc=$?
    after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
    if [ "$after" -gt "$before" ]; then
      echo "fuzzing $fn found a failing input, kept in $corpus; it now runs with every go test"
      exit 1
    elif [ "$rc" != 0 ]; then
      echo "warning: fuzzing $fn ended with status $rc but wrote no failing input (a stall or the Go fuzz coordinator's deadline race); rerun it by hand"
    fi
  done
fi
