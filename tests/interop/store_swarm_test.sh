#!/usr/bin/env bash
# Corestore replication through the DHT, p2p and JavaScript (corestore 7 on
# hyperswarm 4.17.2 / hyperdht 6.34.0) on a hyperdht testnet on 127.0.0.1:
#   JavaScript serves a core on its discovery key -> p2p core get --from KEY
#   p2p seed (on the DHT)                          -> JavaScript reads a block
# Environment: P2P. Exit: 0 pass, 1 failure, 77 skipped (no node).
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P2P="${P2P:?set P2P to the p2p binary}"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null 2>&1 || skip "node is not installed"
[ -d "$HERE/node_modules/hyperswarm" ] && [ -d "$HERE/node_modules/corestore" ] ||
  (cd "$HERE" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) ||
  skip "npm ci failed (no registry?)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2p-store-swarm.XXXXXX")" || fail "mktemp failed"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_line() {  # FILE: waits (bounded) for a first line
  for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

node "$HERE/swarm-peer.mjs" testnet 4 > "$WORK/testnet.out" 2> "$WORK/testnet.err" < /dev/zero &
PIDS+=($!)
wait_line "$WORK/testnet.out" || { cat "$WORK/testnet.err"; fail "the JavaScript testnet did not start"; }
BOOT="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["bootstrap"])' "$WORK/testnet.out")"
export P2P_BOOTSTRAP="$BOOT"
echo "testnet: $BOOT"

# JavaScript serves, p2p reads.
node "$HERE/store-swarm-peer.mjs" serve "$BOOT" "$WORK/js-store" > "$WORK/serve.out" 2> "$WORK/serve.err" &
PIDS+=($!)
wait_line "$WORK/serve.out" || { cat "$WORK/serve.err"; fail "the JavaScript core was not served"; }
KEY="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["key"])' "$WORK/serve.out")"
got="$(P2P_HOME="$WORK/p2p-reader" timeout 60 "$P2P" core get --from "$KEY" 0 --timeout 30 2> "$WORK/get.err")" ||
  { cat "$WORK/get.err" "$WORK/serve.err"; fail "p2p core get --from (through the DHT) failed"; }
[ "$got" = "from javascript 0" ] || fail "p2p read '$got' from the JavaScript core"
echo "  ok: p2p core get --from reads a JavaScript corestore found through the DHT"

# p2p seeds on the DHT, JavaScript reads.
printf 'from p2p 0\n' | P2P_HOME="$WORK/p2p-writer" "$P2P" core append interop --lines 2>/dev/null ||
  fail "p2p core append failed"
PKEY="$(P2P_HOME="$WORK/p2p-writer" "$P2P" --json core info interop | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
P2P_HOME="$WORK/p2p-writer" "$P2P" seed > "$WORK/seed.out" 2> "$WORK/seed.err" &
PIDS+=($!)
wait_line "$WORK/seed.out" || { cat "$WORK/seed.err"; fail "p2p seed did not start"; }
out="$(timeout 60 node "$HERE/store-swarm-peer.mjs" read "$BOOT" "$WORK/js-reader" "$PKEY" 2> "$WORK/read.err")" ||
  { cat "$WORK/read.err" "$WORK/seed.err"; fail "JavaScript could not read the core p2p seeds on the DHT"; }
block="$(echo "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["block"])')"
[ "$block" = "from p2p 0" ] || fail "JavaScript read '$block' from p2p's core"
echo "  ok: JavaScript corestore on hyperswarm reads a core p2p seeds on the DHT"
echo "PASS: corestore replication through the DHT, both ways"
