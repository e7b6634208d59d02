#!/usr/bin/env bash
# p2p dht on a private network of 20 nodes on 127.0.0.1 (never the public
# bootstrap nodes): announce, lookup, unannounce (explicit, and on SIGINT or
# SIGTERM), lookups after a third of the nodes are killed with SIGKILL, nodes
# that survive malformed UDP datagrams, immutable and mutable records, exit
# codes, and the dht-nodes file a client remembers.
set -euo pipefail
: "${P2P:?set P2P to the p2p binary}"
NODES=20

T=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
START=$SECONDS

# shellcheck source=strict_lib.sh
source "$(dirname "$0")/strict_lib.sh"
blake2b() { python3 -c 'import hashlib,sys; print(hashlib.blake2b(open(sys.argv[1],"rb").read(), digest_size=32).hexdigest())' "$1"; }
json() {  # json EXPR < one JSON line: print EXPR of the parsed object `j`
  python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); print(eval(sys.argv[1]))' "$1"
}

# Clients, each with its own home (client C, in $T/c, runs the long announces);
# all of them join through the first node (P2P_BOOTSTRAP).
as_a() { P2P_HOME="$T/a" "$P2P" "$@"; }    # announces and puts
as_b() { P2P_HOME="$T/b" "$P2P" "$@"; }    # looks up and gets
fresh() { P2P_HOME="$T/fresh" "$P2P" "$@"; }  # no home: remembers no nodes

# lookup_finds CLIENT TOPIC KEY [TIMEOUT]: the lookup prints exactly KEY (a few tries).
lookup_finds() {
  local i
  for i in 1 2 3 4 5; do
    run "$1" dht lookup "$2" --timeout "${4:-10}"
    if [ "$RC" = 0 ] && [ "$(cat "$T/out")" = "$3" ]; then
      [ "$i" = 1 ] || echo "   (lookup of '$2' by $1 found it on try $i)"
      return 0
    fi
    sleep 0.5
  done
  fail "$1 dht lookup '$2' did not find exactly $3 (exit $RC)"
}

# --- 1. a private network of 20 nodes ------------------------------------------
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
FIRST=${ADDR[0]}
export P2P_BOOTSTRAP=$FIRST
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "$FIRST"; done
for i in $(seq 1 $((NODES - 1))); do node_address "$i"; done
for i in $(seq 0 $((NODES - 1))); do ping_ok "$i"; done
expect_rc 0 "ping --json" "$P2P" --json dht ping "$FIRST" --timeout 5
[ "$(json 'j["host"], j["port"], len(j["id"]), j["you"]["host"]' < "$T/out")" = "('127.0.0.1', ${FIRST#*:}, 64, '127.0.0.1')" ] ||
  fail "ping --json shape: $(cat "$T/out")"
step "1. $NODES nodes on 127.0.0.1 (first $FIRST), each answers a ping"

# --- 2. announce --once, lookup ------------------------------------------------
TOPIC="dht test topic"
expect_rc 0 "client B's home" as_b id create
expect_rc 0 "announce --once" as_a dht announce "$TOPIC" --once
KEY=$(head -n 1 "$T/out")
[[ "$KEY" =~ ^[0-9a-f]{64}$ ]] || fail "announce printed '$KEY', not a public key"
expect_err "announced .* on [1-9][0-9]* nodes" "announce reports where it stored"
lookup_finds as_b "$TOPIC" "$KEY"
expect_rc 0 "lookup --json" as_b --json dht lookup "$TOPIC" --timeout 10
[ "$(wc -l < "$T/out")" = 1 ] || fail "lookup --json: one line per peer"
python3 - "$KEY" "$T/out" <<'PY' || fail "lookup --json shape: $(cat "$T/out")"
import json, re, sys
j = json.loads(open(sys.argv[2]).readline())
assert re.fullmatch("[0-9a-f]{64}", j["publicKey"]) and j["publicKey"] == sys.argv[1]
assert j["relayAddresses"] == []
assert j["from"]["host"] == "127.0.0.1" and isinstance(j["from"]["port"], int)
PY
# A text topic is its BLAKE2b-256 hash (hypercore-crypto's hash); 64 hex is used as is.
printf '%s' "$TOPIC" > "$T/topic"
expect_rc 0 "announce --once --json" as_a --json dht announce "$TOPIC" --once
[ "$(json 'j["publicKey"], j["topic"]' < "$T/out")" = "('$KEY', '$(blake2b "$T/topic")')" ] ||
  fail "announce --json: $(cat "$T/out")"
