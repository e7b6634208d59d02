#!/usr/bin/env bash
# Holepunching between two peers, each behind its own consistent NAT (one
# public port per socket, whoever it sends to), in network namespaces made
# here (nat_lib.sh: pub 10.77.0.0/24 with 3 DHT nodes on 10.77.0.1):
#   ra: NAT router 10.77.0.2 <-> 192.168.1.1      a: peer 192.168.1.2
#   rb: NAT router 10.77.0.3 <-> 192.168.2.1      b: peer 192.168.2.2
# Then:
#   1. `p2p swarm join TOPIC --json` in a and in b: both report a connection
#      to the other with "how": "holepunched", at the other's router;
#   2. --pipe (a serves, b dials): 4 MiB each way through the punched path,
#      sha256 equal both ways, both exit 0;
#   3. when node and tests/interop's packages are there: the JavaScript
#      reference (hyperswarm) in a, p2p in b, each dialling the other once.
# Random NATs: nat_random_test.sh. Needs root, ip, nft and python3; otherwise
# exits 77 saying why.
set -euo pipefail
# shellcheck source=nat_lib.sh
source "$(dirname "$0")/nat_lib.sh"

JOIN_BOUND=60   # s: both peers report the holepunched connection
PIPE_BOUND=60   # s: both --pipe ends exit
PIPE_MIB=4

NS_RA="p2pnat-ra-$S" NS_RB="p2pnat-rb-$S" NS_A="p2pnat-a-$S" NS_B="p2pnat-b-$S"
nat_router "$NS_RA" "$NS_A" 10.77.0.2 192.168.1 masquerade
nat_router "$NS_RB" "$NS_B" 10.77.0.3 192.168.2 masquerade
nat_bootstrap "$NS_A" "$NS_B"
run in_ns "$NS_A" "$P2P" dht ping 192.168.2.2:49737 --timeout 1
[ "$RC" != 0 ] || fail "a reached b's private address"
step "0. namespaces: NAT ra (10.77.0.2) before a 192.168.1.2, NAT rb (10.77.0.3) before b 192.168.2.2, 3 DHT nodes on 10.77.0.1 answer both"

# --- 1. swarm join: both connected, holepunched --------------------------------------------
new_home ha
new_home hb
TOPIC="nat test $S"
S1=$SECONDS
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
  if [ $((SECONDS - S1)) -ge "$JOIN_BOUND" ]; then
    tails "$T/a.out" "$T/a.err" "$T/b.out" "$T/b.err"
    fail "no holepunched connection on both sides within $JOIN_BOUND s (a: '${HA}', b: '${HB}')"
  fi
  sleep 0.5
done
# Each sees the other at its router's public address.
[[ "$HA" == 10.77.0.3:* ]] || fail "a's connection goes to $HA, not to b's NAT 10.77.0.3"
[[ "$HB" == 10.77.0.2:* ]] || fail "b's connection goes to $HB, not to a's NAT 10.77.0.2"
LOW=$(($(nat_counter "$NS_RA" low_ttl_probes) + $(nat_counter "$NS_RB" low_ttl_probes)))
PROBES=$(($(nat_counter "$NS_RA" probes) + $(nat_counter "$NS_RB" probes)))
[ "$LOW" -ge 1 ] || fail "no low-TTL (5) probe reached a router: the dialler's open session is missing"
[ "$PROBES" -ge 1 ] || fail "no punching probe reached a router"
step "1. swarm join: a connected to $HA, b to $HB, both holepunched, $((SECONDS - S1))s after joining ($LOW low-TTL and $PROBES other probes reached the routers)"
grep '"event":"connected"' "$T/a.out" | head -n 1 | sed 's/^/    a: /'
grep '"event":"connected"' "$T/b.out" | head -n 1 | sed 's/^/    b: /'
stop_rc "$PA" TERM 10
[ "$RC" = 0 ] || fail "peer a exited $RC on SIGTERM, expected 0"
stop_rc "$PB" TERM 10
[ "$RC" = 0 ] || fail "peer b exited $RC on SIGTERM, expected 0"

# --- 2. --pipe: bytes both ways through the punched path ---------------------------------
S2=$SECONDS
pipe_case "a serves" "$NS_A" "$T/ha" "$NS_B" "$T/hb" "$PIPE_MIB" "$PIPE_BOUND"
step "2. --pipe: $PIPE_MIB MiB each way, sha256 equal both ways, both exit 0, holepunched ($PIPE_HOW), $((SECONDS - S2))s"

# --- 3. the JavaScript reference behind the other NAT ---------------------------------------
if ! have_js; then
  step "3. skipped: no node or no tests/interop/node_modules (the JavaScript reference)"
else
  S3=$SECONDS
  js_case "p2p dials" "$NS_A" "$NS_B" "$T/hb" both --client js "$PIPE_BOUND"
  js_case "JavaScript dials" "$NS_A" "$NS_B" "$T/hb" client --server p2p "$PIPE_BOUND"
  step "3. the JavaScript reference (hyperswarm) behind NAT a, p2p behind NAT b: holepunched both ways, $((SECONDS - S3))s"
fi

sanitizer_check
echo "nat test: passed in $((SECONDS - START)) s"
