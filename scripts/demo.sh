#!/usr/bin/env bash
# kproxy sandbox demo: a node in network namespaces with a pod for every endpoint of the example
# manifests, `kproxy run --mode nftables` programming it, traffic to every service, and a scale-up
# and scale-down that traffic follows. Everything lives in namespaces named PREFIX*; the host's own
# interfaces, routes and ruleset are never touched. Everything is removed on exit (also on Ctrl-C).
#
# Usage: sudo scripts/demo.sh [MANIFEST_DIR]        (default: deploy/examples)
#
# Environment:
#   NODE=node-a            the node kproxy runs as (endpoints with this nodeName get local pods)
#   SCALE_SERVICE=default/web   the service the demo scales
#   COUNT=6                connections (or datagrams) per target
#   PREFIX=kpdNNNN-        namespace prefix
#   SKIP_BUILD=1           use the binaries already built (BIN_DIR, default: swift build --show-bin-path)
#   KEEP=1                 keep the work folder (logs, manifests) after exit
#   KPROXY_ARGS="..."      extra arguments for `kproxy run`
#
# Needs: root (CAP_NET_ADMIN), iproute2, nftables.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXAMPLES=${1:-$ROOT/deploy/examples}
NODE=${NODE:-node-a}
SCALE_SERVICE=${SCALE_SERVICE:-default/web}
COUNT=${COUNT:-6}
PREFIX=${PREFIX:-kpd$(($$ % 10000))-}
KPROXY_ARGS=${KPROXY_ARGS:-}

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { echo; bold "== $*"; }
die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces): sudo $0 $*"
command -v ip >/dev/null || die "needs iproute2 (ip)"
command -v nft >/dev/null || die "needs nftables (nft)"
[ -d "$EXAMPLES" ] || die "no manifest folder $EXAMPLES (the examples come from deploy/examples)"

command -v swift >/dev/null || [ ! -x /opt/swift/usr/bin/swift ] || export PATH=/opt/swift/usr/bin:$PATH
if [ -z "${SKIP_BUILD:-}" ]; then
    # The project's setup script (packages, Swift packages) when this checkout has it.
    if [ -f "$ROOT/scripts/setup.sh" ]; then (. "$ROOT/scripts/setup.sh"); fi
    step "Building kproxy, testpod and kproxy-sandbox"
    buildlog=$(mktemp /tmp/kproxy-demo-build.XXXXXX)
    if ! (cd "$ROOT" && swift build >"$buildlog" 2>&1); then
        grep -E 'error:' "$buildlog" | head -20 || tail -30 "$buildlog"
        rm -f "$buildlog"
        die "swift build failed"
    fi
    tail -1 "$buildlog"
    rm -f "$buildlog"
fi
BIN=${BIN_DIR:-$(cd "$ROOT" && swift build --show-bin-path)}
for b in kproxy testpod kproxy-sandbox; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is not built (run swift build)"
done

WORK=$(mktemp -d /tmp/kproxy-demo.XXXXXX)
SANDBOX_PID="" KPROXY_PID="" STREAM_PID=""

# Stop what this script started, by pid, then remove the sandbox's namespaces whatever happened.
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    echo
    bold "== Cleaning up"
    [ -n "$STREAM_PID" ] && kill -TERM "$STREAM_PID" 2>/dev/null
    if [ -n "$KPROXY_PID" ] && kill -0 "$KPROXY_PID" 2>/dev/null; then
        kill -TERM "$KPROXY_PID"
        for _ in $(seq 50); do kill -0 "$KPROXY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$KPROXY_PID" 2>/dev/null
    fi
    if [ -n "$SANDBOX_PID" ] && kill -0 "$SANDBOX_PID" 2>/dev/null; then
        kill -TERM "$SANDBOX_PID"
        for _ in $(seq 100); do kill -0 "$SANDBOX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SANDBOX_PID" 2>/dev/null
    fi
    "$BIN/kproxy-sandbox" down --prefix "$PREFIX"
    if [ -n "${KEEP:-}" ]; then echo "logs and manifests kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
step "1. The sandbox: node $NODE, its pods and the remote node's, clients outside ($PREFIX*)"
mkdir -p "$WORK/manifests"
cp -r "$EXAMPLES"/. "$WORK/manifests/"
rm -f "$WORK/manifests/README.md"
echo "manifests copied to $WORK/manifests (the demo edits the copy)"
"$BIN/kproxy-sandbox" up --manifests "$WORK/manifests" --node "$NODE" --prefix "$PREFIX" \
    --env-file "$WORK/env" >"$WORK/sandbox.log" 2>&1 &
