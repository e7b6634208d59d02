# Network namespaces with NAT routers, for the holepunching tests (sourced
# after `set -euo pipefail`). Everything made here is deleted on exit.
#
#   pub (the "internet", 10.77.0.0/24): a bridge and 3 `p2p dht bootstrap`
#     nodes on 10.77.0.1 (nat_bootstrap)
#   nat_router R H PUBLIC LAN MASQUERADE: namespace R routes namespace H's
#     private network LAN.0/24 (H is LAN.2) to pub as PUBLIC.
#
# Each router masquerades its LAN (nftables; MASQUERADE is the rule:
# "masquerade" keeps a socket's port for every destination, a consistent NAT;
# "masquerade random" picks a new port for each, a random NAT) and drops
# what comes in from the public side unless it answers something sent out
# (as home routers do; an unsolicited probe must not leave a conntrack entry
# that would make the NAT pick another port for the answer). No private
# network is routed from another or from pub. The routers count the 1-byte
# holepunch probes coming in: "open session" ones, sent with TTL 5, arrive
# with TTL 4 (one hop spent), the others with 63.
# Needs root, ip (iproute2), nft (nftables) and python3; otherwise exits 77
# saying why. NAT_TEST_KEEP=1 keeps the logs.
: "${P2P:?set P2P to the p2p binary}"
skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip > /dev/null || skip "ip (iproute2) is not installed"
command -v nft > /dev/null || skip "nft (nftables) is not installed"
command -v python3 > /dev/null || skip "python3 is not installed"