[ "$(sed -n 2p "$T/out" | json 'j["event"], j["nodes"] > 0')" = "('announced', True)" ] || fail "announce --json event: $(cat "$T/out")"
HEXTOPIC=$(blake2b "$T/topic")
lookup_finds as_b "$HEXTOPIC" "$KEY"
expect_rc 1 "a topic nobody announced" as_b dht lookup "nobody here" --timeout 10
expect_err "no peers found" "the message says nobody was found"
step "2. announce --once $KEY, lookup finds exactly it; --json shapes"

# --- 3. a long-running announce, stopped by SIGINT; unannounce -----------------
TOPIC2="dht test topic 2"
# Started directly, not through a shell function: $! must be p2p itself, not a
# subshell, for the signal to reach it.
P2P_HOME="$T/c" "$P2P" dht announce "$TOPIC2" > "$T/ann.out" 2> "$T/ann.err" &
ANN=$!
PIDS+=("$ANN")
for _ in $(seq 1 100); do grep -q "announced" "$T/ann.err" && break; sleep 0.1; done
grep -q "announced" "$T/ann.err" || fail "the long-running announce did not announce in 10 s: $(cat "$T/ann.err")"
KEY2=$(head -n 1 "$T/ann.out")
[ "$KEY2" != "$KEY" ] || fail "clients A and C have the same key"
lookup_finds as_b "$TOPIC2" "$KEY2"
stop_rc "$ANN" INT 15  # its final unannounce waits at most 10 s
[ "$RC" = 0 ] || fail "announce exited $RC after SIGINT, expected 0: $(cat "$T/ann.err")"
grep -q "unannounced from [1-9][0-9]* nodes" "$T/ann.err" || fail "no unannounce on SIGINT: $(cat "$T/ann.err")"
expect_rc 1 "lookup after the announce stopped" as_b dht lookup "$TOPIC2" --timeout 10
expect_err "no peers found" "the stopped announce is gone"
expect_rc 0 "unannounce" as_a dht unannounce "$TOPIC"
expect_err "unannounced from [1-9][0-9]* nodes" "unannounce reports the nodes"
expect_rc 1 "lookup after unannounce" as_b dht lookup "$TOPIC" --timeout 10
expect_err "no peers found" "the unannounced key is gone"
TOPIC3="dht test topic 3"
P2P_HOME="$T/c" "$P2P" dht announce "$TOPIC3" > "$T/ann.out" 2> "$T/ann.err" &
ANN=$!
PIDS+=("$ANN")
for _ in $(seq 1 100); do grep -q "announced" "$T/ann.err" && break; sleep 0.1; done
lookup_finds as_b "$TOPIC3" "$KEY2"
stop_rc "$ANN" TERM 15
[ "$RC" = 0 ] || fail "announce exited $RC after SIGTERM, expected 0: $(cat "$T/ann.err")"
expect_rc 1 "lookup after SIGTERM stopped the announce" as_b dht lookup "$TOPIC3" --timeout 10
step "3. SIGINT and SIGTERM stop a long-running announce (exit 0, record gone); unannounce removes A's"

# --- 4. a third of the nodes killed -------------------------------------------
expect_rc 0 "announce again" as_a dht announce "$TOPIC" --once
lookup_finds as_b "$TOPIC" "$KEY"
KILLED=()
for i in $(seq 1 $((NODES - 1))); do
  if [ $((i % 3)) = 1 ]; then KILLED+=("$i"); fi  # 1 4 7 10 13 16 19: 7 of the 19
