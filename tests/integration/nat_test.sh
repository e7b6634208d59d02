#!/usr/bin/env bash
# Holepunching between two peers, each behind its own NAT, in network
# namespaces made here (and deleted on exit):
#
#   pub (the "internet", 10.77.0.0/24): a bridge, 3 `p2p dht bootstrap` nodes
#     on 10.77.0.1, and the NAT routers' public sides 10.77.0.2 and .3
#   ra: NAT router 10.77.0.2 <-> 192.168.1.1      a: peer 192.168.1.2
#   rb: NAT router 10.77.0.3 <-> 192.168.2.1      b: peer 192.168.2.2
#
# Each router masquerades its LAN (nftables) and drops what comes in from the
# public side unless it answers something sent out (as home routers do; an
# unsolicited probe must not leave a conntrack entry that would make the NAT
# pick another port for the answer). Neither private network is routed from
# the other or from pub. The routers count the 1-byte holepunch probes coming
# in: the "open session" ones, sent with TTL 5, arrive with TTL 4 (one hop
# spent), the others with 63. Then:
#   1. `p2p swarm join TOPIC --json` in a and in b: both report a connection
#      to the other with "how": "holepunched";
#   2. --pipe (a serves, b dials): 4 MiB each way through the punched path,
#      sha256 equal both ways, both exit 0;
#   3. when node and tests/interop's packages are there: the JavaScript
#      reference (hyperswarm) in a, p2p in b, each dialling the other once.
# Needs root, ip (iproute2) and nft (nftables); otherwise exits 77 saying why.
# NAT_TEST_KEEP=1 keeps the peers' logs.
set -euo pipefail
: "${P2P:?set P2P to the p2p binary}"
skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces"
command -v ip > /dev/null || skip "ip (iproute2) is not installed"
command -v nft > /dev/null || skip "nft (nftables) is not installed"
command -v python3 > /dev/null || skip "python3 is not installed"

JOIN_BOUND=60   # s: both peers report the holepunched connection
PIPE_BOUND=60   # s: both --pipe ends exit
PIPE_MIB=4

T=$(mktemp -d)
S=$$
NS_PUB="p2pnat-pub-$S" NS_RA="p2pnat-ra-$S" NS_RB="p2pnat-rb-$S" NS_A="p2pnat-a-$S" NS_B="p2pnat-b-$S"
NAMESPACES=("$NS_PUB" "$NS_RA" "$NS_RB" "$NS_A" "$NS_B")
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
source "$(dirname "$0")/strict_lib.sh"
tails() {  # tails FILE...: the last lines of each (for failure reports)
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "  --- $(basename "$f"):"
    tail -n 12 "$f" | cut -c1-300 | sed 's/^/    /'
  done
}
in_ns() {  # in_ns NAMESPACE COMMAND...
  local n=$1
  shift
  ip netns exec "$n" "$@"
}

# --- 0. can we make namespaces with NAT here? -------------------------------------
ip netns add "$NS_PUB" 2> "$T/err" || skip "cannot make a network namespace: $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft add table ip probe 2> "$T/err" || skip "nftables does not work here: $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft 'add chain ip probe post { type nat hook postrouting priority 100 ; }' 2> "$T/err" ||
  skip "no NAT in nftables here (kernel without nf_nat?): $(head -n 1 "$T/err")"
in_ns "$NS_PUB" nft delete table ip probe
ip -n "$NS_PUB" link add probe0 type bridge 2> "$T/err" || skip "no bridges here: $(head -n 1 "$T/err")"
ip -n "$NS_PUB" link add probe1 type veth peer name probe2 2> "$T/err" || skip "no veth pairs here: $(head -n 1 "$T/err")"
ip -n "$NS_PUB" link del probe0
ip -n "$NS_PUB" link del probe1

# --- 1. the networks ------------------------------------------------------------------
for n in "$NS_RA" "$NS_RB" "$NS_A" "$NS_B"; do ip netns add "$n"; done
for n in "${NAMESPACES[@]}"; do ip -n "$n" link set lo up; done
ip -n "$NS_PUB" link add br0 type bridge
ip -n "$NS_PUB" addr add 10.77.0.1/24 dev br0
ip -n "$NS_PUB" link set br0 up
# router ROUTER_NS HOST_NS PUBLIC_IP LAN_PREFIX (e.g. 192.168.1) PORT_NAME (its side on pub's bridge)
router() {
  local r=$1 h=$2 pub=$3 lan=$4 port=$5
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
  in_ns "$r" nft -f - <<EOF
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
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
EOF
}
router "$NS_RA" "$NS_A" 10.77.0.2 192.168.1 to-ra
router "$NS_RB" "$NS_B" 10.77.0.3 192.168.2 to-rb
# The private networks are routed nowhere but behind their own router.
for pair in "$NS_PUB 192.168.1.2" "$NS_PUB 192.168.2.2" "$NS_RA 192.168.2.2" "$NS_RB 192.168.1.2"; do
  read -r n addr <<< "$pair"
  ip -n "$n" route get "$addr" > /dev/null 2>&1 && fail "$addr is routable from $n: $(ip -n "$n" route get "$addr")"
