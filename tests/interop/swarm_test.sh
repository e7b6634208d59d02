#!/usr/bin/env bash
# Swarm interop: `p2p swarm join` and the JavaScript reference (hyperswarm
# 4.17.2 on hyperdht 6.34.0, pinned in package.json) on one topic, in a
# HyperDHT testnet of 4 JavaScript nodes on 127.0.0.1 (swarm-peer.mjs).
#
#   (a)  JavaScript joins as server and client first, then p2p swarm join
#        --pipe (both): p2p dials; 1 MiB of random bytes each way, equal
#        checksums both ways, both exit 0
#   (a2) the same with p2p joining first: the JavaScript peer dials
#   (b)  p2p --server --pipe, JavaScript client only (it dials p2p)
#   (c)  JavaScript server only, p2p --client --pipe (p2p dials)
#   (e)  as (a), with p2p ending its side last (in (a)-(c) p2p, quicker to
#        send, ends first, and the JavaScript peer ends once everything it
#        wrote is acknowledged: see swarm-peer.mjs)
#   (f)  with SWARM_INTEROP_SIMULTANEOUS=1: both dial at once (the JavaScript
#        peer also dials p2p's key), once with the JavaScript key above p2p's
#        (f1: Hyperswarm keeps the JavaScript dial), once below (f2)
#   (d)  p2p --json swarm join (no pipe) reports a "connected" event with the
#        JavaScript peer's publicKey (and the JavaScript peer sees p2p's key),
#        then "disconnected" when the JavaScript peer leaves, and stops on
#        SIGINT
# Whoever joins second finds the first by a lookup when it joins; p2p going
# first is awaited until a JavaScript lookup finds its announce. Nothing
# talks to the public bootstrap nodes: p2p gets --bootstrap, and
# P2P_BOOTSTRAP is set for the rest.
#
# Environment: P2P (the p2p binary).
# Exit: 0 pass, 1 failure, 77 skipped (no node/npm/python3, or the pinned
# packages cannot be installed).
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P2P="${P2P:?set P2P to the p2p binary}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"

if [ ! -d "$HERE/node_modules/hyperswarm" ] || [ ! -d "$HERE/node_modules/hyperdht" ]; then
    echo "installing the pinned JavaScript reference into $HERE/node_modules"
    # npm ci needs a lock file that lists hyperswarm; without one, install
    # without rewriting package.json or the lock file.
    if grep -q '"node_modules/hyperswarm"' "$HERE/package-lock.json" 2>/dev/null; then
        install=(ci)
    else
        install=(install --no-save)
    fi
    if ! install_log="$(cd "$HERE" && timeout 300 npm "${install[@]}" --no-audit --no-fund 2>&1)"; then
        echo "$install_log" | tail -n 20
        skip "npm ${install[*]} failed (no network or registry?)"
    fi
fi
versions="$(cd "$HERE" && node -e '
  const v = (p) => require("./node_modules/" + p + "/package.json").version
  console.log("hyperswarm " + v("hyperswarm") + ", hyperdht " + v("hyperdht") + ", udx-native " + v("udx-native"))')" ||
    fail "cannot read the installed reference versions"
echo "reference: $versions"

