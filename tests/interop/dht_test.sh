#!/usr/bin/env bash
# DHT interop: p2p and the JavaScript reference (hyperdht 6.34.0, dht-rpc
# 6.27.0 pinned in package.json) in one HyperDHT network on 127.0.0.1.
#
# A JavaScript testnet of 5 nodes (dht-peer.mjs testnet) is joined by 3
# `p2p dht bootstrap` nodes. Then, twice (the p2p and JavaScript clients
# bootstrapping first from the JavaScript bootstrap node, then from a p2p
# node):
#   p2p dht announce --once       -> a JavaScript lookup finds the p2p key
#   p2p dht unannounce            -> ... and no longer finds it
#   JavaScript announce           -> p2p dht lookup (and --json) finds it, and
#                                    p2p nodes are among the record holders
#   p2p dht put                   -> JavaScript immutableGet reads it
#   JavaScript immutablePut       -> p2p dht get reads it
#   p2p dht put --mutable --seq   -> JavaScript mutableGet reads value and seq
#   JavaScript mutablePut         -> p2p dht get --mutable reads it
# and a long-running `p2p dht announce` is found, and gone after SIGINT.
# Each client home gets its identity from `p2p id create` first.
# Nothing talks to the public bootstrap nodes: every command that joins
# the DHT gets --bootstrap, and P2P_BOOTSTRAP is set for the rest.
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

if [ ! -d "$HERE/node_modules/hyperdht" ] || [ ! -d "$HERE/node_modules/dht-rpc" ]; then
    echo "installing the pinned JavaScript reference into $HERE/node_modules"
    # npm ci needs a lock file that lists hyperdht; without one, install
    # without rewriting package.json or the lock file.
    if grep -q '"node_modules/hyperdht"' "$HERE/package-lock.json" 2>/dev/null; then
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
  console.log(v("hyperdht"), v("dht-rpc"))')" || fail "cannot read the installed reference versions"
echo "reference: hyperdht/dht-rpc $versions"

for _ in 1 2 3 4 5 6 7 8 9 10; do [ -x "$P2P" ] && break; sleep 1; done
[ -x "$P2P" ] || fail "p2p binary not found or not executable: $P2P"
"$P2P" dht --help >/dev/null 2>&1 || fail "'p2p dht --help' failed: this p2p has no dht command"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2p-dht-interop.XXXXXX")" || fail "mktemp failed"
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

export P2P_HOME="$WORK/home"       # no command touches the user's home
export DHT_PEER_TIMEOUT=30         # bound of dht-peer.mjs's one-shot modes
export DHT_PEER_LIFETIME=290       # and of its serving modes

js() { (cd "$HERE" && timeout 60 node dht-peer.mjs "$@" </dev/null); }
p2p() { timeout 60 "$P2P" "$@" </dev/null; }
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }
blake2b() { python3 -c 'import hashlib,sys; print(hashlib.blake2b(sys.argv[1].encode(), digest_size=32).hexdigest())' "$1"; }
random_hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; echo; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" != "$3" ]; then fail "$1: expected '$2', got '$3'"; fi
    echo "  ok: $1"
}
# wait_line FILE: until FILE has a first line (10 s at most)
wait_line() {
    local _
    for _ in $(seq 1 100); do [ -n "$(head -n 1 "$1" 2>/dev/null)" ] && return 0; sleep 0.1; done
    return 1
}
# wait_gone PID: until PID has exited (10 s at most); then its status in $STATUS
wait_gone() {
    local _
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && return 1
    wait "$1"
    STATUS=$?
    return 0
}

