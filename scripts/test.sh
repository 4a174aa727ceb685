#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every kproxy test (unit, kernel and traffic tests).
# The kernel and traffic tests need root (CAP_NET_ADMIN): they build their own network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift test --skip-build
