#!/usr/bin/env bash
# Holepunching a random NAT (a new public port for every destination), in
# network namespaces made here (nat_lib.sh: pub 10.77.0.0/24 with 3 DHT
# nodes on 10.77.0.1):
#   rc: random NAT router 10.77.0.4 <-> 192.168.3.1      c: peer 192.168.3.2
#   rb: consistent NAT    10.77.0.3 <-> 192.168.2.1      b: peer 192.168.2.2
# The consistent side sprays probes at random ports of the random side's
# host; the random side opens 256 sockets towards it and the one that gets
# through carries the stream. Then:
#   1. --pipe, c serves and b dials: 2 MiB each way, sha256 equal, holepunched;
#   2. the same with b serving and c dialling;
#   3. when node and tests/interop's packages are there, against the
#      JavaScript reference (hyperswarm): JavaScript in c (random) dials p2p
#      in b, then p2p in c dials JavaScript in b; each side takes the other
#      strategy once;
#   4. two random NATs cannot be punched (c, and d behind rd 10.77.0.5):
#      `p2p relay` on pub relays between them, both naming it with
#      --relay-through: 2 MiB each way, "how": "blind-relay";
#   5. with the JavaScript reference: two JavaScript peers that name the
#      relay as relayThrough, then JavaScript and p2p either way round.
# Needs root, ip, nft and python3; otherwise exits 77 saying why.
set -euo pipefail
# shellcheck source=nat_lib.sh
source "$(dirname "$0")/nat_lib.sh"

BOUND=75   # s: a random punch tries for about 35 s, after up to 30 s of finding the peer
PIPE_MIB=2

NS_RC="p2pnat-rc-$S" NS_RB="p2pnat-rb-$S" NS_C="p2pnat-c-$S" NS_B="p2pnat-b-$S"
NS_RD="p2pnat-rd-$S" NS_D="p2pnat-d-$S"
nat_router "$NS_RC" "$NS_C" 10.77.0.4 192.168.3 "masquerade random"
nat_router "$NS_RB" "$NS_B" 10.77.0.3 192.168.2 masquerade
nat_router "$NS_RD" "$NS_D" 10.77.0.5 192.168.4 "masquerade random"
nat_bootstrap "$NS_C" "$NS_B" "$NS_D"
step "0. namespaces: random NAT rc (10.77.0.4) before c, consistent NAT rb (10.77.0.3) before b"
new_home hc
new_home hb
# Both strategies leave their marks at the routers: the spray at random ports
# of 10.77.0.4 arrives at rc (TTL 63; how many until one hits a socket's
# port varies, a few hundred on average), the birthday sockets' first
# low-TTL probes (256 of them) at rb (TTL 4).
strategies() {  # strategies BEFORE_SPRAY BEFORE_BIRTHDAY: what reached the routers since
  SPRAY=$(($(nat_counter "$NS_RC" probes) - $1))
  BIRTHDAY=$(($(nat_counter "$NS_RB" low_ttl_probes) - $2))
  [ "$SPRAY" -ge 1 ] || fail "no probe reached the random NAT: b did not spray its ports"
  [ "$BIRTHDAY" -ge 200 ] || fail "only $BIRTHDAY low-TTL probes reached b's NAT: c did not open its birthday sockets"
}

# random_case STEP LABEL SERVER_NS SERVER_HOME CLIENT_NS CLIENT_HOME SIDE: a
# --pipe case through the random NAT; SIDE (server or client) is the one
# whose view must show c's NAT 10.77.0.4.
random_case() {
  local t0=$SECONDS c0 b0
  c0=$(nat_counter "$NS_RC" probes) b0=$(nat_counter "$NS_RB" low_ttl_probes)
  pipe_case "$2" "$3" "$4" "$5" "$6" "$PIPE_MIB" "$BOUND"
  [[ "$PIPE_HOW" == *"$7: 10.77.0.4:"* ]] || fail "$1. the $7's connection is not with c's NAT 10.77.0.4 ($PIPE_HOW)"
  strategies "$c0" "$b0"
  step "$1. $2: $PIPE_MIB MiB each way, sha256 equal, both exit 0, holepunched ($PIPE_HOW; $SPRAY sprayed and $BIRTHDAY birthday probes reached the routers), $((SECONDS - t0))s"
}
random_case 1 "c (random NAT) serves, b dials" "$NS_C" "$T/hc" "$NS_B" "$T/hb" client
random_case 2 "b serves, c (random NAT) dials" "$NS_B" "$T/hb" "$NS_C" "$T/hc" server

if ! have_js; then
  step "3. skipped: no node or no tests/interop/node_modules (the JavaScript reference)"
else
  S3=$SECONDS
  C0=$(nat_counter "$NS_RC" probes) B0=$(nat_counter "$NS_RB" low_ttl_probes)
  js_case "JavaScript behind the random NAT dials" "$NS_C" "$NS_B" "$T/hb" client --server p2p "$BOUND"
  strategies "$C0" "$B0"
  C0=$(nat_counter "$NS_RC" probes) B0=$(nat_counter "$NS_RB" low_ttl_probes)
  js_case "p2p behind the random NAT dials" "$NS_B" "$NS_C" "$T/hc" server --client js "$BOUND"
  strategies "$C0" "$B0"
  step "3. the JavaScript reference (hyperswarm): holepunched with a random NAT on either side, $((SECONDS - S3))s"