done
{  # (bash reports "Killed" on its own stderr when it reaps them)
  for i in "${KILLED[@]}"; do kill -9 "${NODE_PID[$i]}"; done
  for i in "${KILLED[@]}"; do wait "${NODE_PID[$i]}" || true; done
} 2> /dev/null
# A fresh client with no remembered nodes, joining through the first node only.
lookup_finds fresh "$TOPIC" "$KEY" 20
lookup_finds as_b "$TOPIC" "$KEY" 20
step "4. killed ${#KILLED[@]} nodes (${KILLED[*]}) with SIGKILL; lookups still find A"

# --- 5. malformed datagrams -----------------------------------------------------
TARGETS=(0 2 3 5 6)  # the first node and four others still running
PORTS=()
for i in "${TARGETS[@]}"; do PORTS+=("${ADDR[$i]#*:}"); done
SENT=$(python3 - "${PORTS[@]}" <<'PY'
import hashlib, random, socket, struct, sys, time
rng = random.Random(20261122)
def rand(n): return bytes(rng.getrandbits(8) for _ in range(n))
def uint(n):  # compact-encoding uint
    if n < 0xfd: return bytes([n])
    if n <= 0xffff: return b"\xfd" + struct.pack("<H", n)
    if n <= 0xffffffff: return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)
def addr(port, ip=b"\x7f\x00\x00\x01"): return ip + struct.pack("<H", port)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setblocking(False)
me = s.getsockname()[1]
def request(port, flags=31, cmd=2, value=b"v" * 40, id=None):
    return (b"\x03" + uint(flags) + struct.pack("<H", rng.getrandbits(16)) + addr(port) +
            ((id or rand(32)) if flags & 1 else b"") + (rand(32) if flags & 2 else b"") + uint(cmd) +
            (rand(32) if flags & 8 else b"") + (uint(len(value)) + value if flags & 16 else b""))
def response(port, nodes=3):
    return (b"\x13" + uint(31) + struct.pack("<H", rng.getrandbits(16)) + addr(port) + rand(64) +
            uint(nodes) + b"".join(addr(rng.getrandbits(16)) for _ in range(nodes)) + uint(1) + uint(5) + b"value")
def header(byte, flags, port): return bytes([byte]) + uint(flags) + struct.pack("<H", rng.getrandbits(16)) + addr(port)
sent = 0
for port in map(int, sys.argv[1:]):
    packets = []
    packets += [bytes([rng.choice([3, 0x13, rng.getrandbits(8)])]) + rand(rng.randrange(0, 1400)) for _ in range(300)]
    packets += [b""] + [bytes([b]) for b in range(256)]                     # 0 and 1 byte
    packets += [bytes([t, b]) for t in (3, 0x13) for b in range(256)]        # 2 bytes
    full_req, full_res = request(port), response(port)
    packets += [full_req[:n] for n in range(1, len(full_req))]              # truncated requests
    packets += [full_res[:n] for n in range(1, len(full_res))]              # truncated responses
    for count in (b"\xfe\xff\xff\xff\xff", b"\xff" + b"\xff" * 8, b"\xfd\xff\xff", b"\xff\x00\x00\x00\x00\x00\x00\x20\x00"):
        for tail in (b"", rand(7), rand(100), rand(1000)):
            packets.append(header(0x13, 4, port) + count + tail)             # huge closerNodes count
            packets.append(header(0x13, 16, port) + count + tail)            # huge value length
            packets.append(header(0x13, 8, port) + count + tail)             # huge error code
            packets.append(header(0x03, 16, port) + uint(2) + count + tail)  # request, huge value length
            packets.append(header(0x03, 0, port) + count + tail)             # huge command
            packets.append(b"\x03" + count + tail)                            # huge flags
            packets.append(b"\x13" + count + tail)
    # Oversized datagrams: garbage, and well-formed but far over any record size.
    packets += [b"\x03" + rand(59999), b"\x13" + rand(59999), b"\x03" * 60000, bytes([3]) + b"\xff" * 65506]
    packets.append(header(0x13, 4, port) + uint(9000) + b"".join(addr(p) for p in range(1, 9001)))
    packets += [request(port, flags=rng.choice([16, 18, 26, 27, 30, 31]), cmd=c, value=rand(59000)) for c in range(11)]
    # Well-formed requests of every command, internal or not, with garbage in them.
    for cmd in list(range(16)) + [2**53 - 1]:
        for _ in range(6):
            packets.append(request(port, flags=rng.getrandbits(5), cmd=cmd, value=rand(rng.randrange(0, 300))))
    # PINGs from a node that looks valid (its id is the hash of its address) and then goes away.
    my_id = hashlib.blake2b(addr(me), digest_size=32).digest()
    packets += [request(port, flags=1 | 4, cmd=0, id=my_id) for _ in range(5)]
    for i, p in enumerate(packets):
        try:
            s.sendto(p, ("127.0.0.1", port))
        except BlockingIOError:
            time.sleep(0.01)
        if i % 50 == 0:
            time.sleep(0.002)
            try:
                while s.recv(65536): pass
            except BlockingIOError:
                pass
    sent += len(packets)