# start_js NAME MODE ARGS...: a serving dht-peer.mjs (testnet, announce); its
# JSON line in $WORK/NAME.out; its stdin is a FIFO held open until the test ends.
start_js() {
    local name="$1"; shift
    mkfifo "$WORK/$name.in"
    (cd "$HERE" && exec timeout 290 node dht-peer.mjs "$@" <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err") &
    PIDS+=($!)
    eval "${name}_PID=$!"
    exec {fd}>"$WORK/$name.in"
    eval "${name}_FD=$fd"
    for _ in $(seq 1 300); do [ -s "$WORK/$name.out" ] && break; kill -0 "$!" 2>/dev/null || break; sleep 0.1; done
    [ -s "$WORK/$name.out" ] || { cat "$WORK/$name.err" >&2; fail "JavaScript $name ($*) did not start"; }
}

# js_lookup_has BOOTSTRAP TOPIC_HEX KEY: a JavaScript lookup lists KEY; its line in $LINE
js_lookup_has() {
    local out
    out="$(js lookup "$1" "$2" 2>"$WORK/jslookup.err")" || { cat "$WORK/jslookup.err" >&2; fail "JavaScript lookup failed"; }
    LINE="$(grep -F "\"publicKey\":\"$3\"" <<<"$out")"
}
# retry N COMMAND...: COMMAND until it succeeds, N tries 1 s apart
retry() {
    local n="$1" i; shift
    for i in $(seq 1 "$n"); do
        "$@" && return 0
        [ "$i" -lt "$n" ] && sleep 1
    done
    return 1
}
not() { ! "$@"; }

# p2p_lookup_has TOPIC BOOTSTRAP KEY: `p2p dht lookup` lists KEY (and exits 0)
p2p_lookup_has() {
    local out
    out="$(p2p --home "$WORK/reader" dht lookup "$1" --bootstrap "$2" 2>"$WORK/lookup.err")" || return 1
    cut -d' ' -f1 <<<"$out" | grep -qx "$3"
}

