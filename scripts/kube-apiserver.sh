#!/usr/bin/env bash
# A real kube-apiserver (v1.20.2, from Debian bookworm's `kubernetes` source package) for kproxy's tests.
#
#   scripts/kube-apiserver.sh build        build kube-apiserver once; later runs reuse the cached binary
#   scripts/kube-apiserver.sh start [DIR]  run etcd + kube-apiserver on 127.0.0.1 (random free ports) with a
#                                          throw-away CA, a static admin token and RBAC; prints KUBECONFIG=…
#                                          (DIR/kubeconfig: admin token; kubeconfig-cert: admin client
#                                          certificate; kubeconfig-proxier: user system:kube-proxy)
#   scripts/kube-apiserver.sh stop DIR     stop what `start DIR` started and delete DIR
#   scripts/kube-apiserver.sh restart DIR  stop kube-apiserver and start it again on the same port (etcd stays)
#   scripts/kube-apiserver.sh kill DIR     stop kube-apiserver only (start it again with `restart`)
#   scripts/kube-apiserver.sh second DIR   start a second kube-apiserver on the same etcd (DIR/kubeconfig-2)
#   scripts/kube-apiserver.sh compact DIR  compact etcd up to its current revision (old resourceVersions expire)
#   scripts/kube-apiserver.sh path         print the cached binary's path (exit 1 if it is not built)
#
# Works unattended (CI=true, no stdin) on a fresh Debian 12: installs golang-go, etcd-server, rsync,
# dpkg-dev, golang-github-modern-go-reflect2-dev and openssl through apt, adds a bookworm `deb-src` entry
# (its own file under /etc/apt/sources.list.d) to fetch the source. Nothing lands in the repository:
#   KPROXY_TEST_CACHE (default /var/cache/kproxy-test) holds the source, the Go cache and the binary.
# KPROXY_OWNER_PID=PID with `start`: a watchdog stops everything when that process ends (a crashed test run).
# The first build takes ~5.5 min on 2 idle cores (11 min measured with other builds running), ~2.5 GB of
# disk; it is serialised with flock, so
# parallel test runs wait for one build instead of starting two.
set -euo pipefail

K8S_VERSION=v1.20.2
CACHE=${KPROXY_TEST_CACHE:-/var/cache/kproxy-test}
BINARY=$CACHE/kube-apiserver-$K8S_VERSION
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { echo "kube-apiserver.sh: $*" >&2; }

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_deb_src() {
  local list=/etc/apt/sources.list.d/kproxy-bookworm-src.sources
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
    if [ ! -f "$list" ]; then
      log "adding a deb-src entry for bookworm ($list)"
      $SUDO tee "$list" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    $SUDO apt-get update -qq
  fi
}