T=$(mktemp -d)
S=$$
NS_PUB="p2pnat-pub-$S"
NAMESPACES=("$NS_PUB")
ROUTERS=()
PIDS=()
cleanup() {
  local p n
  {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for n in "${NAMESPACES[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  } 2> /dev/null
  if [ -n "${NAT_TEST_KEEP:-}" ]; then echo "logs kept in $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
START=$SECONDS
# shellcheck source=strict_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/strict_lib.sh"
in_ns() {  # in_ns NAMESPACE COMMAND...
  local n=$1
  shift
  ip netns exec "$n" "$@"
}

# --- can we make namespaces with NAT here? ------------------------------------------
ip netns add "$NS_PUB" 2> "$T/err" || skip "cannot make a network namespace: $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft add table ip probe 2> "$T/err" || skip "nftables does not work here: $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft 'add chain ip probe post { type nat hook postrouting priority 100 ; }' 2> "$T/err" ||
  skip "no NAT in nftables here (kernel without nf_nat?): $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft delete table ip probe
ip -n "$NS_PUB" link add probe0 type bridge 2> "$T/err" || skip "no bridges here: $(head -n 1 "$T/err")"
ip -n "$NS_PUB" link add probe1 type veth peer name probe2 2> "$T/err" || skip "no veth pairs here: $(head -n 1 "$T/err")"
ip -n "$NS_PUB" link del probe0
ip -n "$NS_PUB" link del probe1
ip -n "$NS_PUB" link set lo up
ip -n "$NS_PUB" link add br0 type bridge
ip -n "$NS_PUB" addr add 10.77.0.1/24 dev br0
ip -n "$NS_PUB" link set br0 up

# nat_router ROUTER_NS HOST_NS PUBLIC_IP LAN_PREFIX (e.g. 192.168.1) MASQUERADE
nat_router() {
  local r=$1 h=$2 pub=$3 lan=$4 masq=$5 port n
  for n in "$r" "$h"; do
    ip netns add "$n"
    NAMESPACES+=("$n")
    ip -n "$n" link set lo up
  done
  port="p${#NAMESPACES[@]}"  # its side on pub's bridge
  ip -n "$r" link add wan type veth peer name "$port" netns "$NS_PUB"
  ip -n "$NS_PUB" link set "$port" master br0 up
  ip -n "$r" addr add "$pub/24" dev wan
  ip -n "$r" link set wan up
  ip -n "$r" link add lan type veth peer name eth0 netns "$h"
  ip -n "$r" addr add "$lan.1/24" dev lan
  ip -n "$r" link set lan up
  ip -n "$h" addr add "$lan.2/24" dev eth0
  ip -n "$h" link set eth0 up
  ip -n "$h" route add default via "$lan.1"
  in_ns "$r" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  in_ns "$r" nft -f - <<NFT
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" $masq
  }
}
table ip filter {
  counter low_ttl_probes {}
  counter probes {}
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    iifname "wan" udp length 9 ip ttl 4 counter name "low_ttl_probes"
    iifname "wan" udp length 9 ip ttl 63 counter name "probes"
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
NFT
  # Its private network is routed from neither pub nor the other routers
  # (their hosts reach only what their own router routes).
  for n in "$NS_PUB" "${ROUTERS[@]}"; do
    ! ip -n "$n" route get "$lan.2" > /dev/null 2>&1 || fail "$lan.2 is routable from $n: $(ip -n "$n" route get "$lan.2")"
  done
  ROUTERS+=("$r")
}
nat_counter() {  # nat_counter ROUTER_NS NAME: its packet count
  in_ns "$1" nft list counter ip filter "$2" | sed -n 's/.*packets \([0-9]*\).*/\1/p'
}

# nat_bootstrap HOST_NS...: 3 DHT nodes on pub (BOOT lists them), each host
# namespace reaching them through its NAT.
BOOT=10.77.0.1:49737,10.77.0.1:49738,10.77.0.1:49739
nat_bootstrap() {
  local i extra h ok
  for i in 0 1 2; do
    extra=()
    [ "$i" = 0 ] || extra=(--bootstrap 10.77.0.1:49737)
    ip netns exec "$NS_PUB" "$P2P" dht bootstrap --host 10.77.0.1 --port $((49737 + i)) "${extra[@]}" \
      > "$T/node$i.out" 2> "$T/node$i.err" &
    PIDS+=("$!")
    if [ "$i" = 0 ]; then
      for _ in $(seq 1 50); do [ -s "$T/node0.out" ] && break; sleep 0.1; done
    fi
  done
  for h in "$@"; do
    ok=
    for _ in 1 2 3 4 5; do
      run in_ns "$h" "$P2P" dht ping 10.77.0.1:49739 --timeout 2
      [ "$RC" = 0 ] && { ok=1; break; }
      sleep 0.5
    done
    [ -n "$ok" ] || { tails "$T/node2.err"; fail "the DHT node 10.77.0.1:49739 does not answer a ping from $h"; }
  done
}

new_home() {  # new_home NAME: a p2p home with an identity in $T/NAME
  run env P2P_HOME="$T/$1" "$P2P" id create
  [ "$RC" = 0 ] || fail "id create in $1: exit $RC"
}
# connected_how FILE [HOW]: a connected event with that how (default
# $EXPECT_HOW, else holepunched); prints its address and role.
connected_how() {
  python3 - "$1" "${2:-${EXPECT_HOW:-holepunched}}" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("event") == "connected" and j.get("how") == sys.argv[2]:
        print(j["address"], "initiator" if j["initiator"] else "accepted")
        sys.exit(0)
sys.exit(1)
PY
}
holepunched() { connected_how "$1" holepunched; }
# The JavaScript reference (tests/interop's pinned packages), when node and
# they are there: JS_PEER is the peer script (nat_peer.cjs), MODULES its packages.
MODULES="$(cd "$(dirname "${BASH_SOURCE[0]}")/../interop" && pwd)/node_modules"
JS_PEER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nat_peer.cjs"
have_js() { command -v node > /dev/null && [ -d "$MODULES/hyperswarm" ]; }
sanitizer_check() {  # fails on a sanitizer report in any of the logs
  local f
  for f in "$T"/*.err; do
    [ -e "$f" ] || continue
    if grep -q "Sanitizer\|runtime error" "$f"; then fail "$(basename "$f"): $(grep -m 3 "Sanitizer\|runtime error" "$f")"; fi
  done
}

# js_case LABEL JS_NS P2P_NS P2P_HOME JS_MODE P2P_MODE FIRST(js|p2p) PIPE_BOUND:
# the JavaScript peer (nat_peer.cjs) in JS_NS and `p2p swarm join --pipe` in
# P2P_NS on a topic of their own, FIRST started 2 s before the other; a line
# each way, and p2p's connection $EXPECT_HOW (default holepunched). With
# RELAY set, both name that blind relay. Sets JS_HOW (p2p's view) and JS_AT.
js_case() {
  local label=$1 js_ns=$2 p2p_ns=$3 home=$4 jsmode=$5 p2pmode=$6 first=$7 bound=$8 topic seed T0 PJ PP
  topic=$(printf 'nat test js %s %s' "$S" "$label" | sha256sum | cut -c1-64)
  seed=$(printf 'nat test js seed %s %s' "$S" "$label" | sha256sum | cut -c1-64)
  printf 'hello from p2p\n' > "$T/p2p.in"
  start_js() {
    ip netns exec "$js_ns" node "$JS_PEER" "$MODULES" "$BOOT" "$topic" "$seed" "$jsmode" "${RELAY:--}" < /dev/null > "$T/js.out" 2> "$T/js.err" &
    PJ=$!
    PIDS+=("$PJ")
  }
  start_p2p() {
    ip netns exec "$p2p_ns" env P2P_HOME="$home" "$P2P" --bootstrap "$BOOT" --json swarm join "$topic" --pipe "$p2pmode" \
      ${RELAY:+--relay-through "$RELAY"} < "$T/p2p.in" > "$T/p2p.out" 2> "$T/p2p.err" &
    PP=$!
    PIDS+=("$PP")
  }
  T0=$SECONDS
  if [ "$first" = js ]; then start_js; sleep 2; start_p2p; else start_p2p; sleep 2; start_js; fi
  for _ in $(seq 1 $((bound * 10))); do
    kill -0 "$PP" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$PP" 2>/dev/null && { tails "$T/p2p.err" "$T/js.out" "$T/js.err"; fail "($label) p2p has not exited within $bound s"; }
  RC=0; wait "$PP" || RC=$?
  [ "$RC" = 0 ] || { tails "$T/p2p.err" "$T/js.out" "$T/js.err"; fail "($label) p2p exited $RC"; }
  grep -qx "hello from javascript" "$T/p2p.out" || fail "($label) p2p did not get the JavaScript peer's line: $(head -c 200 "$T/p2p.out")"
  grep -q '"text":"hello from p2p\\n"' "$T/js.out" || { tails "$T/js.out" "$T/js.err"; fail "($label) the JavaScript peer did not get p2p's line"; }
  JS_HOW=$(connected_how "$T/p2p.err" || true)
  [ -n "$JS_HOW" ] || { tails "$T/p2p.err"; fail "($label) p2p's connection to the JavaScript peer is not ${EXPECT_HOW:-holepunched}"; }
  JS_AT=$(sed -n 's/.*"event":"connected".*"address":"\([^"]*\)".*/\1/p' "$T/js.out" | head -n 1)
  kill "$PJ" 2>/dev/null || true
  echo "    ($label) p2p: ${EXPECT_HOW:-holepunched}, at $JS_HOW; JavaScript: at $JS_AT; a line each way; $((SECONDS - T0))s"
}

# pipe_case LABEL NS_SERVER HOME_SERVER NS_CLIENT HOME_CLIENT MIB BOUND: `swarm
# join --pipe` serving in one namespace, dialling from the other: MIB MiB
# each way, sha256 equal both ways, both exit 0, $EXPECT_HOW (default
# holepunched) on both sides; with RELAY set, both name that blind relay.
# Sets PIPE_HOW (both sides' views).
pipe_case() {
  local label=$1 ns1=$2 h1=$3 ns2=$4 h2=$5 mib=$6 bound=$7 topic P1 P2 RC1 RC2 how1 how2
  topic="nat test pipe $S $label"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$T/s.in"
  head -c $((mib * 1024 * 1024)) /dev/urandom > "$T/c.in"
  : > "$T/s.got"
  : > "$T/c.got"
  ip netns exec "$ns1" env P2P_HOME="$h1" "$P2P" --bootstrap "$BOOT" --json swarm join "$topic" --pipe --server \
    ${RELAY:+--relay-through "$RELAY"} < "$T/s.in" > "$T/s.got" 2> "$T/ps.err" &
  P1=$!
  PIDS+=("$P1")
  sleep 1  # the server announces first, so that the client's first lookup finds it
  ip netns exec "$ns2" env P2P_HOME="$h2" "$P2P" --bootstrap "$BOOT" --json swarm join "$topic" --pipe --client \
    ${RELAY:+--relay-through "$RELAY"} < "$T/c.in" > "$T/c.got" 2> "$T/pc.err" &
  P2=$!
  PIDS+=("$P2")
  for _ in $(seq 1 $((bound * 10))); do
    kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null; then
    echo "  after $bound s: the server received $(stat -c %s "$T/s.got") bytes, the client $(stat -c %s "$T/c.got")"
    tails "$T/ps.err" "$T/pc.err"
    fail "($label) --pipe: both ends have not exited within $bound s"
  fi
  RC1=0; wait "$P1" || RC1=$?
  RC2=0; wait "$P2" || RC2=$?
  [ "$RC1" = 0 ] && [ "$RC2" = 0 ] || { tails "$T/ps.err" "$T/pc.err"; fail "($label) --pipe ends exited $RC1 and $RC2, expected 0 and 0"; }
  [ "$(sha256sum < "$T/c.got" | cut -d' ' -f1)" = "$(sha256sum < "$T/s.in" | cut -d' ' -f1)" ] ||
    fail "($label) the client received $(stat -c %s "$T/c.got") bytes that are not the server's $mib MiB"
  [ "$(sha256sum < "$T/s.got" | cut -d' ' -f1)" = "$(sha256sum < "$T/c.in" | cut -d' ' -f1)" ] ||
    fail "($label) the server received $(stat -c %s "$T/s.got") bytes that are not the client's $mib MiB"
  how1=$(connected_how "$T/ps.err" || true)
  how2=$(connected_how "$T/pc.err" || true)
  [ -n "$how1" ] && [ -n "$how2" ] || { tails "$T/ps.err" "$T/pc.err"; fail "($label) --pipe: the connection was not ${EXPECT_HOW:-holepunched} on both sides"; }
  PIPE_HOW="server: $how1, client: $how2"
}