done
step "1. namespaces: pub 10.77.0.0/24, NAT ra (10.77.0.2) before a 192.168.1.2, NAT rb (10.77.0.3) before b 192.168.2.2"

# --- 2. three DHT nodes on pub ------------------------------------------------------------
BOOT=10.77.0.1:49737,10.77.0.1:49738,10.77.0.1:49739
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
# Reachable from behind each NAT (through it), and the other side's private address is not.
for h in "$NS_A" "$NS_B"; do
  ok=
  for _ in 1 2 3 4 5; do
    run in_ns "$h" "$P2P" dht ping 10.77.0.1:49739 --timeout 2
    [ "$RC" = 0 ] && { ok=1; break; }
    sleep 0.5
  done
  [ -n "$ok" ] || { tails "$T/node2.err"; fail "the DHT node 10.77.0.1:49739 does not answer a ping from $h"; }
done
run in_ns "$NS_A" "$P2P" dht ping 192.168.2.2:49737 --timeout 1
[ "$RC" != 0 ] || fail "a reached b's private address"
step "2. 3 DHT nodes on 10.77.0.1 answer both peers through their NATs; b's private address is out of a's reach"

# --- 3. swarm join: both connected, holepunched --------------------------------------------
new_home() {  # new_home NAME
  run env P2P_HOME="$T/$1" "$P2P" id create
  [ "$RC" = 0 ] || fail "id create in $1: exit $RC"
}
new_home ha
new_home hb
TOPIC="nat test $S"
# holepunched FILE: a connected event with how=holepunched (prints its address)
holepunched() {
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("event") == "connected" and j.get("how") == "holepunched":
        print(j["address"], "initiator" if j["initiator"] else "accepted")
        sys.exit(0)
sys.exit(1)
PY
}
S3=$SECONDS
# Started directly (ip netns exec execs env, which execs p2p): $! is p2p itself.
ip netns exec "$NS_A" env P2P_HOME="$T/ha" "$P2P" --bootstrap "$BOOT" --json swarm join "$TOPIC" > "$T/a.out" 2> "$T/a.err" &
PA=$!
PIDS+=("$PA")
ip netns exec "$NS_B" env P2P_HOME="$T/hb" "$P2P" --bootstrap "$BOOT" --json swarm join "$TOPIC" > "$T/b.out" 2> "$T/b.err" &
PB=$!
PIDS+=("$PB")
while :; do
  HA=$(holepunched "$T/a.out" || true)
  HB=$(holepunched "$T/b.out" || true)
  [ -n "$HA" ] && [ -n "$HB" ] && break
  kill -0 "$PA" 2>/dev/null || { tails "$T/a.out" "$T/a.err"; fail "peer a exited"; }
  kill -0 "$PB" 2>/dev/null || { tails "$T/b.out" "$T/b.err"; fail "peer b exited"; }
  if [ $((SECONDS - S3)) -ge "$JOIN_BOUND" ]; then
    tails "$T/a.out" "$T/a.err" "$T/b.out" "$T/b.err"
    fail "no holepunched connection on both sides within $JOIN_BOUND s (a: '${HA}', b: '${HB}')"
  fi
  sleep 0.5