print(sent)
PY
)
for i in "${TARGETS[@]}"; do
  kill -0 "${NODE_PID[$i]}" 2>/dev/null || fail "node $i died after malformed datagrams: $(tail -n 5 "$T/node$i.err")"
  ping_ok "$i"
done
lookup_finds fresh "$TOPIC" "$KEY" 20
step "5. ${#TARGETS[@]} nodes got $SENT malformed datagrams, still run, answer pings; lookup works"

# --- 6. immutable and mutable records -------------------------------------------
expect_rc 0 "put" as_a dht put "hello dht"
HASH=$(cat "$T/out")
printf 'hello dht' > "$T/v1"
[ "$HASH" = "$(blake2b "$T/v1")" ] || fail "put printed '$HASH', not the BLAKE2b-256 of the value"
expect_err "stored on [1-9][0-9]* nodes" "put reports where it stored"
expect_rc 0 "get from another home" as_b dht get "$HASH" --timeout 20
cmp -s "$T/out" "$T/v1" || fail "get printed something else than the value"
expect_rc 0 "get --json" as_b --json dht get "$HASH" --timeout 20
[ "$(json 'j["hash"], j["value"]' < "$T/out")" = "('$HASH', 'hello dht')" ] || fail "get --json: $(cat "$T/out")"
printf 'first line\nsecond line\n' > "$T/v2"
expect_rc 0 "put from stdin" as_a dht put < "$T/v2"
H2=$(cat "$T/out")
[ "$H2" = "$(blake2b "$T/v2")" ] || fail "put from stdin hashed something else"
expect_rc 0 "put - from stdin" as_a dht put - < "$T/v2"
[ "$(cat "$T/out")" = "$H2" ] || fail "'put -' and 'put' differ"
expect_rc 0 "get the stdin value" as_b dht get "$H2" --timeout 20
cmp -s "$T/out" "$T/v2" || fail "the value with newlines did not come back byte for byte"
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(1, 256)) + bytes(range(255, 0, -1)))' > "$T/v3"
expect_rc 0 "put binary from stdin" as_a dht put < "$T/v3"
H3=$(cat "$T/out")
expect_rc 0 "put binary as an argument" as_a dht put "$(cat "$T/v3")"
[ "$(cat "$T/out")" = "$H3" ] || fail "binary value: argument and stdin hash differently"
[ "$H3" = "$(blake2b "$T/v3")" ] || fail "binary value: put printed '$H3', not its BLAKE2b-256"
expect_rc 0 "get the binary value" as_b dht get "$H3" --timeout 20
cmp -s "$T/out" "$T/v3" || fail "the binary value did not come back byte for byte"
expect_rc 0 "get the binary value --json" as_b --json dht get "$H3" --timeout 20
python3 - "$T/out" "$T/v3" <<'PY' || fail "binary get --json: $(cat "$T/out")"
import base64, json, sys
j = json.loads(open(sys.argv[1]).readline())
assert j["encoding"] == "base64" and base64.b64decode(j["value"]) == open(sys.argv[2], "rb").read()
PY
head -c 1000 /dev/zero | tr '\0' x > "$T/v1000"
head -c 1001 /dev/zero | tr '\0' x > "$T/v1001"
expect_rc 0 "a 1000-byte value" as_a dht put "$(cat "$T/v1000")"
expect_rc 0 "get the 1000-byte value" as_b dht get "$(blake2b "$T/v1000")" --timeout 20
cmp -s "$T/out" "$T/v1000" || fail "the 1000-byte value did not come back"
expect_rc 2 "a 1001-byte value" as_a dht put "$(cat "$T/v1001")"
expect_err "at most 1000" "the message says how large a value may be"
[ -s "$T/out" ] && fail "a refused put printed a hash"
expect_rc 2 "a 1001-byte value from stdin" as_a dht put < "$T/v1001"
expect_err "larger than 1000 bytes" "the message says stdin is too large"
expect_rc 1 "the 1001-byte value was not stored" as_b dht get "$(blake2b "$T/v1001")" --timeout 20
expect_rc 1 "get of an unknown hash" as_b dht get "$(printf '%064d' 7)" --timeout 20
expect_err "no value" "the message says there is no value"
expect_rc 1 "get of an unknown hash --json" as_b --json dht get "$(printf '%064d' 7)" --timeout 20
[ "$(json 'j["code"], j["exitCode"]' < "$T/err")" = "('not_found', 1)" ] || fail "JSON error: $(cat "$T/err")"

