#!/usr/bin/env bash
# Runs every test: go vet, unit and integration tests, then the end-to-end tests (real nginx, real
# Streamlit, headless Chromium), installing what they need first (Debian packages nginx, chromium,
# python3-venv, and Streamlit in /opt/streamlit/venv). Needs root (or sudo) for the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib/deps.sh
need_go
go vet ./...
go test -count=1 ./...

apt_ensure nginx chromium python3-venv ca-certificates fonts-dejavu-core curl
export STREAMLIT="${STREAMLIT:-/opt/streamlit/venv/bin/streamlit}"
streamlit_venv "$(dirname "$(dirname "$STREAMLIT")")"
echo "==> end-to-end tests (screenshots in tests/out/)"
AUTHD_E2E=1 go test -count=1 -timeout 15m -v ./tests/e2e

# Several servers: the Redis stores' tests (skipped above when redis-server was missing) and the
# load-balanced deployment (real Redis with AOF, two authd, two Streamlit, nginx/lb-example.conf).
apt_ensure redis-server redis-tools
echo "==> Redis store tests"
go test -count=1 -run Redis ./authd/...
echo "==> cluster tests"
AUTHD_E2E=1 go test -count=1 -timeout 10m -v ./tests/cluster

# The adversarial suite: every SECURITY.md line through real nginx with the shipped snippets
# (corpora in tests/security/testdata), then a short bounded pass of every fuzz target; a crasher
# is written to the package's testdata/fuzz and fails the run. AUTHD_FUZZTIME=0 skips fuzzing.
echo "==> security suite"
AUTHD_E2E=1 go test -count=1 -timeout 10m -v ./tests/security
fuzztime="${AUTHD_FUZZTIME:-10s}"
if [ "$fuzztime" != "0" ]; then
  echo "==> fuzzing, $fuzztime per target"
  for target in \
    server:FuzzSafeRedirect server:FuzzCookieValue server:FuzzVerify \
    policy:FuzzCanonical policy:FuzzCanonicalReadsOneWay policy:FuzzDecideAnonymous \
    users:FuzzParse users:FuzzCanonicalName config:FuzzParse \
    session:FuzzParse session:FuzzDecodeOp machine:FuzzParseAuthorization; do
    pkg="./authd/internal/${target%%:*}" fn="${target#*:}"
    # A fuzz pass that stalls (e.g. its workers killed from outside) is bounded and reported, not
    # waited on; a crasher still fails the run.
    rc=0
    timeout -k 10 180 go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" || rc=$?
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
      echo "warning: fuzzing $fn stalled and was stopped after 180s; rerun it by hand"
    elif [ "$rc" != 0 ]; then
      exit "$rc"
    fi
  done
fi