done
# Each sees the other at its router's public address.
[[ "$HA" == 10.77.0.3:* ]] || fail "a's connection goes to $HA, not to b's NAT 10.77.0.3"
[[ "$HB" == 10.77.0.2:* ]] || fail "b's connection goes to $HB, not to a's NAT 10.77.0.2"
counter() {  # counter ROUTER_NS NAME: its packet count
  in_ns "$1" nft list counter ip filter "$2" | sed -n 's/.*packets \([0-9]*\).*/\1/p'
}
LOW=$(($(counter "$NS_RA" low_ttl_probes) + $(counter "$NS_RB" low_ttl_probes)))
PROBES=$(($(counter "$NS_RA" probes) + $(counter "$NS_RB" probes)))
[ "$LOW" -ge 1 ] || fail "no low-TTL (5) probe reached a router: the dialler's open session is missing"
[ "$PROBES" -ge 1 ] || fail "no punching probe reached a router"
step "3. swarm join: a connected to $HA, b to $HB, both holepunched, $((SECONDS - S3))s after joining ($LOW low-TTL and $PROBES other probes reached the routers)"
grep '"event":"connected"' "$T/a.out" | head -n 1 | sed 's/^/    a: /'
grep '"event":"connected"' "$T/b.out" | head -n 1 | sed 's/^/    b: /'
stop_rc "$PA" TERM 10
[ "$RC" = 0 ] || fail "peer a exited $RC on SIGTERM, expected 0"
stop_rc "$PB" TERM 10
[ "$RC" = 0 ] || fail "peer b exited $RC on SIGTERM, expected 0"

# --- 4. --pipe: bytes both ways through the punched path ---------------------------------
head -c $((PIPE_MIB * 1024 * 1024)) /dev/urandom > "$T/a.in"
head -c $((PIPE_MIB * 1024 * 1024)) /dev/urandom > "$T/b.in"
S4=$SECONDS
ip netns exec "$NS_A" env P2P_HOME="$T/ha" "$P2P" --bootstrap "$BOOT" --json swarm join "$TOPIC pipe" --pipe --server \
  < "$T/a.in" > "$T/a.got" 2> "$T/pa.err" &
P1=$!
PIDS+=("$P1")
sleep 1  # a announces first, so that b's first lookup finds it
ip netns exec "$NS_B" env P2P_HOME="$T/hb" "$P2P" --bootstrap "$BOOT" --json swarm join "$TOPIC pipe" --pipe --client \
  < "$T/b.in" > "$T/b.got" 2> "$T/pb.err" &
P2=$!
PIDS+=("$P2")
for _ in $(seq 1 $((PIPE_BOUND * 10))); do
  kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null; then
  echo "  after $PIPE_BOUND s: a received $(stat -c %s "$T/a.got") bytes, b $(stat -c %s "$T/b.got")"
  tails "$T/pa.err" "$T/pb.err"
  fail "--pipe: both ends have not exited within $PIPE_BOUND s"
fi
RC1=0; wait "$P1" || RC1=$?
RC2=0; wait "$P2" || RC2=$?
[ "$RC1" = 0 ] && [ "$RC2" = 0 ] || { tails "$T/pa.err" "$T/pb.err"; fail "--pipe ends exited $RC1 and $RC2, expected 0 and 0"; }
[ "$(sha256sum < "$T/b.got" | cut -d' ' -f1)" = "$(sha256sum < "$T/a.in" | cut -d' ' -f1)" ] ||
  fail "b received $(stat -c %s "$T/b.got") bytes that are not a's $PIPE_MIB MiB"
[ "$(sha256sum < "$T/a.got" | cut -d' ' -f1)" = "$(sha256sum < "$T/b.in" | cut -d' ' -f1)" ] ||
  fail "a received $(stat -c %s "$T/a.got") bytes that are not b's $PIPE_MIB MiB"
PA_HOW=$(holepunched "$T/pa.err" || true)
PB_HOW=$(holepunched "$T/pb.err" || true)
[ -n "$PA_HOW" ] && [ -n "$PB_HOW" ] || { tails "$T/pa.err" "$T/pb.err"; fail "--pipe: the connection was not holepunched on both sides"; }
step "4. --pipe: $PIPE_MIB MiB each way, sha256 equal both ways, both exit 0, holepunched (a: $PA_HOW, b: $PB_HOW), $((SECONDS - S4))s"

# --- 5. the JavaScript reference behind the other NAT ---------------------------------------
# hyperswarm (tests/interop's pinned packages) in a, p2p --pipe in b: p2p dials
# it, then it dials p2p; a line each way, holepunched on p2p's side.
MODULES="$(cd "$(dirname "$0")/../interop" && pwd)/node_modules"
if ! command -v node > /dev/null || [ ! -d "$MODULES/hyperswarm" ]; then
  step "5. skipped: no node or no tests/interop/node_modules (the JavaScript reference)"
else
  cat > "$T/peer.cjs" <<'JS'
