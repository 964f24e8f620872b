#!/usr/bin/env bash
# Command-line tools the test suite needs (idempotent): named-checkzone checks
# the zone files dns exports (Debian's bind9-utils); the web front end's browser
# tests drive Debian's Chromium (/usr/bin/chromium) through Playwright, because
# Playwright's own browser download cannot work here; promtool checks and unit-tests
# the Prometheus alert rules of deploy/observability (Debian's prometheus).
set -euo pipefail
if ! command -v named-checkzone >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bind9-utils >/dev/null
fi
if ! [ -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# `make bench` only (`--bench`): wrk drives the HTTP load.
if [ "${1:-}" = "--bench" ] && ! command -v wrk >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
