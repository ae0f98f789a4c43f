#!/usr/bin/env bash
# The authd benchmark (issue 6, method in PERF.md): nginx with the shipped snippets, a do-nothing Go
# auth handler (the floor) and authd, measured with wrk on loopback. Installs nginx and wrk when
# missing (Debian packages; needs root or sudo), then runs `go run ./tests/bench` with the arguments
# given, e.g.
#   bash tests/bench/run.sh                                   # all modes, about 10 minutes
#   bash tests/bench/run.sh -modes verify -runs 1 -d 5s       # a quick look
#   bash tests/bench/run.sh -out tests/bench/RESULTS.md       # refresh the committed result
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/deps.sh
need_go
command -v nginx >/dev/null 2>&1 || apt_ensure nginx
command -v wrk >/dev/null 2>&1 || apt_ensure wrk
exec go run ./tests/bench "$@"
