#!/usr/bin/env bash
# Replication interop: p2p and the JavaScript reference (hypercore 11.37.1,
# hyperbee 2.27.3, hyperdrive 13.3.4 pinned in package.json) replicate over
# real TCP on 127.0.0.1, each way, for cores, bees and drives; live appends
# made while a JavaScript reader is connected reach it.
# Exit: 0 pass, 1 failure, 77 skipped (no node/npm or packages).
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P2P="${P2P:?set P2P to the p2p binary}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || skip "node is not installed"
[ -d "$HERE/node_modules/hyperdrive" ] || (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund >/dev/null 2>&1) ||
    skip "npm ci failed (no registry?)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2p-repl-interop.XXXXXX")" || fail "mktemp failed"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
export P2P_MAP_SIZE_GB=1

js() { (cd "$HERE" && timeout 60 node peer.mjs "$@"); }
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

# start_js NAME MODE ARGS...: a serving JavaScript peer; its first line (key, port) in $WORK/NAME.out
start_js() {
    local name="$1"; shift
    mkfifo "$WORK/$name.in"
    (cd "$HERE" && exec timeout 120 node peer.mjs "$@" <"$WORK/$name.in" >"$WORK/$name.out" 2>"$WORK/$name.err") &
    PIDS+=($!)
    exec {fd}>"$WORK/$name.in"   # keeps its stdin open until the test ends
    eval "${name}_FD=$fd"
    for _ in $(seq 1 100); do [ -s "$WORK/$name.out" ] && break; sleep 0.1; done
    [ -s "$WORK/$name.out" ] || { cat "$WORK/$name.err"; fail "JavaScript $name did not start"; }
}

# start_seed HOME: `p2p seed` on a free port; sets SEED_PORT
start_seed() {
    "$P2P" --home "$1" seed --listen 127.0.0.1:0 >"$WORK/seed.out" 2>"$WORK/seed.err" &
    PIDS+=($!)
    SEED_PID=$!
    for _ in $(seq 1 100); do grep -q 'on 127.0.0.1:' "$WORK/seed.out" 2>/dev/null && break; sleep 0.1; done
    SEED_PORT="$(sed -n 's/.*on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/seed.out")"
    [ -n "$SEED_PORT" ] || { cat "$WORK/seed.err"; fail "p2p seed did not start"; }
}

check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" != "$3" ]; then fail "$1: expected '$2', got '$3'"; fi
    echo "  ok: $1"
}

echo "JavaScript hypercore appends, p2p reads"
start_js jscore serve-core "$WORK/jscore" 300
key="$(json_field key <"$WORK/jscore.out")"; port="$(json_field port <"$WORK/jscore.out")"
H="$WORK/reader"
check "core get 0" "block 0" "$("$P2P" --home "$H" core get "$key" 0 --peer "127.0.0.1:$port")"
check "core get 299 via --from" "block 299" "$("$P2P" --home "$H" core get --from "$key" 299 --peer "127.0.0.1:$port")"
check "core info length" "300" "$("$P2P" --home "$H" --json core info --from "$key" --peer "127.0.0.1:$port" | json_field length)"
check "offline afterwards" "block 299" "$("$P2P" --home "$H" core get "$key" 299)"
"$P2P" --home "$H" core get "$key" 5 >/dev/null 2>&1 && fail "block 5 was never fetched but reads offline"
echo "append live" >&"$jscore_FD"
for _ in $(seq 1 50); do [ "$(wc -l <"$WORK/jscore.out")" -ge 2 ] && break; sleep 0.1; done
check "a JavaScript append reaches a new p2p read" "live" \
    "$("$P2P" --home "$H" core get "$key" 300 --peer "127.0.0.1:$port")"

echo "p2p appends, JavaScript hypercore reads (and sees live appends)"
S="$WORK/seeder"
for i in $(seq 0 49); do echo "p2p block $i"; done | "$P2P" --home "$S" -q core append src --lines
ckey="$("$P2P" --home "$S" --json core info src | json_field key)"
start_seed "$S"
out="$(js read-core "$ckey" "$SEED_PORT" 0 17 49)" || fail "JavaScript could not read the p2p core"
check "JavaScript reads p2p blocks" '{"length":50,"blocks":{"0":"p2p block 0","17":"p2p block 17","49":"p2p block 49"}}' "$out"
# Byte seeks: JavaScript asks for seek proofs ("which block holds byte B?").
out="$(js seek-core "$ckey" "$SEED_PORT" 0 5 11 300 572 589)" || fail "JavaScript could not seek in the p2p core"
check "JavaScript byte seeks answered by p2p seek proofs" \
    '{"seeks":{"0":[0,0],"5":[0,5],"11":[1,0],"300":[25,10],"572":[48,6],"589":[49,11]}}' "$out"
js wait-length "$ckey" "$SEED_PORT" 52 >"$WORK/wait.out" 2>"$WORK/wait.err" &
waiter=$!
sleep 1
"$P2P" --home "$S" -q core append src "p2p block 50"
"$P2P" --home "$S" -q core append src "p2p block 51"
wait "$waiter" || { cat "$WORK/wait.err"; fail "the JavaScript reader did not see the live appends"; }
check "live appends from another process reach a connected JavaScript reader" \
    '{"length":52,"last":"p2p block 51"}' "$(cat "$WORK/wait.out")"

