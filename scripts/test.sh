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
swift build --build-tests 2>&1 | { grep -vE '^\[[0-9]+/[0-9]+\]' || true; }
# The tests' output is long and interleaved (suites run in parallel): on failure, repeat what failed
# at the end, where a CI log's tail shows it.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --skip-build 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo "=== test.sh: the tests failed (exit $status); the failures, repeated from above ==="
  grep -E -A4 'recorded an issue|Fatal error|unexpected signal|error: ' "$log" | head -150 || true
  grep -E '✘ (Test|Suite) ' "$log" | head -40 || true
fi
exit "$status"