expect_rc 0 "put --mutable v1" as_a dht put --mutable v1
MKEY=$(cat "$T/out")
[ "$MKEY" = "$KEY" ] || fail "put --mutable printed '$MKEY', not the identity's key $KEY"
expect_err "stored sequence 0 " "the first mutable put is sequence 0"
expect_rc 0 "put --mutable v2" as_a dht put --mutable v2
expect_err "stored sequence 1 " "the next mutable put is sequence 1"
expect_rc 0 "get --mutable" as_b dht get --mutable "$MKEY" --timeout 20
[ "$(cat "$T/out")" = "v2" ] || fail "get --mutable: '$(cat "$T/out")', expected v2"
expect_rc 0 "get --mutable --json" as_b --json dht get --mutable "$MKEY" --timeout 20
python3 - "$T/out" "$MKEY" <<'PY' || fail "get --mutable --json: $(cat "$T/out")"
import json, re, sys
j = json.loads(open(sys.argv[1]).readline())
assert j["publicKey"] == sys.argv[2] and j["seq"] == 1 and j["value"] == "v2"
assert re.fullmatch("[0-9a-f]{128}", j["signature"])
PY
expect_rc 1 "put --mutable with a sequence number below the stored one" as_a dht put --mutable x --seq 0
expect_err "sequence number" "the message names the sequence number"
expect_rc 1 "put --mutable reusing a sequence number" as_a dht put --mutable x --seq 1
expect_err "sequence number" "the message names the sequence number"
expect_rc 0 "the same value at the same sequence number" as_a dht put --mutable v2 --seq 1
expect_rc 1 "get --mutable --seq above the stored one" as_b dht get --mutable "$MKEY" --seq 2 --timeout 20
expect_rc 1 "get --mutable of a key with no record" as_b dht get --mutable "$(printf '%064d' 7)" --timeout 20
expect_err "no mutable value" "the message says there is no value"
step "6. immutable records byte for byte (text, newlines, binary, 1000 bytes), 1001 refused; mutable seq 0, 1, refusals"

