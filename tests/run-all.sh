#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Debian
# packages for the real servers and peer clients), then runs every test of the workspace.
# Usage: tests/run-all.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Real servers and peer tools the tests start or call.
APT_PACKAGES=(curl davix openssl nginx libnginx-mod-http-dav-ext)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/run-all.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian nginx package may start the system instance; the tests run their own.
$SUDO systemctl stop nginx >/dev/null 2>&1 || true

cargo test --workspace --locked "$@"