for _ in 1 2 3 4 5 6 7 8 9 10; do [ -x "$P2P" ] && break; sleep 1; done
[ -x "$P2P" ] || fail "p2p binary not found or not executable: $P2P"
"$P2P" swarm join --help >/dev/null 2>&1 || fail "'p2p swarm join --help' failed: this p2p has no swarm command"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2p-swarm-interop.XXXXXX")" || fail "mktemp failed"
PIDS=()
cleanup() {
    local p i alive
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    # Bounded: 5 s to stop, then SIGKILL (each runs under timeout(1), in its
    # own process group unless started with --foreground).
    for i in $(seq 1 50); do
        alive=
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && { kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; }
    done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

export P2P_HOME="$WORK/home"        # no command touches the user's home
export SWARM_PEER_TIMEOUT=60        # bound of swarm-peer.mjs pipe
export SWARM_PEER_LIFETIME=290      # and of its serving modes
export DHT_PEER_TIMEOUT=30          # bound of dht-peer.mjs lookup

json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }
random_hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; echo; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }
since() { python3 -c 'import sys,time; print("%.1f" % (time.time() - float(sys.argv[1])))' "$1"; }
# wait_grep FILE PATTERN SECONDS: until FILE has a line matching PATTERN
wait_grep() {
    local _
    for _ in $(seq 1 $(($3 * 10))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# wait_gone PID SECONDS: until PID has exited; then its status in $STATUS
wait_gone() {
    local _
    for _ in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && return 1
    wait "$1"
    STATUS=$?
    return 0
}
# logs NAME...: the standard error of each side, for a failure message
logs() {
    local n
    for n in "$@"; do
        echo "----- standard error of $n -----" >&2
        cat "$WORK/$n.err" >&2 2>/dev/null
    done
    echo "-----" >&2
}

echo "A JavaScript testnet of 4 nodes"
mkfifo "$WORK/testnet.in"
(cd "$HERE" && exec timeout 290 node swarm-peer.mjs testnet 4 <"$WORK/testnet.in" >"$WORK/testnet.out" 2>"$WORK/testnet.err") &
PIDS+=($!)
TESTNET_PID=$!
exec {TESTNET_FD}>"$WORK/testnet.in"
wait_grep "$WORK/testnet.out" bootstrap 30 || { logs testnet; fail "the JavaScript testnet did not start within 30 s"; }
BS="$(json_field bootstrap <"$WORK/testnet.out")"
[[ "$BS" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "the JavaScript testnet printed bootstrap '$BS'"
export P2P_BOOTSTRAP="$BS"
echo "  nodes: $(python3 -c 'import json,sys; print(" ".join(json.loads(sys.stdin.readline())["nodes"]))' <"$WORK/testnet.out")"

"$P2P" --home "$WORK/p2p" -q id create >/dev/null 2>"$WORK/id.err" || { cat "$WORK/id.err" >&2; fail "p2p id create failed"; }
P2P_PK="$("$P2P" --home "$WORK/p2p" --json id show | json_field publicKey)"
[[ "$P2P_PK" =~ ^[0-9a-f]{64}$ ]] || fail "p2p --json id show printed publicKey '$P2P_PK'"
echo "  p2p's key: $P2P_PK"

head -c 1048576 /dev/urandom >"$WORK/to-p2p.bin"
head -c 1048576 /dev/urandom >"$WORK/to-js.bin"
SUM_TO_P2P="$(sha "$WORK/to-p2p.bin")"
SUM_TO_JS="$(sha "$WORK/to-js.bin")"

# start_js NAME MODE TOPIC SEED JSMODE [STDIN]: swarm-peer.mjs in the
# background, its pid in ${NAME}_PID
start_js() {
    local name="$1" mode="$2" topic="$3" seed="$4" jsmode="$5" in="${6:-/dev/null}"
    (cd "$HERE" && SWARM_PEER_DIAL="${JS_DIAL:-}" exec timeout 90 node swarm-peer.mjs "$mode" "$BS" "$topic" "$seed" "$jsmode" \
        <"$in" >"$WORK/$name.out" 2>"$WORK/$name.err") &
    PIDS+=($!)
    eval "${name}_PID=$!"
}
# js_key NAME: the key JavaScript NAME prints first, in ${NAME}_PK
js_key() {
    local pk
    wait_grep "$WORK/$1.err" '^swarm-peer.*publicKey [0-9a-f]{64}' 10 || { logs "$1"; fail "JavaScript $1 printed no public key"; }
    pk="$(sed -nE 's/^swarm-peer.*publicKey ([0-9a-f]{64})$/\1/p' "$WORK/$1.err" | head -n 1)"
    eval "${1}_PK=$pk"
}
# start_p2p NAME STDIN ARGS...: p2p in the background; its pid in ${NAME}_PID
start_p2p() {
    local name="$1" in="$2"; shift 2
    timeout 90 "$P2P" --home "$WORK/p2p" "$@" --bootstrap "$BS" <"$in" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    eval "${name}_PID=$!"
}
# js_finds_p2p TOPIC: a JavaScript lookup of TOPIC lists p2p's key
js_finds_p2p() {
    (cd "$HERE" && timeout 40 node dht-peer.mjs lookup "$BS" "$1" </dev/null 2>"$WORK/lookup.err") |
        grep -qF "\"publicKey\":\"$P2P_PK\""
}

# js_seed_with_key_above|below: a seed whose Hyperswarm key is above (below)
# p2p's key, the larger key being the one Hyperswarm expects to dial
js_seed_with_key() {
    (cd "$HERE" && node -e '
      const DHT = require("hyperdht"), crypto = require("crypto")
      const [rel, p2p] = process.argv.slice(1)
      for (;;) {
        const seed = crypto.randomBytes(32)
        const pk = DHT.keyPair(seed).publicKey.toString("hex")
        if ((pk > p2p) === (rel === "above")) { console.log(seed.toString("hex")); break }
      }' "$1" "$P2P_PK")
}

# pipe_case LABEL FIRST JSMODE P2P-FLAGS...: a JavaScript pipe peer (JSMODE)
# and p2p swarm join --pipe, FIRST (js or p2p) joining first; 1 MiB each way.
# With P2P_ENDS_LAST=1, p2p's stdin stays open until the JavaScript peer has
# ended its side (else p2p, quicker to send, usually ends first).
pipe_case() {
    local label="$1" first="$2" jsmode="$3"; shift 3
    local topic seed t0 js_status p2p_status got p2p_in="$WORK/to-js.bin"
    topic="$(random_hex)"
    seed="${JS_SEED:-$(random_hex)}"
    local js="js_$label" p2p="p2p_$label"
    echo "($label) JavaScript as $jsmode, p2p swarm join --pipe ${*:-(server and client)}; $first joins first${P2P_ENDS_LAST:+; p2p ends its side last}"
    t0="$(now)"
    if [ -n "${P2P_ENDS_LAST:-}" ]; then
        p2p_in="$WORK/$p2p.in"
        mkfifo "$p2p_in"
        (cat "$WORK/to-js.bin"; wait_grep "$WORK/$js.err" '^swarm-peer.*ending our side' 75) >"$p2p_in" &
        PIDS+=($!)
    fi
    if [ "$first" = js ]; then
        start_js "$js" pipe "$topic" "$seed" "$jsmode" "$WORK/to-p2p.bin"
        wait_grep "$WORK/$js.err" '^swarm-peer.*joined:' 15 || { logs "$js"; fail "($label) the JavaScript peer did not finish joining within 15 s"; }
        start_p2p "$p2p" "$p2p_in" swarm join "$topic" --pipe "$@"
    else
        start_p2p "$p2p" "$p2p_in" swarm join "$topic" --pipe "$@"
        local ok= _
        for _ in $(seq 1 20); do
            js_finds_p2p "$topic" && { ok=1; break; }
            kill -0 "$(eval echo "\$${p2p}_PID")" 2>/dev/null || break
            sleep 0.5
        done
        [ -n "$ok" ] || { logs "$p2p" lookup; fail "($label) a JavaScript lookup never found p2p's announce of the topic"; }
        start_js "$js" pipe "$topic" "$seed" "$jsmode" "$WORK/to-p2p.bin"
    fi
    wait_gone "$(eval echo "\$${js}_PID")" 75 || { logs "$js" "$p2p"; fail "($label) the JavaScript peer did not exit within 75 s"; }
    js_status=$STATUS
    wait_gone "$(eval echo "\$${p2p}_PID")" 15 ||
        { logs "$js" "$p2p"; fail "($label) p2p swarm join --pipe did not exit within 15 s of the JavaScript peer"; }
    p2p_status=$STATUS
    if [ "$js_status" != 0 ] || [ "$p2p_status" != 0 ]; then
        logs "$js" "$p2p"
        fail "($label) exit status: JavaScript $js_status, p2p $p2p_status (expected 0 and 0; 3 = JavaScript watchdog, 124 = p2p killed by timeout)"
    fi
    got="$(sha "$WORK/$p2p.out")"
    [ "$got" = "$SUM_TO_P2P" ] ||
        { logs "$js" "$p2p"; fail "($label) JavaScript -> p2p: p2p's output ($(stat -c %s "$WORK/$p2p.out") bytes) differs from what JavaScript sent (1048576 bytes)"; }
    got="$(sha "$WORK/$js.out")"
    [ "$got" = "$SUM_TO_JS" ] ||
        { logs "$js" "$p2p"; fail "($label) p2p -> JavaScript: JavaScript's output ($(stat -c %s "$WORK/$js.out") bytes) differs from what p2p sent (1048576 bytes)"; }
    local how last=p2p
    how="$(sed -nE 's/^swarm-peer.*: connected [0-9a-f]{16} (dialled|accepted).*/\1/p' "$WORK/$js.err" | head -n 1)"
    # Who ended last: JavaScript, when it saw p2p's end before ending its side.
    [ "$(grep -nE 'the peer ended its side|ending our side' "$WORK/$js.err" | head -n 1 | grep -c 'the peer ended')" = 1 ] && last=JavaScript
    echo "  ok: ($label) 1 MiB each way, checksums equal, both exit 0 (JavaScript $how the connection, $last ended last; $(since "$t0") s)"
}

pipe_case a js both
pipe_case a2 p2p both
pipe_case b p2p client --server
pipe_case c js server --client
P2P_ENDS_LAST=1 pipe_case e js both

# (f) Simultaneous dials: the JavaScript peer joins the topic and also dials
# p2p's key directly (swarm.joinPeer) while p2p, joining next, dials it through
# the topic. Hyperswarm keeps the connection dialled by the larger key (its
# _handleServerConnection: keepNew = existingIsOutdated || expectedInitiator
# === conn.isInitiator); both ends must make the same choice.
if [ "${SWARM_INTEROP_SIMULTANEOUS:-0}" = 1 ]; then
    JS_SEED="$(js_seed_with_key above)" JS_DIAL="$P2P_PK" pipe_case f1 js both
    JS_SEED="$(js_seed_with_key below)" JS_DIAL="$P2P_PK" pipe_case f2 js both
else
    echo "(f) simultaneous dials: not run (SWARM_INTEROP_SIMULTANEOUS=1 runs them)"
fi

echo "(d) p2p --json swarm join (no pipe) and a JavaScript peer (server and client)"
t0="$(now)"
topic="$(random_hex)"
mkfifo "$WORK/js_d.in"
start_js js_d events "$topic" "$(random_hex)" both "$WORK/js_d.in"
exec {JSD_FD}>"$WORK/js_d.in"   # its stdin, held open until the JavaScript peer is to leave
js_key js_d
wait_grep "$WORK/js_d.err" '^swarm-peer.*joined:' 15 || { logs js_d; fail "(d) the JavaScript peer did not finish joining within 15 s"; }
# --foreground: timeout passes SIGINT to p2p alone.
timeout --foreground 90 "$P2P" --home "$WORK/p2p" --json swarm join "$topic" --bootstrap "$BS" \
    </dev/null >"$WORK/p2p_d.out" 2>"$WORK/p2p_d.err" {JSD_FD}>&- &
P2PD_PID=$!
PIDS+=("$P2PD_PID")
# event_line EVENT: p2p's JSON line for EVENT naming the JavaScript key
event_line() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("event") == sys.argv[2] and o.get("publicKey") == sys.argv[3]:
        print(line.strip())
        break
' "$WORK/p2p_d.out" "$1" "$js_d_PK"
}
ok=
for _ in $(seq 1 300); do
    [ -n "$(event_line connected)" ] && { ok=1; break; }
    kill -0 "$P2PD_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$ok" ] || { logs js_d p2p_d; cat "$WORK/p2p_d.out" >&2; fail "(d) p2p --json printed no connected event with the JavaScript key $js_d_PK within 30 s"; }
line="$(event_line connected)"
python3 -c '
import json, sys
o = json.loads(sys.argv[1])
missing = [k for k in ("event", "publicKey", "address", "how", "initiator") if k not in o]
assert not missing, "missing fields: %s" % missing
assert o["how"] in ("direct", "relayed"), "how: %r" % o["how"]
assert isinstance(o["initiator"], bool), "initiator: %r" % o["initiator"]
' "$line" || fail "(d) p2p's connected event is malformed: $line"
echo "  ok: (d) p2p --json reports $line"
wait_grep "$WORK/js_d.out" "\"publicKey\":\"$P2P_PK\"" 10 ||
    { logs js_d p2p_d; fail "(d) the JavaScript peer reports no connection from p2p's key $P2P_PK"; }
echo "  ok: (d) the JavaScript peer reports $(grep -F "$P2P_PK" "$WORK/js_d.out" | head -n 1)"
exec {JSD_FD}>&-   # end of the JavaScript peer's stdin: it leaves the swarm
wait_gone "$js_d_PID" 15 || { logs js_d; fail "(d) the JavaScript peer did not stop within 15 s of the end of its stdin"; }
ok=
for _ in $(seq 1 150); do
    [ -n "$(event_line disconnected)" ] && { ok=1; break; }
    sleep 0.1
done
[ -n "$ok" ] || { logs js_d p2p_d; cat "$WORK/p2p_d.out" >&2; fail "(d) p2p --json printed no disconnected event within 15 s of the JavaScript peer leaving"; }
echo "  ok: (d) p2p --json reports $(event_line disconnected)"
kill -INT "$P2PD_PID"
wait_gone "$P2PD_PID" 10 || { logs p2p_d; fail "(d) p2p swarm join did not stop within 10 s of SIGINT"; }
case "$STATUS" in
    0 | 130) echo "  ok: (d) p2p swarm join stops on SIGINT (exit $STATUS); $(since "$t0") s" ;;
    *) logs p2p_d; fail "(d) p2p swarm join exited $STATUS after SIGINT (expected 0 or 130)" ;;
esac

echo "PASS: swarm interop with $versions"