echo "Hyperbee both ways"
start_js jsbee serve-bee "$WORK/jsbee" 2000
bkey="$(json_field key <"$WORK/jsbee.out")"; bport="$(json_field port <"$WORK/jsbee.out")"
check "kv get --from a JavaScript bee" "value-1234" \
    "$("$P2P" --home "$H" kv get --from "$bkey" --peer "127.0.0.1:$bport" key-1234)"
check "kv list --from a JavaScript bee" "$(printf 'key-0010\tvalue-10\nkey-0011\tvalue-11')" \
    "$("$P2P" --home "$H" kv list --from "$bkey" --peer "127.0.0.1:$bport" --gte key-0010 --limit 2)"
"$P2P" --home "$H" kv get --from "$bkey" --peer "127.0.0.1:$bport" key-9999 2>/dev/null
check "kv get of a missing key exits 1" "1" "$?"
printf 'binary\0value' | "$P2P" --home "$S" -q kv put greeting
"$P2P" --home "$S" -q kv put other "second"
bk2="$("$P2P" --home "$S" --json kv info | json_field key)"
out="$(js read-bee "$bk2" "$SEED_PORT" other missing)" || fail "JavaScript could not read the p2p bee"
check "JavaScript reads a p2p bee" '{"version":3,"values":{"other":"second","missing":null},"list":["greeting","other"]}' "$out"

echo "The hyperbee extension both ways (a reader learns a lookup's blocks in one round trip)"
err="$(P2P_TRACE=1 "$P2P" --home "$WORK/ext-reader" kv get --from "$bkey" --peer "127.0.0.1:$bport" key-0777 2>&1 >/dev/null)"
grep -q -- '-> extension' <<<"$err" || fail "kv get --from did not ask the JavaScript peer through the extension"
grep -q -- '<- extension' <<<"$err" || fail "the JavaScript peer did not answer the extension"
echo "  ok: kv get --from asks a JavaScript bee through the hyperbee extension and gets its answer"
B="$WORK/ext-seeder"
for i in $(seq 0 2999); do printf '{"key":"k%05d","value":"v%d"}\n' "$((i * 7919 % 3000))" "$i"; done |
    "$P2P" --home "$B" -q kv import
ek="$("$P2P" --home "$B" --json kv info | json_field key)"
P2P_TRACE=1 "$P2P" --home "$B" seed --listen 127.0.0.1:0 >"$WORK/eseed.out" 2>"$WORK/eseed.err" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q 'on 127.0.0.1:' "$WORK/eseed.out" 2>/dev/null && break; sleep 0.1; done
eport="$(sed -n 's/.*on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/eseed.out")"
out="$(js read-bee "$ek" "$eport" k01234)" || fail "JavaScript could not read the bigger p2p bee"
check "JavaScript reads a 3000-key p2p bee" "v$(python3 -c 'print(next(i for i in range(3000) if i*7919%3000==1234))')" \
    "$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["values"]["k01234"])' <<<"$out")"
grep -q -- '<- extension' "$WORK/eseed.err" || fail "JavaScript did not ask p2p seed through the hyperbee extension"
grep -q -- '-> extension' "$WORK/eseed.err" || fail "p2p seed did not answer JavaScript's hyperbee extension question"
echo "  ok: p2p seed answers JavaScript's hyperbee extension questions"

echo "Hyperdrive both ways"
start_js jsdrive serve-drive "$WORK/jsdrive"
dkey="$(json_field key <"$WORK/jsdrive.out")"; dport="$(json_field port <"$WORK/jsdrive.out")"
expected="$(node -e 'const b=Buffer.alloc(200000);for(let i=0;i<b.length;i++)b[i]=(i*7)&255;console.log(require("crypto").createHash("sha256").update(b).digest("hex"))')"
check "drive get --from a JavaScript drive" "$expected" \
    "$("$P2P" --home "$H" drive get --from "$dkey" --peer "127.0.0.1:$dport" /dir/big.bin | sha256sum | cut -d' ' -f1)"
check "drive ls --from a JavaScript drive" "$(printf 'dir/\nhello.txt')" \
    "$("$P2P" --home "$H" drive ls --from "$dkey" --peer "127.0.0.1:$dport")"
head -c 150000 /dev/urandom >"$WORK/rand.bin"
"$P2P" --home "$S" -q drive put "$WORK/rand.bin" /data/rand.bin
dk2="$("$P2P" --home "$S" --json drive info | json_field key)"
want="$(sha256sum <"$WORK/rand.bin" | cut -d' ' -f1)"
out="$(js read-drive "$dk2" "$SEED_PORT" /data/rand.bin /missing)" || fail "JavaScript could not read the p2p drive"
check "JavaScript reads a p2p drive" "{\"files\":{\"/data/rand.bin\":\"$want\",\"/missing\":null}}" "$out"

kill -TERM "$SEED_PID"
wait "$SEED_PID"
check "p2p seed exits 0 on SIGTERM" "0" "$?"
echo "PASS: replication interop with hypercore/hyperbee/hyperdrive"