echo "A JavaScript testnet of 5 nodes, joined by 3 p2p dht bootstrap nodes"
start_js testnet testnet 5
JSB="$(json_field bootstrap <"$WORK/testnet.out")"
[[ "$JSB" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "the JavaScript testnet printed bootstrap '$JSB'"
export P2P_BOOTSTRAP="$JSB"
echo "  JavaScript testnet: $(python3 -c 'import json,sys; print(" ".join(json.loads(sys.stdin.readline())["nodes"]))' <"$WORK/testnet.out")"

NODES=()
for i in 1 2 3; do
    timeout 290 "$P2P" --home "$WORK/node$i" dht bootstrap --host 127.0.0.1 --port 0 --bootstrap "$JSB" \
        </dev/null >"$WORK/node$i.out" 2>"$WORK/node$i.err" &
    PIDS+=($!)
    eval "NODE${i}_PID=$!"
done
for i in 1 2 3; do
    wait_line "$WORK/node$i.out" ||
        { cat "$WORK/node$i.err" >&2; fail "p2p dht bootstrap $i printed no address within 10 s (is stdout flushed?)"; }
    addr="$(head -n 1 "$WORK/node$i.out")"
    [[ "$addr" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "p2p dht bootstrap $i printed '$addr', expected 127.0.0.1:PORT"
    NODES+=("$addr")
done
echo "  p2p nodes: ${NODES[*]}"
for addr in "${NODES[@]}" "$JSB"; do
    ok=
    for _ in $(seq 1 50); do
        p2p dht ping "$addr" --timeout 2 >/dev/null 2>"$WORK/ping.err" && { ok=1; break; }
        sleep 0.2
    done
    [ -n "$ok" ] || { cat "$WORK/ping.err" >&2; fail "p2p dht ping $addr never succeeded (10 s)"; }
done
echo "  ok: p2p dht ping answers from the 3 p2p nodes and the JavaScript bootstrap node"
p2p dht ping 127.0.0.1:9 --timeout 3 >/dev/null 2>&1 && fail "p2p dht ping of a dead address (127.0.0.1:9) succeeded"
echo "  ok: p2p dht ping of a dead address fails"
sleep 2 # let the p2p nodes' bootstrap queries make them known to the JavaScript nodes

is_p2p_node() { local a; for a in "${NODES[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
# holders_include_p2p: the "from" list of $LINE names a p2p node
holders_include_p2p() {
    local h
    for h in $(python3 -c 'import json,sys; print(" ".join(json.loads(sys.stdin.read())["from"]))' <<<"$LINE"); do
        is_p2p_node "$h" && return 0
    done
    return 1
}
js_lookup_held_by_p2p() { js_lookup_has "$@" && holders_include_p2p; }

# round R VIA BOOTSTRAP: the client checks, every client bootstrapping from BOOTSTRAP
round() {
    local r="$1" via="$2" bs="$3"
    local H="$WORK/client$r" topic thex pk out jspk val hash mpk seed got
    echo "Round $r: clients bootstrap from $via ($bs)"
    p2p --home "$H" -q id create >/dev/null 2>"$WORK/id.err" || { cat "$WORK/id.err" >&2; fail "p2p id create failed"; }

    # p2p announces, JavaScript looks up. Round 1 names the topic by a
    # string (hashed with BLAKE2b-256), round 2 by 64 hex characters.
    if [ "$r" = 1 ]; then topic="p2p dht interop topic $$"; thex="$(blake2b "$topic")"
    else thex="$(random_hex)"; topic="$thex"; fi
    out="$(p2p --home "$H" dht announce "$topic" --once --bootstrap "$bs" 2>"$WORK/announce.err")" ||
        { cat "$WORK/announce.err" >&2; fail "[$via] p2p dht announce --once failed"; }
    pk="$(head -n 1 <<<"$out")"
    [[ "$pk" =~ ^[0-9a-f]{64}$ ]] || fail "[$via] p2p dht announce printed '$pk', expected a public key in hex"
    check "[$via] p2p dht announce announces the identity's public key" \
        "$(p2p --home "$H" --json id show | json_field publicKey)" "$pk"
    retry 5 js_lookup_has "$bs" "$thex" "$pk" ||
        fail "[$via] a JavaScript lookup of the topic (hex $thex) does not find p2p's key $pk"
    echo "  ok: [$via] p2p dht announce --once -> JavaScript lookup finds $pk (held by $(python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read())["from"]))' <<<"$LINE") nodes)"
    retry 5 p2p_lookup_has "$topic" "$bs" "$pk" ||
        { cat "$WORK/lookup.err" >&2; fail "[$via] p2p dht lookup does not find p2p's own announce"; }
    echo "  ok: [$via] p2p dht lookup finds it too"
    p2p --home "$H" dht unannounce "$topic" --bootstrap "$bs" >/dev/null 2>"$WORK/unannounce.err" ||
        { cat "$WORK/unannounce.err" >&2; fail "[$via] p2p dht unannounce failed"; }
    retry 5 not js_lookup_has "$bs" "$thex" "$pk" ||
        fail "[$via] after p2p dht unannounce, a JavaScript lookup still finds $pk: $LINE"
    echo "  ok: [$via] p2p dht unannounce -> JavaScript lookup no longer finds it"
    p2p --home "$WORK/reader" dht lookup "nobody announced this, $r $$" --bootstrap "$bs" >/dev/null 2>&1
    check "[$via] p2p dht lookup of a topic nobody announced exits 1" "1" "$?"

    # JavaScript announces (a fixed seed), p2p looks up.
    thex="$(random_hex)"
    seed="$(printf '%064x' $((1000 + r)))"
    start_js "jsannounce$r" announce "$bs" "$thex" "$seed"
    jspk="$(json_field publicKey <"$WORK/jsannounce$r.out")"
    retry 5 p2p_lookup_has "$thex" "$bs" "$jspk" ||
        { cat "$WORK/lookup.err" >&2; fail "[$via] p2p dht lookup does not find the JavaScript announce $jspk"; }
    echo "  ok: [$via] JavaScript announce -> p2p dht lookup finds $jspk"
    out="$(p2p --home "$WORK/reader" --json dht lookup "$thex" --bootstrap "$bs")" || fail "[$via] p2p --json dht lookup failed"
    got="$(python3 -c '
import json, sys
for line in sys.stdin:
    o = json.loads(line)
    if o["publicKey"] == sys.argv[1]:
        print("relays=" + json.dumps(o["relayAddresses"]))
' "$jspk" <<<"$out")"
    check "[$via] p2p --json dht lookup: the JavaScript peer, with the (empty) relay list it announced" 'relays=[]' "$got"
    retry 5 js_lookup_held_by_p2p "$bs" "$thex" "$jspk" ||
        fail "[$via] no p2p node holds (or answers LOOKUP with) the JavaScript announce record; holders: $LINE"
    echo "  ok: [$via] p2p nodes store the JavaScript announce and answer JavaScript lookups with it"
    eval "kill -TERM \"\$jsannounce${r}_PID\""

    # p2p immutable put, JavaScript immutable get.
    val="immutable from p2p, round $r, $$"
    hash="$(p2p --home "$H" dht put "$val" --bootstrap "$bs" 2>"$WORK/put.err")" ||
        { cat "$WORK/put.err" >&2; fail "[$via] p2p dht put failed"; }
    check "[$via] p2p dht put prints BLAKE2b-256 of the value" "$(blake2b "$val")" "$hash"
    got=
    for _ in 1 2 3; do got="$(js immutable-get "$bs" "$hash" 2>"$WORK/jsget.err" | json_field value)" && break; sleep 1; done
    [ -n "$got" ] || cat "$WORK/jsget.err" >&2
    check "[$via] p2p dht put -> JavaScript immutableGet" "$val" "$got"

    # JavaScript immutable put, p2p get.
    val="immutable from JavaScript, round $r, $$"
    hash="$(js immutable-put "$bs" "$val" 2>"$WORK/jsput.err" | json_field hash)" ||
        { cat "$WORK/jsput.err" >&2; fail "[$via] JavaScript immutable-put failed"; }
    got="$(retry 3 p2p --home "$WORK/reader" dht get "$hash" --bootstrap "$bs" 2>"$WORK/get.err")" ||
        { cat "$WORK/get.err" >&2; fail "[$via] p2p dht get of a JavaScript immutable value failed"; }
    check "[$via] JavaScript immutablePut -> p2p dht get" "$val" "$got"
    p2p --home "$WORK/reader" dht get "$(random_hex)" --bootstrap "$bs" >/dev/null 2>&1
    check "[$via] p2p dht get of an unknown hash exits 1" "1" "$?"

    # p2p mutable put, JavaScript mutable get (then an update, then a refused put).
    val="mutable from p2p, round $r, $$"
    out="$(p2p --home "$H" --json dht put --mutable "$val" --seq 7 --bootstrap "$bs" 2>"$WORK/put.err")" ||
        { cat "$WORK/put.err" >&2; fail "[$via] p2p dht put --mutable failed"; }
    mpk="$(json_field publicKey <<<"$out")"
    check "[$via] p2p --json dht put --mutable --seq 7 prints the seq" "7" "$(json_field seq <<<"$out")"
    [[ "$mpk" =~ ^[0-9a-f]{64}$ ]] || fail "[$via] p2p dht put --mutable printed publicKey '$mpk'"
    got=
    for _ in 1 2 3; do got="$(js mutable-get "$bs" "$mpk" 2>"$WORK/jsget.err")" && break; sleep 1; done
    [ -n "$got" ] || cat "$WORK/jsget.err" >&2
    check "[$via] p2p dht put --mutable -> JavaScript mutableGet" \
        "$(python3 -c 'import json,sys; print(json.dumps({"seq": 7, "value": sys.argv[1]}, separators=(",", ":")))' "$val")" "$got"
    out="$(p2p --home "$H" dht put --mutable "$val (v8)" --seq 8 --bootstrap "$bs" 2>"$WORK/put.err")" ||
        { cat "$WORK/put.err" >&2; fail "[$via] p2p dht put --mutable --seq 8 failed"; }
    check "[$via] p2p dht put --mutable prints the identity's key" "$mpk" "$(head -n 1 <<<"$out")"
    got="$(js mutable-get "$bs" "$mpk" 2>"$WORK/jsget.err" | python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print(o["seq"], o["value"])')"
    check "[$via] JavaScript mutableGet sees the update" "8 $val (v8)" "$got"
    p2p --home "$H" dht put --mutable "another value" --seq 8 --bootstrap "$bs" >/dev/null 2>"$WORK/put.err" &&
        fail "[$via] p2p dht put --mutable of a different value with a used seq (SEQ_REUSED) succeeded"
    echo "  ok: [$via] a put --mutable reusing seq 8 for another value is refused ($(head -n 1 "$WORK/put.err"))"

    # JavaScript mutable put, p2p get --mutable.
    seed="$(printf '%064x' $((2000 + r)))"
    val="mutable from JavaScript, round $r, $$"
    out="$(js mutable-put "$bs" "$seed" "$val" 5 2>"$WORK/jsput.err")" ||
        { cat "$WORK/jsput.err" >&2; fail "[$via] JavaScript mutable-put failed"; }
    jspk="$(json_field publicKey <<<"$out")"
    got="$(retry 3 p2p --home "$WORK/reader" dht get --mutable "$jspk" --bootstrap "$bs" 2>"$WORK/get.err")" ||
        { cat "$WORK/get.err" >&2; fail "[$via] p2p dht get --mutable of a JavaScript value failed"; }
    check "[$via] JavaScript mutablePut -> p2p dht get --mutable" "$val" "$got"
    out="$(p2p --home "$WORK/reader" --json dht get --mutable "$jspk" --bootstrap "$bs")" ||
        fail "[$via] p2p --json dht get --mutable failed"
    check "[$via] p2p --json dht get --mutable: seq and value" "5 $val" \
        "$(python3 -c 'import json,sys; o=json.loads(sys.stdin.readline()); print(o["seq"], o["value"])' <<<"$out")"
    p2p --home "$WORK/reader" dht get --mutable "$(random_hex)" --bootstrap "$bs" >/dev/null 2>&1
    check "[$via] p2p dht get --mutable of an unknown key exits 1" "1" "$?"
}

round 1 "the JavaScript bootstrap node" "$JSB"
round 2 "a p2p node" "${NODES[0]}"

echo "A long-running p2p dht announce, stopped with SIGINT"
thex="$(random_hex)"
# --foreground: timeout passes SIGINT to p2p alone, once.
timeout --foreground 120 "$P2P" --home "$WORK/client1" dht announce "$thex" --bootstrap "${NODES[1]}" \
    </dev/null >"$WORK/announcing.out" 2>"$WORK/announcing.err" &
apid=$!
PIDS+=("$apid")
wait_line "$WORK/announcing.out" ||
    { cat "$WORK/announcing.err" >&2; fail "p2p dht announce printed no key within 10 s"; }
pk="$(head -n 1 "$WORK/announcing.out")"
retry 5 js_lookup_has "$JSB" "$thex" "$pk" || fail "a JavaScript lookup does not find the announcing p2p key $pk"
echo "  ok: JavaScript lookup finds a running p2p dht announce"
kill -INT "$apid"
wait_gone "$apid" || fail "p2p dht announce did not stop within 10 s of SIGINT"
case "$STATUS" in
    0 | 130) ;;
    *) cat "$WORK/announcing.err" >&2; fail "p2p dht announce exited $STATUS after SIGINT (expected 130 or 0)" ;;
esac
retry 5 not js_lookup_has "$JSB" "$thex" "$pk" ||
    fail "p2p dht announce stopped by SIGINT did not unannounce: a JavaScript lookup still finds $pk"
echo "  ok: stopped by SIGINT (exit $STATUS), it unannounced: JavaScript lookup no longer finds it"

kill -TERM "$NODE3_PID"
wait_gone "$NODE3_PID" || fail "p2p dht bootstrap did not stop within 10 s of SIGTERM"
case "$STATUS" in
    0 | 130 | 143) echo "  ok: p2p dht bootstrap stops on SIGTERM (exit $STATUS)" ;;
    *) cat "$WORK/node3.err" >&2; fail "p2p dht bootstrap exited $STATUS after SIGTERM" ;;
esac
echo "PASS: DHT interop with hyperdht $versions"