# --- usage errors -------------------------------------------------------------
expect_rc 2 "dht without a subcommand" "$P2P" dht
expect_rc 2 "lookup without a topic" as_b dht lookup
expect_rc 2 "announce without a topic" as_b dht announce
expect_rc 2 "get of something not hex" as_b dht get nothex
expect_err "not a hash" "the message says what a hash is"
expect_rc 2 "get of a short hash" as_b dht get abcd
expect_rc 2 "get --mutable of something not a key" as_b dht get --mutable nothex
expect_rc 2 "ping without an address" "$P2P" dht ping
expect_rc 2 "ping of something not HOST:PORT" "$P2P" dht ping nonsense
expect_rc 2 "a --bootstrap that is not HOST:PORT" as_b dht lookup x --bootstrap nonsense
expect_rc 2 "a --host that is not IPv4" "$P2P" dht bootstrap --host foo
expect_rc 2 "a usage error as JSON" as_b --json dht get nothex
[ "$(json 'j["exitCode"]' < "$T/err")" = 2 ] || fail "JSON usage error: $(cat "$T/err")"
expect_rc 1 "ping of a port nobody listens on" "$P2P" dht ping 127.0.0.1:9 --timeout 1
expect_rc 1 "a node on a port in use" timeout 10 "$P2P" dht bootstrap --host 127.0.0.1 --port "${FIRST#*:}"
expect_err "in use" "the message says the port is in use"
# A one-shot command interrupted by SIGINT exits 130 (here waiting, without limit, on a dead node).
P2P_HOME="$T/fresh" "$P2P" dht lookup x --bootstrap 127.0.0.1:9 --timeout 0 > /dev/null 2> "$T/err" &
L=$!
PIDS+=("$L")
for _ in $(seq 1 50); do  # until it handles SIGINT (SigCgt bit 2), where /proc tells
  [ -r "/proc/$L/status" ] || { sleep 0.5; break; }
  (( 0x$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$L/status") & 2 )) && break
  sleep 0.1
done
stop_rc "$L" INT 5
[ "$RC" = 130 ] || fail "a lookup interrupted by SIGINT exited $RC, expected 130"
expect_err "interrupted" "the message says it was interrupted"
step "usage errors exit 2; a ping nobody answers and a port in use exit 1; SIGINT on a one-shot command 130"

# --- 7. the nodes a client remembers ----------------------------------------------
[ -s "$T/b/dht-nodes" ] || fail "client B's home has no dht-nodes file"
n=$(wc -l < "$T/b/dht-nodes")
if [ "$n" -lt 1 ] || [ "$n" -gt 64 ]; then fail "dht-nodes has $n lines"; fi
known=" ${ADDR[*]} "
while read -r line; do
  [[ "$line" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "dht-nodes line '$line' is not HOST:PORT"
  [[ "$known" == *" $line "* ]] || fail "dht-nodes names $line, not one of the network's nodes"
done < "$T/b/dht-nodes"
[ -e "$T/fresh/dht-nodes" ] && fail "a client without a home wrote dht-nodes"
step "7. client B remembers $n nodes in dht-nodes"

for i in $(seq 0 $((NODES - 1))); do
  if grep -q "Sanitizer\|runtime error" "$T/node$i.err"; then fail "node $i: $(grep -m 3 "Sanitizer\|runtime error" "$T/node$i.err")"; fi
done
stop_rc "${NODE_PID[0]}" INT 5
[ "$RC" = 0 ] || fail "the first node exited $RC on SIGINT, expected 0"
stop_rc "${NODE_PID[2]}" TERM 5
[ "$RC" = 0 ] || fail "node 2 exited $RC on SIGTERM, expected 0"
step "nodes stop with exit 0 on SIGINT and SIGTERM"
echo "dht test: passed in $((SECONDS - START)) s"
