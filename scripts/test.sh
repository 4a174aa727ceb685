#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and runs every kproxy test (unit, kernel and traffic tests).
# The kernel and traffic tests need root (CAP_NET_ADMIN): they build their own network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The API source's tests run against a real kube-apiserver: build it now (once per machine, cached in
# /var/cache/kproxy-test) so its progress shows here. If it cannot be built those tests are skipped.
bash scripts/kube-apiserver.sh build >/dev/null \
  || echo "test.sh: kube-apiserver could not be built; the KubeAPISource tests will be skipped" >&2
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
swift test --skip-build
