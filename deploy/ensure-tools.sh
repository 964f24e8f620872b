#!/usr/bin/env bash
# Command-line tools the test suite needs (idempotent): named-checkzone checks
# the zone files dns exports (Debian's bind9-utils).
set -euo pipefail
if ! command -v named-checkzone >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq bind9-utils >/dev/null
fi
