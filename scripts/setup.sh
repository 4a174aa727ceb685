#!/usr/bin/env bash
# Installs what kproxy needs on Debian 12 (idempotent) and resolves the Swift packages.
# Used by demo.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  pkg-config iproute2 procps kmod
  nftables libnftables-dev          # the nftables data plane (libnftables in process)
  iptables ipset libipset-dev       # iptables / ipvs data planes
  conntrack libnetfilter-conntrack-dev libmnl-dev  # UDP conntrack cleanup
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Swift toolchain (6.x): on PATH, or the usual /opt/swift install.
if ! command -v swift >/dev/null 2>&1; then
  if [ -x /opt/swift/usr/bin/swift ]; then export PATH=/opt/swift/usr/bin:$PATH
  else echo "setup: no Swift toolchain found (install Swift 6 from swift.org into /opt/swift)" >&2; exit 1; fi
fi
swift package resolve >/dev/null