SANDBOX_PID=$!
for _ in $(seq 600); do
    [ -f "$WORK/env" ] && break
    kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$WORK/sandbox.log"; die "the sandbox did not come up"; }
    sleep 0.1
done
[ -f "$WORK/env" ] || { cat "$WORK/sandbox.log"; die "the sandbox did not come up in 60 s"; }
cat "$WORK/sandbox.log"
# shellcheck disable=SC1091
. "$WORK/env"

# Sends COUNT connections (datagrams) from namespace $1 to $2 port $3 protocol $4; prints who answered.
query() {
    local ns=$1 addr=$2 port=$3 proto=$4 count=${5:-$COUNT} target flags=()
    if [[ $addr == *:* ]]; then target="[$addr]:$port"; else target="$addr:$port"; fi
    case $proto in udp) flags=(--udp) ;; sctp) flags=(--sctp) ;; esac
    ip netns exec "$ns" "$BIN/testpod" query "${flags[@]}" --format text --count "$count" \
        --parallel "$count" --timeout-ms 1000 "$target" 2>&1
}

# ---------------------------------------------------------------------------------------------
step "2. kproxy run --mode nftables in the node namespace ($NODE_NS)"
start_kproxy() {
    # shellcheck disable=SC2086
    ip netns exec "$NODE_NS" "$BIN/kproxy" run --mode nftables --manifests "$WORK/manifests" \
        --hostname-override "$NODE" $KPROXY_ARGS >>"$WORK/kproxy.log" 2>&1 &
    KPROXY_PID=$!
    echo "kproxy pid $KPROXY_PID, log $WORK/kproxy.log"
}
start_kproxy

# INTEGRATION POINT (CLI / data plane): readiness. kproxy serves /healthz on 0.0.0.0:10256 inside
# the node namespace; until the nftables data plane is in the build, `kproxy run` exits here and
# the demo goes on with pod-to-pod traffic only.
ready=""
for _ in $(seq 150); do
    if ! kill -0 "$KPROXY_PID" 2>/dev/null; then break; fi
    if ip netns exec "$NODE_NS" "$BIN/testpod" http --path /healthz --timeout-ms 500 127.0.0.1:10256 2>/dev/null |
        grep -q '"status":200'; then
        ready=yes; break
    fi
    if ip netns exec "$NODE_NS" nft list tables 2>/dev/null | grep -q .; then ready=yes; sleep 0.5; break; fi
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "kproxy is not running; its log:"
    sed 's/^/  | /' "$WORK/kproxy.log" | tail -20
    echo "(needs 'kproxy run --mode nftables --manifests DIR --hostname-override NODE' with the nftables"
    echo " data plane; showing traffic straight to pods so the sandbox itself is seen working)"
    step "3. Traffic straight to pods (no kproxy)"
    while IFS= read -r line; do
        case $line in
        "  pod "*)
            name=${line#  pod }; name=${name%% on *}; addr=${name#*@}
            ports=${line##*: }; port=$(grep -o 'tcp [0-9]*' <<<"$ports" | head -1 | cut -d' ' -f2 || true)
            [ -n "$port" ] || continue
            printf '  %-34s %s\n' "client -> $addr:$port" "$(query "$CLIENT_NS" "$addr" "$port" tcp 2)"
            ;;
        esac
    done <"$WORK/sandbox.log"
    exit 1
fi
echo "kproxy is programming the node:"
ip netns exec "$NODE_NS" nft list tables | sed 's/^/  /'

# ---------------------------------------------------------------------------------------------
step "3. Traffic to every service (who answered, and the source address the pod saw)"
echo "clients: client $(ip netns exec "$CLIENT_NS" ip -4 -br addr show eth0 | awk '{print $3}'), lb-allowed (in the load balancers' source ranges), lb-denied (outside them)"
echo "\"from a pod\": ${POD_NAME:-none} (IPv4), ${POD6_NAME:-none} (IPv6); answers read <pod> ×<count> (from <source the pod saw>)"
"$BIN/kproxy-sandbox" targets --manifests "$WORK/manifests" --node "$NODE" >"$WORK/targets"
while IFS=$'\t' read -r svc kind addr port proto; do
    printf '%s  %s %s:%s/%s\n' "$svc" "$kind" "$addr" "$port" "$proto"
    case $kind in
    ClusterIP)
        printf '    %-12s %s\n' "from client" "$(query "$CLIENT_NS" "$addr" "$port" "$proto")"
        if [[ $addr == *:* ]]; then podns=${POD6_NS:-}; else podns=${POD_NS:-}; fi
        [ -n "$podns" ] && printf '    %-12s %s\n' "from a pod" "$(query "$podns" "$addr" "$port" "$proto")"
        ;;
    LoadBalancer)
        printf '    %-12s %s\n' "lb-allowed" "$(query "$CLIENT_LB_ALLOWED_NS" "$addr" "$port" "$proto")"
        printf '    %-12s %s\n' "lb-denied" "$(query "$CLIENT_LB_DENIED_NS" "$addr" "$port" "$proto")"
        ;;
    *)
        printf '    %-12s %s\n' "from client" "$(query "$CLIENT_NS" "$addr" "$port" "$proto")"
        ;;
    esac