fi

# --- 4. two random NATs: a blind relay between them ------------------------------------------
S4=$SECONDS
new_home hr
new_home hd
ip netns exec "$NS_PUB" env P2P_HOME="$T/hr" "$P2P" --bootstrap "$BOOT" --json relay > "$T/relay.out" 2> "$T/relay.err" &
PR=$!
PIDS+=("$PR")
for _ in $(seq 1 300); do grep -q '"listening"' "$T/relay.out" 2>/dev/null && break; sleep 0.1; done
RELAY=$(sed -n 's/.*"event":"listening".*"publicKey":"\([0-9a-f]*\)".*/\1/p' "$T/relay.out" | head -n 1)
[ -n "$RELAY" ] || { tails "$T/relay.out" "$T/relay.err"; fail "4. p2p relay did not say its key"; }
sleep 1  # its announce settles
paired() { grep -c '"event":"paired"' "$T/relay.out" || true; }
RELAY=$RELAY EXPECT_HOW=blind-relay pipe_case "relayed" "$NS_C" "$T/hc" "$NS_D" "$T/hd" "$PIPE_MIB" "$BOUND"
[ "$(paired)" -ge 1 ] || { tails "$T/relay.out"; fail "4. the relay paired nobody"; }
[[ "$PIPE_HOW" == "server: 10.77.0.1:"*"client: 10.77.0.1:"* ]] || fail "4. the streams do not go to the relay on 10.77.0.1 ($PIPE_HOW)"
step "4. c and d behind random NATs, through p2p relay on 10.77.0.1: $PIPE_MIB MiB each way, sha256 equal, both exit 0 ($PIPE_HOW), $((SECONDS - S4))s"

# --- 5. the same with the JavaScript reference --------------------------------------------------
if ! have_js; then
  step "5. skipped: no node or no tests/interop/node_modules (the JavaScript reference)"
else
  S5=$SECONDS
  P0=$(paired)
  # Two JavaScript peers: the one in d ends after the first line.
  topic=$(printf 'nat test relay %s' "$S" | sha256sum | cut -c1-64)
  ip netns exec "$NS_C" node "$JS_PEER" "$MODULES" "$BOOT" "$topic" "$(printf 'relay c %s' "$S" | sha256sum | cut -c1-64)" server "$RELAY" \
    < /dev/null > "$T/jc.out" 2> "$T/jc.err" &
  PJC=$!
  PIDS+=("$PJC")
  sleep 2
  ip netns exec "$NS_D" node "$JS_PEER" "$MODULES" "$BOOT" "$topic" "$(printf 'relay d %s' "$S" | sha256sum | cut -c1-64)" client "$RELAY" end \
    < /dev/null > "$T/jd.out" 2> "$T/jd.err" &
  PJD=$!
  PIDS+=("$PJD")
  for _ in $(seq 1 $((BOUND * 10))); do
    kill -0 "$PJD" 2>/dev/null || kill -0 "$PJC" 2>/dev/null || break
    sleep 0.1
  done
  RC1=0; wait "$PJC" || RC1=$?
  RC2=0; wait "$PJD" || RC2=$?
  [ "$RC1" = 0 ] && [ "$RC2" = 0 ] || { tails "$T/jc.out" "$T/jc.err" "$T/jd.out" "$T/jd.err" "$T/relay.out" "$T/relay.err"; fail "5. the JavaScript peers exited $RC1 and $RC2, expected 0 and 0"; }
  grep -q '"text":"hello from javascript\\n"' "$T/jc.out" && grep -q '"text":"hello from javascript\\n"' "$T/jd.out" ||
    { tails "$T/jc.out" "$T/jd.out"; fail "5. the JavaScript peers did not each get the other's line"; }
  JC_AT=$(sed -n 's/.*"event":"connected".*"address":"\([^"]*\)".*/\1/p' "$T/jc.out" | head -n 1)
  JD_AT=$(sed -n 's/.*"event":"connected".*"address":"\([^"]*\)".*/\1/p' "$T/jd.out" | head -n 1)
  [[ "$JC_AT" == 10.77.0.1:* && "$JD_AT" == 10.77.0.1:* ]] || fail "5. the peers' streams go to $JC_AT and $JD_AT, not to the relay on 10.77.0.1"
  echo "    (two JavaScript peers) at $JC_AT and $JD_AT; a line each way"
  RELAY=$RELAY EXPECT_HOW=blind-relay js_case "JavaScript serves behind one random NAT, p2p dials from the other" "$NS_C" "$NS_D" "$T/hd" server --client js "$BOUND"
  RELAY=$RELAY EXPECT_HOW=blind-relay js_case "p2p serves behind one random NAT, JavaScript dials from the other" "$NS_C" "$NS_D" "$T/hd" client --server p2p "$BOUND"
  PAIRED=$(($(paired) - P0))
  [ "$PAIRED" -ge 3 ] || { tails "$T/relay.out"; fail "5. the relay paired $PAIRED times, expected at least 3"; }
  step "5. through p2p relay with the JavaScript reference: two JavaScript peers, then JavaScript and p2p either way round, a line each way ($PAIRED pairings), $((SECONDS - S5))s"
fi
stop_rc "$PR" TERM 10
[ "$RC" = 0 ] || fail "p2p relay exited $RC on SIGTERM, expected 0"

sanitizer_check
echo "nat random test: passed in $((SECONDS - START)) s"