// node peer.cjs MODULES BOOTSTRAP TOPIC SEED MODE: a Hyperswarm peer (bound
// to every interface) that greets its first peer, prints what it gets and ends
// once the peer has ended; exits 0 when the connection closed, 3 after 60 s.
const [modules, boot, topic, seed, mode] = process.argv.slice(2)
const Hyperswarm = require(modules + '/hyperswarm')
const HyperDHT = require(modules + '/hyperdht')
const b4a = require(modules + '/b4a')
setTimeout(() => process.exit(3), 60000).unref()
const bootstrap = boot.split(',').map((hp) => ({ host: hp.split(':')[0], port: Number(hp.split(':')[1]) }))
const keyPair = HyperDHT.keyPair(b4a.from(seed, 'hex'))
const swarm = new Hyperswarm({ dht: new HyperDHT({ bootstrap, keyPair }), keyPair })
let taken = false
swarm.on('connection', (conn) => {
  if (taken) return
  taken = true
  const rs = conn.rawStream
  console.log(JSON.stringify({ event: 'connected', initiator: conn.isInitiator, address: `${rs.remoteHost}:${rs.remotePort}` }))
  conn.on('error', (e) => console.error('connection error', e.code || e.message))
  conn.on('data', (d) => console.log(JSON.stringify({ event: 'data', text: b4a.toString(d) })))
  conn.on('end', async () => { await conn.flush(); conn.end() })
  conn.on('close', () => swarm.destroy().then(() => process.exit(0)))
  conn.write('hello from javascript\n')
})
swarm.join(b4a.from(topic, 'hex'), { server: mode !== 'client', client: mode !== 'server' })
JS
  js_case() {  # js_case LABEL JS_MODE P2P_MODE FIRST(js|p2p)
    local label=$1 jsmode=$2 p2pmode=$3 first=$4 topic seed i T0
    topic=$(printf 'nat test js %s %s' "$S" "$label" | sha256sum | cut -c1-64)
    seed=$(printf 'nat test js seed %s' "$label" | sha256sum | cut -c1-64)
    printf 'hello from p2p\n' > "$T/p2p.in"
    start_js() {
      ip netns exec "$NS_A" node "$T/peer.cjs" "$MODULES" "$BOOT" "$topic" "$seed" "$jsmode" < /dev/null > "$T/js.out" 2> "$T/js.err" &
      PJ=$!
      PIDS+=("$PJ")
    }
    start_p2p() {
      ip netns exec "$NS_B" env P2P_HOME="$T/hb" "$P2P" --bootstrap "$BOOT" --json swarm join "$topic" --pipe "$p2pmode" \
        < "$T/p2p.in" > "$T/p2p.out" 2> "$T/p2p.err" &
      PP=$!
      PIDS+=("$PP")
    }
    T0=$SECONDS
    if [ "$first" = js ]; then start_js; sleep 2; start_p2p; else start_p2p; sleep 2; start_js; fi
    for i in $(seq 1 $((PIPE_BOUND * 10))); do
      kill -0 "$PP" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$PP" 2>/dev/null && { tails "$T/p2p.err" "$T/js.out" "$T/js.err"; fail "5. ($label) p2p has not exited within $PIPE_BOUND s"; }
    RC=0; wait "$PP" || RC=$?
    [ "$RC" = 0 ] || { tails "$T/p2p.err" "$T/js.out" "$T/js.err"; fail "5. ($label) p2p exited $RC"; }
    grep -qx "hello from javascript" "$T/p2p.out" || fail "5. ($label) p2p did not get the JavaScript peer's line: $(head -c 200 "$T/p2p.out")"
    grep -q '"text":"hello from p2p\\n"' "$T/js.out" || { tails "$T/js.out" "$T/js.err"; fail "5. ($label) the JavaScript peer did not get p2p's line"; }
    JS_HOW=$(holepunched "$T/p2p.err" || true)
    [ -n "$JS_HOW" ] || { tails "$T/p2p.err"; fail "5. ($label) p2p's connection to the JavaScript peer is not holepunched"; }
    JS_AT=$(sed -n 's/.*"event":"connected".*"address":"\([^"]*\)".*/\1/p' "$T/js.out" | head -n 1)
    kill "$PJ" 2>/dev/null || true
    echo "    ($label) p2p: holepunched, at $JS_HOW; JavaScript: at $JS_AT; a line each way; $((SECONDS - T0))s"
  }
  S5=$SECONDS
  js_case "p2p dials" both --client js
  js_case "JavaScript dials" client --server p2p
  step "5. the JavaScript reference (hyperswarm) behind NAT a, p2p behind NAT b: holepunched both ways, $((SECONDS - S5))s"
fi

for f in "$T"/*.err; do
  if grep -q "Sanitizer\|runtime error" "$f"; then fail "$(basename "$f"): $(grep -m 3 "Sanitizer\|runtime error" "$f")"; fi
done
echo "nat test: passed in $((SECONDS - START)) s"