done <"$WORK/targets"

# ---------------------------------------------------------------------------------------------
step "4. Scaling $SCALE_SERVICE: two more endpoints (one on $NODE, one on the remote node)"
scale_target=$(awk -F'\t' -v s="$SCALE_SERVICE" '($1 == s || index($1, s ":") == 1) && $2 == "ClusterIP" && $3 !~ /:/ { print $3 " " $4 " " $5; exit }' "$WORK/targets")
[ -n "$scale_target" ] || die "no IPv4 cluster IP for $SCALE_SERVICE in the manifests"
read -r s_addr s_port s_proto <<<"$scale_target"
printf '  before: %s\n' "$(query "$CLIENT_NS" "$s_addr" "$s_port" "$s_proto" 12)"

wait_generation() {
    local before=$1
    for _ in $(seq 300); do
        # shellcheck disable=SC1091
        . "$WORK/env"
        [ "$GENERATION" != "$before" ] && return 0
        sleep 0.1
    done
    die "the sandbox did not follow the manifest change"
}
# Queries until every attempt is answered and the answers name (or do not name) a pattern, for up
# to 20 s; prints the last answer. (Pods come and go a moment before kproxy's next sync.)
wait_answer() {
    local want=$1 pattern=$2 out=""
    for _ in $(seq 40); do
        out=$(query "$CLIENT_NS" "$s_addr" "$s_port" "$s_proto" 12)
        if ! grep -qE 'timed out|refused|reset|unreachable|#' <<<"$out"; then
            if [ "$want" = present ] && grep -q -- "$pattern" <<<"$out"; then break; fi
            if [ "$want" = absent ] && ! grep -q -- "$pattern" <<<"$out"; then break; fi
        fi
        sleep 0.5
    done
    printf '%s\n' "$out"
}

gen=$GENERATION
"$BIN/kproxy-sandbox" scale --manifests "$WORK/manifests" --node "$NODE" --service "$SCALE_SERVICE" --add 2 |
    sed 's/^/  | /'
wait_generation "$gen"
sed -n '/^+ pod\|^- pod/p' "$WORK/sandbox.log" | tail -2 | sed 's/^/  sandbox: /'
printf '  after:  %s\n' "$(wait_answer present '@10.244.2.200')"

gen=$GENERATION
"$BIN/kproxy-sandbox" scale --manifests "$WORK/manifests" --service "$SCALE_SERVICE" --remove | sed 's/^/  | /'
wait_generation "$gen"
printf '  scaled back: %s\n' "$(wait_answer absent '@10.244.[12].200')"

# ---------------------------------------------------------------------------------------------
step "5. Restarting kproxy under steady traffic (8 connections to $s_addr:$s_port)"
ip netns exec "$CLIENT_NS" "$BIN/testpod" stream --format text --connections 8 --seconds 4 \
    --interval-ms 50 "$s_addr:$s_port" >"$WORK/stream.out" 2>&1 &
STREAM_PID=$!
for _ in $(seq 100); do grep -q '^opened' "$WORK/stream.out" && break; sleep 0.05; done
kill -TERM "$KPROXY_PID"
wait "$KPROXY_PID" 2>/dev/null || true
echo "  kproxy stopped (SIGTERM); its rules stay in place"
sleep 1
printf '  restarted: '
start_kproxy
wait "$STREAM_PID" 2>/dev/null || true
STREAM_PID=""
printf '  %s\n' "$(tail -1 "$WORK/stream.out")"

step "Done: kproxy's log ends with"
tail -5 "$WORK/kproxy.log" | sed 's/^/  | /'