build() {
  if [ -x "$BINARY" ]; then echo "$BINARY"; return 0; fi
  $SUDO mkdir -p "$CACHE"
  exec 9>"$CACHE/.build.lock"
  flock 9
  if [ -x "$BINARY" ]; then echo "$BINARY"; return 0; fi   # another run built it while we waited

  apt_install golang-go etcd-server rsync dpkg-dev make golang-github-modern-go-reflect2-dev openssl ca-certificates
  ensure_deb_src

  local started=$SECONDS src gopath=$CACHE/gopath
  if ! src=$(ls -d "$CACHE"/src/kubernetes-*/ 2>/dev/null | head -1) || [ -z "$src" ]; then
    log "fetching the Debian kubernetes source package"
    mkdir -p "$CACHE/src"
    # apt downloads as the _apt user when it can write there (else it warns and downloads as root).
    if id _apt >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then chown _apt "$CACHE/src"; fi
    (cd "$CACHE/src" && apt-get source -qq kubernetes >/dev/null)
    src=$(ls -d "$CACHE"/src/kubernetes-*/ | head -1)
  fi
  src=${src%/}
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"

  # The vendored reflect2 1.0.1 crashes with Go >= 1.18; Debian's 1.0.2 has the same API.
  local r2=$src/vendor/github.com/modern-go/reflect2
  if ! grep -qs "kproxy: replaced" "$r2/KPROXY"; then
    rm -f "$r2"/*.go "$r2"/*.s
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
    rm -f "$r2"/*_test.go
    echo "kproxy: replaced with golang-github-modern-go-reflect2-dev" >"$r2/KPROXY"
  fi

  export GOPATH=$gopath GO111MODULE=off CGO_ENABLED=0 GOCACHE=$CACHE/gocache GOFLAGS= GOTOOLCHAIN=local
  cd "$gopath/src/k8s.io/kubernetes"
  if [ ! -s pkg/generated/openapi/zz_generated.openapi.go ]; then
    log "generating OpenAPI definitions (make gen_openapi)"
    make gen_openapi >"$CACHE/gen_openapi.log" 2>&1 || { tail -30 "$CACHE/gen_openapi.log" >&2; exit 1; }
  fi

  local pkg=k8s.io/kubernetes ld="" key val
  for key in gitVersion:$K8S_VERSION gitMajor:1 gitMinor:20 gitTreeState:clean \
             gitCommit:debian-bookworm buildDate:1970-01-01T00:00:00Z; do
    val=${key#*:}; key=${key%%:*}
    for p in $pkg/vendor/k8s.io/component-base/version $pkg/vendor/k8s.io/client-go/pkg/version \
             k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.$key=$val"
    done
  done
  log "building kube-apiserver $K8S_VERSION (several minutes; log: $CACHE/build.log)"
  go build -trimpath -ldflags "-s -w$ld" -o "$BINARY.tmp" ./cmd/kube-apiserver >"$CACHE/build.log" 2>&1 \
    || { tail -30 "$CACHE/build.log" >&2; exit 1; }
  mv "$BINARY.tmp" "$BINARY"
  log "built $BINARY in $((SECONDS - started)) s"
  echo "$BINARY"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for() { # url, seconds, extra curl args…
  local url=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    curl -fsS --max-time 2 "$@" "$url" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

start() {
  local dir=${1:-}
  [ -x "$BINARY" ] || build >/dev/null
  apt_install etcd-server openssl curl python3
  [ -n "$dir" ] || dir=$(mktemp -d /tmp/kproxy-apiserver.XXXXXX)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)

  local etcd_client etcd_peer api_port token
  etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
  while [ "$etcd_peer" = "$etcd_client" ]; do etcd_peer=$(free_port); done
  while [ "$api_port" = "$etcd_client" ] || [ "$api_port" = "$etcd_peer" ]; do api_port=$(free_port); done
  token=$(openssl rand -hex 24)

  # Throw-away PKI: a CA, a serving certificate for 127.0.0.1, a service-account key.
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=kproxy-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    # A client certificate for an admin (group system:masters), for kubeconfig-cert.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kproxy-cert-admin" \
      -keyout client.key -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile client.ext -out client.crt 2>/dev/null
    # The admin token, and one for the user kube-proxy runs as (RBAC role system:node-proxier).
    echo "$token,kproxy-admin,kproxy-admin,system:masters" >tokens.csv
    echo "$(openssl rand -hex 24),system:kube-proxy,kube-proxy" >>tokens.csv
    echo "$token" >token
    sed -n 2p tokens.csv | cut -d, -f1 >proxier-token
  )

  setsid etcd --name kproxy-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "kproxy-test=http://127.0.0.1:$etcd_peer" \
    --quota-backend-bytes 1073741824 </dev/null >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  echo "http://127.0.0.1:$etcd_client" >"$dir/etcd.url"
  wait_for "http://127.0.0.1:$etcd_client/health" 30 || { log "etcd did not start:"; tail -20 "$dir/etcd.log" >&2; stop "$dir"; exit 1; }

  cat >"$dir/apiserver.args" <<EOF
--etcd-servers=http://127.0.0.1:$etcd_client
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--insecure-port=0
--tls-cert-file=$dir/server.crt
--tls-private-key-file=$dir/server.key
--client-ca-file=$dir/ca.crt
--token-auth-file=$dir/tokens.csv
--authorization-mode=RBAC
--service-account-key-file=$dir/sa.key
--service-account-signing-key-file=$dir/sa.key
--service-account-issuer=https://kubernetes.default.svc
--service-cluster-ip-range=10.96.0.0/16
--enable-priority-and-fairness=false
--cert-dir=$dir/certs
${KPROXY_APISERVER_EXTRA_ARGS:-}
EOF
  echo "$api_port" >"$dir/apiserver-1.port"
  launch_apiserver "$dir" 1
  write_kubeconfig "$dir" "$api_port" "$dir/kubeconfig"
  write_kubeconfig "$dir" "$api_port" "$dir/kubeconfig-proxier" "$(cat "$dir/proxier-token")"
  write_cert_kubeconfig "$dir" "$api_port" "$dir/kubeconfig-cert"
  if [ -n "${KPROXY_OWNER_PID:-}" ]; then
    setsid bash "$0" watchdog "$dir" "$KPROXY_OWNER_PID" </dev/null >/dev/null 2>&1 &
  fi
  echo "KUBECONFIG=$dir/kubeconfig"
  echo "APISERVER_DIR=$dir"
}

# (Re)starts kube-apiserver N (1, or 2 for `second`) from $dir/apiserver.args, on $dir/apiserver-N.port.
launch_apiserver() {
  local dir=$1 n=$2 args=() line port
  port=$(cat "$dir/apiserver-$n.port")
  while IFS= read -r line; do
    [ -n "$line" ] && args+=("$line")
  done <"$dir/apiserver.args"
  setsid "$BINARY" "${args[@]}" --secure-port="$port" </dev/null >>"$dir/apiserver-$n.log" 2>&1 &
  echo $! >"$dir/apiserver-$n.pid"
  wait_for "https://127.0.0.1:$port/readyz" 90 --cacert "$dir/ca.crt" \
    -H "Authorization: Bearer $(cat "$dir/token")" \
    || { log "kube-apiserver did not become ready:"; tail -30 "$dir/apiserver-$n.log" >&2; stop "$dir"; exit 1; }
}

write_kubeconfig() { # dir, port, file [token]: the admin token (or TOKEN), the CA by file name
  write_config "$3" "https://127.0.0.1:$2" "certificate-authority: $1/ca.crt" \
    "token: ${4:-$(cat "$1/token")}"
}

write_cert_kubeconfig() { # dir, port, file: a client certificate, everything embedded as *-data
  write_config "$3" "https://127.0.0.1:$2" "certificate-authority-data: $(base64 -w0 "$1/ca.crt")" \
    "client-certificate-data: $(base64 -w0 "$1/client.crt")" "client-key-data: $(base64 -w0 "$1/client.key")"
}

write_config() { # file, server, CA line, user lines…
  local file=$1 server=$2 ca=$3 line
  shift 3
  {
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: kproxy-test\n  cluster:\n'
    printf '    server: %s\n    %s\n' "$server" "$ca"
    printf 'users:\n- name: kproxy-user\n  user:\n'
    for line in "$@"; do printf '    %s\n' "$line"; done
    printf 'contexts:\n- name: kproxy-test\n  context: {cluster: kproxy-test, user: kproxy-user}\n'
    printf 'current-context: kproxy-test\n'
  } >"$file"
}

kill_pidfile() {
  local f=$1 pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local dir=${1:?usage: kube-apiserver.sh stop DIR} w=""
  [ -f "$dir/watchdog.pid" ] && w=$(cat "$dir/watchdog.pid")
  kill_pidfile "$dir/apiserver-2.pid"
  kill_pidfile "$dir/apiserver-1.pid"
  kill_pidfile "$dir/etcd.pid"
  [ -n "${KPROXY_KEEP_APISERVER_DIR:-}" ] || rm -rf "$dir"
  if [ -n "$w" ] && [ "$w" != "$$" ]; then kill "$w" 2>/dev/null || true; fi
}

watchdog() { # dir, owner pid: stop everything once the owner is gone
  local dir=$1 owner=$2
  echo $$ >"$dir/watchdog.pid"
  while kill -0 "$owner" 2>/dev/null && [ -d "$dir" ]; do sleep 2; done
  if [ -d "$dir" ]; then stop "$dir"; fi
}

kill_apiserver() { kill_pidfile "${1:?usage: kube-apiserver.sh kill DIR}/apiserver-1.pid"; }

restart() {   # stop kube-apiserver 1 (etcd keeps the data) and start it again on the same port
  local dir=${1:?usage: kube-apiserver.sh restart DIR}
  kill_pidfile "$dir/apiserver-1.pid"
  launch_apiserver "$dir" 1
}

second() {
  local dir=${1:?usage: kube-apiserver.sh second DIR} port
  port=$(free_port)
  echo "$port" >"$dir/apiserver-2.port"
  launch_apiserver "$dir" 2
  write_kubeconfig "$dir" "$port" "$dir/kubeconfig-2"
  echo "KUBECONFIG=$dir/kubeconfig-2"
}

compact() {   # through etcd's JSON gateway: no etcdctl needed
  local dir=${1:?usage: kube-apiserver.sh compact DIR} url rev
  url=$(cat "$dir/etcd.url")
  rev=$(curl -fsS -X POST "$url/v3/kv/range" -d '{"key":"AA=="}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  curl -fsS -X POST "$url/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
  echo "$rev"
}

case "${1:-}" in
  build) build ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  restart) shift; restart "$@" ;;
  kill) shift; kill_apiserver "$@" ;;
  second) shift; second "$@" ;;
  compact) shift; compact "$@" ;;
  watchdog) shift; watchdog "$@" ;;
  path) [ -x "$BINARY" ] && echo "$BINARY" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
