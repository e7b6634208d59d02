#!/usr/bin/env bash
# p2p swarm join on a private DHT of 5 nodes on 127.0.0.1 (never the public
# bootstrap nodes): --pipe carries 10 MiB each way between two homes; 20 peers
# on one topic all connect to each other, once per pair; a peer killed with
# SIGKILL and restarted with the same home is found again; usage errors and a
# bootstrap nobody answers; peers stop with exit 0 on SIGINT and SIGTERM.
set -euo pipefail
: "${P2P:?set P2P to the p2p binary}"
NODES=5
PEERS=20
PIPE_MIB=10
PIPE_BOUND=30      # s: both --pipe ends exit after the second one starts
MESH_BOUND=60      # s: every peer connected to every other (lookups repeat every 30 s)
REFOUND_BOUND=35   # s: a restarted peer is connected again

T=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
  } 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT
START=$SECONDS

# shellcheck source=strict_lib.sh
source "$(dirname "$0")/strict_lib.sh"
# wait_signals PID: until the process handles SIGINT and SIGTERM (SigCgt), at most 5 s.
wait_signals() {
  local i
  for i in $(seq 1 50); do
    [ -r "/proc/$1/status" ] || return 0
    (( (0x$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$1/status") & 0x4002) == 0x4002 )) && return 0
    sleep 0.1
  done
}
json() {  # json EXPR < one JSON line: print EXPR of the parsed object `j`
  python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); print(eval(sys.argv[1]))' "$1"
}
# new_home NAME: a home with a fresh identity; prints its public (signing) key in hex.
new_home() {
  run env P2P_HOME="$T/$1" "$P2P" --json id create
  [ "$RC" = 0 ] || fail "id create in home $1: exit $RC"
  local key
  key=$(json 'j["publicKey"]' < "$T/out")
  [[ "$key" =~ ^[0-9a-f]{64}$ ]] || fail "id create --json printed no publicKey: $(cat "$T/out")"
  echo "$key"
}
# tails FILE...: the last lines of each (for failure reports).
TAIL_LINES=8

# --- 1. a private DHT of 5 nodes ----------------------------------------------------
ping_ok() {  # ping_ok INDEX: the node answers a ping (a few tries)
  local i
  for i in 1 2 3 4 5; do
    run "$P2P" dht ping "${ADDR[$1]}" --timeout 2
    [ "$RC" = 0 ] && return 0
  done
  fail "node $1 (${ADDR[$1]}) does not answer a ping"
}
start_node 0
node_address 0
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "${ADDR[0]}"; done
for i in $(seq 1 $((NODES - 1))); do node_address "$i"; done
for i in $(seq 0 $((NODES - 1))); do ping_ok "$i"; done
P2P_BOOTSTRAP=$(IFS=,; echo "${ADDR[*]}")
export P2P_BOOTSTRAP
step "1. $NODES DHT nodes on 127.0.0.1, each answers a ping"

# --- 2. --pipe: 10 MiB each way -------------------------------------------------------
# One end serves and the other dials. (Two ends that both serve and dial can
# each keep a different one of the two connections their simultaneous dials
# make: a known race of the tie-break, see the closing note.)
KEY_P1=$(new_home p1)
KEY_P2=$(new_home p2)
LOOKER=$(new_home looker)  # looks topics up, never joins
head -c $((PIPE_MIB * 1024 * 1024)) /dev/urandom > "$T/p1.in"
head -c $((PIPE_MIB * 1024 * 1024)) /dev/urandom > "$T/p2.in"
PIPE_TOPIC="swarm test pipe"
S2=$SECONDS
# Started directly, not through a function: $! must be p2p itself.
P2P_HOME="$T/p1" "$P2P" swarm join "$PIPE_TOPIC" --pipe --server < "$T/p1.in" > "$T/p1.out" 2> "$T/p1.err" &
P1=$!
PIDS+=("$P1")
# The second end starts once the first one's announce can be found, so that
# its first lookup finds it (rather than the next one, 30 s later).
found=
while [ $((SECONDS - S2)) -lt 15 ]; do
  run env P2P_HOME="$T/looker" "$P2P" dht lookup "$PIPE_TOPIC" --timeout 5
  if [ "$RC" = 0 ] && grep -q "^$KEY_P1\b" "$T/out"; then found=1; break; fi
  kill -0 "$P1" 2>/dev/null || { tails "$T/p1.err"; fail "the first --pipe end exited before announcing"; }
  sleep 0.5
done
[ -n "$found" ] || { tails "$T/p1.err"; fail "the first --pipe end's key $KEY_P1 is not found on '$PIPE_TOPIC' within 15 s"; }
ANNOUNCED_AFTER=$((SECONDS - S2))
: > "$T/out"; : > "$T/err"  # (the lookup's output is of no use in later failure reports)
S2B=$SECONDS
P2P_HOME="$T/p2" "$P2P" swarm join "$PIPE_TOPIC" --pipe --client < "$T/p2.in" > "$T/p2.out" 2> "$T/p2.err" &
P2=$!
PIDS+=("$P2")
for _ in $(seq 1 $((PIPE_BOUND * 10))); do
  kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null; then
  echo "  after $PIPE_BOUND s: end 1 received $(stat -c %s "$T/p1.out") bytes, end 2 $(stat -c %s "$T/p2.out") bytes"
  for p in "$P1" "$P2"; do  # how far each end has read its stdin
    [ -r "/proc/$p/fdinfo/0" ] && echo "  end $([ "$p" = "$P1" ] && echo 1 || echo 2) has read $(sed -n 's/^pos:[[:space:]]*//p' "/proc/$p/fdinfo/0") bytes of its stdin"
  done
  tails "$T/p1.err" "$T/p2.err"
  fail "--pipe: both ends have not exited $PIPE_BOUND s after the second one started (end 1 running: $(kill -0 "$P1" 2>/dev/null && echo yes || echo no), end 2: $(kill -0 "$P2" 2>/dev/null && echo yes || echo no))"
fi
PIPE_SECONDS=$((SECONDS - S2B))
RC1=0; wait "$P1" || RC1=$?
RC2=0; wait "$P2" || RC2=$?
[ "$RC1" = 0 ] && [ "$RC2" = 0 ] || { tails "$T/p1.err" "$T/p2.err"; fail "--pipe ends exited $RC1 and $RC2, expected 0 and 0"; }
SUM_IN1=$(sha256sum < "$T/p1.in" | cut -d' ' -f1)
SUM_IN2=$(sha256sum < "$T/p2.in" | cut -d' ' -f1)
[ "$(sha256sum < "$T/p2.out" | cut -d' ' -f1)" = "$SUM_IN1" ] ||
  fail "end 2 received $(stat -c %s "$T/p2.out") bytes that are not end 1's $PIPE_MIB MiB"
[ "$(sha256sum < "$T/p1.out" | cut -d' ' -f1)" = "$SUM_IN2" ] ||
  fail "end 1 received $(stat -c %s "$T/p1.out") bytes that are not end 2's $PIPE_MIB MiB"
grep -q "connected ${KEY_P2:0:16}" "$T/p1.err" || fail "end 1 does not report the connection to ${KEY_P2:0:16}: $(cat "$T/p1.err")"
grep -q "connected ${KEY_P1:0:16}" "$T/p2.err" || fail "end 2 does not report the connection to ${KEY_P1:0:16}: $(cat "$T/p2.err")"
step "2. --pipe: $PIPE_MIB MiB each way, sha256 equal both ways, both exit 0 ${PIPE_SECONDS}s after the second end started (first end found after ${ANNOUNCED_AFTER}s)"

# --- 3. 20 peers on one topic: a full mesh, one connection per pair ----------------------
cat > "$T/mesh.py" <<'PY'
# mesh.py KEYS EVENTS_DIR: read every peer's --json events and
# check them. Exit 0: every peer has one live connection to each other peer;
# 1: not yet (a summary on stdout); 2: something is wrong (on stdout).
import json, re, sys
keys = [l.split() for l in open(sys.argv[1]) if l.strip()]
index = {k: int(i) for i, k in keys}
bad, missing, disconnects, events = [], 0, 0, 0
live, history = {}, {}
for i, me in keys:
    counts = {}
    try:
        lines = open(f"{sys.argv[2]}/s{i}.out").read().split("\n")
    except FileNotFoundError:
        lines = []
    if lines and lines[-1] != "":
        lines = lines[:-1]  # a line being written
    for n, line in enumerate(l for l in lines if l):
        where = f"peer {i} line {n + 1}"
        try:
            j = json.loads(line)
        except ValueError:
            bad.append(f"{where}: not JSON: {line[:200]}")
            continue
        if set(j) - {"reason"} != {"event", "publicKey", "address", "how", "initiator"}:
            bad.append(f"{where}: fields {sorted(j)}")
            continue
        if j["event"] not in ("connected", "disconnected") or j["how"] not in ("direct", "relayed") \
                or not isinstance(j["initiator"], bool) or not re.fullmatch(r"127\.0\.0\.1:[1-9][0-9]*", j["address"]):
            bad.append(f"{where}: {line[:200]}")
            continue
        k = j["publicKey"]
        history.setdefault((int(i), index.get(k)), []).append(line)
        if k == me:
            bad.append(f"{where}: a connection to itself")
        elif k not in index:
            bad.append(f"{where}: a key that is not one of the peers: {k}")
        events += 1
        c = counts.setdefault(k, 0) + (1 if j["event"] == "connected" else -1)
        counts[k] = c
        if j["event"] == "disconnected":
            disconnects += 1
        if c > 1:
            bad.append(f"{where}: two live connections to peer {index.get(k)} ({k[:16]})")
        if c < 0:
            bad.append(f"{where}: disconnected from peer {index.get(k)} ({k[:16]}) without a connection")
        if c == 1:
            live[(int(i), index.get(k))] = j["initiator"]
        else:
            live.pop((int(i), index.get(k)), None)
    missing += sum(1 for other, k in keys if other != i and counts.get(k, 0) != 1)
if bad:
    print("\n".join(bad[:10]))
    sys.exit(2)
print(f"{missing} of {len(keys) * (len(keys) - 1)} peer-to-peer connections missing; {events} events, {disconnects} disconnections")
if missing:
    sys.exit(1)
# Both ends of a pair agree on who dialled: one connection, not two half ones.
for (a, b), initiator in live.items():
    if live.get((b, a)) == initiator:
        print(f"peers {a} and {b} both say they {'dialled' if initiator else 'accepted'}: two half connections, not one")
        for x, y in ((a, b), (b, a)):
            print(f"  peer {x}'s events for peer {y}:")
            for line in history[(x, y)]:
                print(f"    {line}")
        sys.exit(2)
sys.exit(0)
PY
: > "$T/keys"
for i in $(seq 0 $((PEERS - 1))); do
  KEY[$i]=$(new_home "s$i")
  echo "$i ${KEY[$i]}" >> "$T/keys"
done
[ "$(cut -d' ' -f2 "$T/keys" | sort -u | wc -l)" = "$PEERS" ] || fail "the $PEERS homes do not have $PEERS distinct keys"
MESH_TOPIC="swarm test mesh"
declare -a PEER_PID
start_peer() {  # start_peer INDEX [SUFFIX]: a --json peer on the mesh topic
  P2P_HOME="$T/s$1" "$P2P" --json swarm join "$MESH_TOPIC" > "$T/s$1${2:-}.out" 2> "$T/s$1${2:-}.err" &
  PEER_PID[$1]=$!
  PIDS+=("$!")
}
S3=$SECONDS
: > "$T/mesh.progress"
MARK=5
for i in $(seq 0 $((PEERS - 1))); do start_peer "$i"; done
MESH_RC=1
while :; do
  MESH_RC=0
  python3 "$T/mesh.py" "$T/keys" "$T" > "$T/mesh" || MESH_RC=$?
  [ "$MESH_RC" = 1 ] || break
  if [ $((SECONDS - S3)) -ge "$MARK" ]; then
    printf '%ss: %s; ' $((SECONDS - S3)) "$(cut -d' ' -f1 "$T/mesh")" >> "$T/mesh.progress"
    MARK=$((MARK + 5))
  fi
  for i in $(seq 0 $((PEERS - 1))); do
    kill -0 "${PEER_PID[$i]}" 2>/dev/null || { tails "$T/s$i.out" "$T/s$i.err"; fail "peer $i exited"; }
  done
  [ $((SECONDS - S3)) -lt "$MESH_BOUND" ] || break
  sleep 1
done
MESH_SECONDS=$((SECONDS - S3))
if [ "$MESH_RC" != 0 ]; then
  echo "  missing connections over time: $(cat "$T/mesh.progress")"
  python3 - "$T/keys" "$T" <<'PY'
import json, sys
keys = [l.split() for l in open(sys.argv[1]) if l.strip()]
index = {k: int(i) for i, k in keys}
last = {}  # (me, other) -> the last connected event while live
for i, me in keys:
    counts = {}
    for line in open(f"{sys.argv[2]}/s{i}.out"):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        k = j["publicKey"]
        counts[k] = counts.get(k, 0) + (1 if j["event"] == "connected" else -1)
        if j["event"] == "connected" and counts[k] == 1:
            last[(int(i), index.get(k))] = j
        elif counts[k] != 1:
            last.pop((int(i), index.get(k)), None)
    have = [o for o, k in keys if o != i and counts.get(k, 0) == 1]
    print(f"  peer {i:>2}: connected to {len(have):>2} of {len(keys) - 1}")
n = len(keys)
one_sided = [(a, b) for (a, b) in last if (b, a) not in last]
neither = [(a, b) for a in range(n) for b in range(a + 1, n) if (a, b) not in last and (b, a) not in last]
print(f"  pairs connected on one side only: {len(one_sided)}; on neither side: {len(neither)}")
for a, b in one_sided[:8]:
    j = last[(a, b)]
    print(f"    peer {a} has peer {b} ({j['how']}, {'dialled' if j['initiator'] else 'accepted'}); peer {b} does not have peer {a}")
for a, b in neither[:8]:
    print(f"    peers {a} and {b}: no connection either side")
PY
  for i in $(seq 0 $((PEERS - 1))); do
    if [ -s "$T/s$i.err" ]; then tails "$T/s$i.err"; fi
  done
  [ "$MESH_RC" = 2 ] && fail "peer events after ${MESH_SECONDS}s:
$(cat "$T/mesh")"
  fail "no full mesh $MESH_BOUND s after $PEERS peers joined: $(cat "$T/mesh")"
fi
step "3. $PEERS peers: each connected once to each of the other $((PEERS - 1)) within ${MESH_SECONDS}s ($(cat "$T/mesh" | sed 's/.*; //'))"

# --- 4. a peer killed and restarted is found again ------------------------------------------
VICTIM=7
for i in $(seq 0 $((PEERS - 1))); do LINES_BEFORE[$i]=$(wc -l < "$T/s$i.out"); done
{
  kill -9 "${PEER_PID[$VICTIM]}"
  wait "${PEER_PID[$VICTIM]}" || true
} 2> /dev/null
S4=$SECONDS
start_peer "$VICTIM" .restarted
# refound: how many other peers logged a new `connected` for the victim's key.
refound() {
  local i n=0
  for i in $(seq 0 $((PEERS - 1))); do
    [ "$i" = "$VICTIM" ] && continue
    if tail -n +$((LINES_BEFORE[$i] + 1)) "$T/s$i.out" | grep '"event":"connected"' | grep -q "\"publicKey\":\"${KEY[$VICTIM]}\""; then
      n=$((n + 1))
    fi
  done
  echo "$n"
}
while [ "$(refound)" = 0 ] && [ $((SECONDS - S4)) -lt "$REFOUND_BOUND" ]; do
  kill -0 "${PEER_PID[$VICTIM]}" 2>/dev/null || { tails "$T/s$VICTIM.restarted.err"; fail "the restarted peer exited"; }
  sleep 0.5
done
REFOUND_SECONDS=$((SECONDS - S4))
N=$(refound)
if [ "$N" = 0 ]; then
  echo "  the restarted peer's own events: $(grep -c '"event":"connected"' "$T/s$VICTIM.restarted.out" || true) connected, $(grep -c '"event":"disconnected"' "$T/s$VICTIM.restarted.out" || true) disconnected"
  tails "$T/s$VICTIM.restarted.out" "$T/s$VICTIM.restarted.err" "$T/s0.out"
  fail "no peer logged a new connection to the restarted peer $VICTIM (${KEY[$VICTIM]:0:16}) within $REFOUND_BOUND s"
fi
sleep 2  # the others' reconnections that were under way, for the count below
step "4. peer $VICTIM killed (SIGKILL) and restarted with its home: found again after ${REFOUND_SECONDS}s ($(refound) of $((PEERS - 1)) peers logged a new connection within $((SECONDS - S4))s)"

# --- 5. usage errors, a bootstrap nobody answers ----------------------------------------
expect_rc 2 "swarm join without a topic" env P2P_HOME="$T/looker" "$P2P" swarm join
expect_rc 2 "swarm without a subcommand" env P2P_HOME="$T/looker" "$P2P" swarm
expect_rc 1 "a bootstrap nobody answers" timeout 15 env P2P_HOME="$T/looker" "$P2P" --bootstrap 127.0.0.1:9 swarm join "swarm test nobody" --timeout 2
[ "$(wc -l < "$T/err")" -le 2 ] && [ -s "$T/err" ] || fail "a bootstrap nobody answers: expected a short message on stderr"
grep -qi "DHT" "$T/err" || fail "a bootstrap nobody answers: the message does not say the DHT could not be joined"
[ -s "$T/out" ] && fail "a bootstrap nobody answers: something on stdout"
MESSAGE=$(head -n 1 "$T/err")
step "5. usage errors exit 2; a bootstrap nobody answers exits 1: $MESSAGE"

# --- the end: sanitizers, SIGINT and SIGTERM ---------------------------------------------
for f in "$T"/*.err; do
  if grep -q "Sanitizer\|runtime error" "$f"; then fail "$(basename "$f"): $(grep -m 3 "Sanitizer\|runtime error" "$f")"; fi
done
wait_signals "${PEER_PID[0]}"
stop_rc "${PEER_PID[0]}" INT 10
[ "$RC" = 0 ] || fail "peer 0 exited $RC on SIGINT, expected 0"
wait_signals "${PEER_PID[1]}"
stop_rc "${PEER_PID[1]}" TERM 10
[ "$RC" = 0 ] || fail "peer 1 exited $RC on SIGTERM, expected 0"
step "peers stop with exit 0 on SIGINT and SIGTERM"
echo "swarm test: passed in $((SECONDS - START)) s"
