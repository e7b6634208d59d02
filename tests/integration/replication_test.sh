#!/usr/bin/env bash
# Replication between p2p processes over TCP on 127.0.0.1, and what a seeder
# survives: garbage bytes, truncated frames, huge lengths, a bad capability,
# malformed messages, floods of invalid requests; a reader refuses tampered
# blocks, bad signatures and bad tree nodes from a lying peer; 50 concurrent
# readers all finish; a download killed halfway resumes without fetching
# again what it has.
source "$(dirname "$0")/lib.sh"
: "${EVIL_PEER:?set EVIL_PEER to the evil_peer binary}"
export P2P_MAP_SIZE_GB=1
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT

S="$T/seeder"
# 3000 blocks of about 1 KiB.
python3 -c "
import sys
for i in range(3000): sys.stdout.write(('%06d' % i) * 170 + '\n')" | "$P2P" --home "$S" -q core append data --lines
KEY=$("$P2P" --home "$S" --json core info data | json_field key)
block() { python3 -c "import sys; sys.stdout.write(('%06d' % $1) * 170)"; }

# An app staged on the seeder's machine, to run elsewhere.
app="$T/app"
"$P2P" --home "$S" -q init "$app"
printf '#!/bin/sh\necho "remote args: $*"\nexit 5\n' > "$app/main.sh"
LINK=$(cd "$app" && "$P2P" --home "$S" --json stage 2> /dev/null | tail -n 1 | json_field link)

# A drive with a file of many blocks.
head -c 3000000 /dev/urandom > "$T/big.bin"
"$P2P" --home "$S" -q drive put "$T/big.bin" /big.bin
DRIVE=$("$P2P" --home "$S" --json drive info | json_field key)

"$P2P" --home "$S" seed data "$LINK" default --listen 127.0.0.1:0 > "$T/seed.out" 2> "$T/seed.err" &
SEED=$!
PIDS+=($SEED)
for _ in $(seq 1 100); do grep -q 'on 127.0.0.1:' "$T/seed.out" && break; sleep 0.1; done
PORT=$(sed -n 's/.*on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/seed.out")
ADDR="127.0.0.1:$PORT"
expect_grep "seeding 5 cores on 127.0.0.1:" "$T/seed.out" "seed reports where it listens (a core, an app's two, a drive's two)"

# --- a good reader ----------------------------------------------------------
R="$T/reader"
expect_exit 0 "core get --peer" -- "$P2P" --home "$R" core get "$KEY" 1234 --peer "$ADDR" -v
expect_eq "$(cat "$T/out")" "$(block 1234)" "block fetched from the seeder"
expect_grep "fetched [0-9]* block" "$T/err" "--verbose reports what was fetched"
expect_exit 0 "the block reads offline afterwards" -- "$P2P" --home "$R" core get "$KEY" 1234
expect_exit 1 "a block never fetched is not there offline" -- "$P2P" --home "$R" core get "$KEY" 1235
expect_grep "not stored here" "$T/err" "the message says the block is not local"
expect_exit 1 "a block past the end" -- "$P2P" --home "$R" core get "$KEY" 3000 --peer "$ADDR"
expect_exit 1 "a core the seeder lacks" -- "$P2P" --home "$R" core get "$(printf '%064d' 7)" 0 --peer "$ADDR"
expect_grep "does not have core" "$T/err" "the message says the peer lacks the core"
expect_exit 1 "nobody listening" -- "$P2P" --home "$R" core get "$KEY" 0 --peer 127.0.0.1:1
expect_grep "cannot connect" "$T/err" "the message says the connection failed"
# Without --peer the DHT is asked (a private, empty one here: never the public nodes).
expect_exit 1 "--from without --peer and no peer on the DHT" -- \
  "$P2P" --home "$R" --bootstrap 127.0.0.1:1 core get --from "$KEY" 0 --timeout 2
expect_grep "no peer holding" "$T/err" "the message names what was looked for"
expect_exit 2 "a bad address" -- "$P2P" --home "$R" core get "$KEY" 0 --peer nonsense

# --- a drive's file of many blocks ---------------------------------------------
expect_exit 0 "drive get --from --peer" -- "$P2P" --home "$R" drive get -v --from "$DRIVE" --peer "$ADDR" /big.bin "$T/big.out"
expect_grep "fetched [0-9]* blocks" "$T/err" "drive get -v reports what was fetched"
expect_exit 0 "the file arrived whole" -- cmp "$T/big.bin" "$T/big.out"
expect_exit 0 "drive ls --from --peer" -- "$P2P" --home "$R" drive ls --from "$DRIVE" --peer "$ADDR"
expect_eq "$(cat "$T/out")" "big.bin" "the remote drive's listing"

# --- an app staged and seeded elsewhere runs here --------------------------
expect_exit 0 "info of a remote app" -- "$P2P" --home "$R" --json info "$LINK" --peer "$ADDR"
expect_eq "$(json_field files < "$T/out")" "2" "the remote app's files"
expect_exit 5 "run a remote app" -- "$P2P" --home "$R" run "$LINK" --peer "$ADDR" -- z
expect_eq "$(cat "$T/out")" "remote args: z" "the remote app ran with its arguments"
expect_exit 5 "the app runs offline afterwards" -- "$P2P" --home "$R" run "$LINK" -- w

# --- garbage on the wire: the seeder drops the peer and goes on -------------
raw() {  # raw MODE: connect and send something broken
  python3 - "$PORT" "$1" <<'PY'
import os, socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if mode == "random": s.sendall(os.urandom(65536))
elif mode == "huge": s.sendall(b"\xff\xff\xff" + os.urandom(1000))     # claims a 16 MiB frame, then stops
elif mode == "truncated": s.sendall(b"\x20\x00\x00" + os.urandom(10))  # a 32-byte frame cut short
elif mode == "zero": s.sendall(b"\x00\x00\x00" * 1000)                 # empty handshake frames
elif mode == "bad-handshake": s.sendall(b"\x20\x00\x00" + os.urandom(32) + b"\x60\x00\x00" + os.urandom(96))
time.sleep(0.2)
s.close()
PY
}
for mode in random huge truncated zero bad-handshake; do
  raw "$mode"
  checks=$((checks + 1))
  kill -0 "$SEED" 2>/dev/null || { echo "FAIL: the seeder died after '$mode' bytes"; failures=$((failures + 1)); }
done
for mode in bad-capability garbage-frames invalid-requests huge-request; do
  expect_exit 0 "the seeder disconnects a peer sending $mode" -- "$EVIL_PEER" attack "$ADDR" "$KEY" "$mode"
done
expect_exit 0 "the seeder still serves a good peer" -- "$P2P" --home "$R" core get "$KEY" 2999 --peer "$ADDR"
expect_eq "$(cat "$T/out")" "$(block 2999)" "good block after the attacks"
expect_grep "left: .*(" "$T/seed.out" "the seeder logs why it dropped a peer"

# --- 50 concurrent readers --------------------------------------------------
for i in $(seq 1 50); do
  "$P2P" --home "$T/r$i" -q core download "$KEY" --peer "$ADDR" --end 500 > /dev/null 2> "$T/r$i.err" &
  READERS+=($!)
done
ok=0
for p in "${READERS[@]}"; do wait "$p" && ok=$((ok + 1)); done
expect_eq "$ok" "50" "50 concurrent readers all finish"
expect_exit 0 "a concurrent reader's copy verifies" -- "$P2P" --home "$T/r17" core get "$KEY" 499
expect_eq "$(cat "$T/out")" "$(block 499)" "a concurrent reader got the right block"

# --- a download cut off halfway resumes -------------------------------------
D="$T/resume"
"$P2P" --home "$D" core download "$KEY" --peer "$ADDR" > /dev/null 2>&1 &
DL=$!
for _ in $(seq 1 100); do  # wait until some blocks are stored, then kill -9
  n=$("$P2P" --home "$D" --json core info "$KEY" 2>/dev/null | json_field length 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && break
  sleep 0.02
done
kill -9 "$DL" 2>/dev/null
wait "$DL" 2>/dev/null
expect_exit 0 "the resumed download" -- "$P2P" --home "$D" --json core download "$KEY" --peer "$ADDR"
fetched=$(json_field fetched < "$T/out")
had=$(json_field had < "$T/out")
expect_eq "$((fetched + had))" "3000" "fetched + already there = every block"
checks=$((checks + 1))
[ "$had" -gt 0 ] || { echo "FAIL: the resumed download fetched everything again (had=$had)"; failures=$((failures + 1)); }
expect_exit 0 "the downloaded core verifies" -- "$P2P" --home "$D" core verify "$KEY"
expect_exit 0 "a second download fetches nothing" -- "$P2P" --home "$D" --json core download "$KEY" --peer "$ADDR"
expect_eq "$(json_field fetched < "$T/out")" "0" "nothing left to fetch"

# --- live updates: appends by another process reach a connected reader --------
"$P2P" --home "$S" -q core append data "appended while seeding"
expect_exit 0 "a new block appended while seeding" -- "$P2P" --home "$R" core get "$KEY" 3000 --peer "$ADDR"
expect_eq "$(cat "$T/out")" "appended while seeding" "the appended block"

# --- a lying peer: nothing it sends is stored --------------------------------
for mode in flip-block bad-signature bad-node; do
  "$EVIL_PEER" serve "$S" data "$mode" > "$T/evil.out" 2>&1 &
  EVIL=$!
  PIDS+=($EVIL)
  for _ in $(seq 1 50); do grep -q '^port' "$T/evil.out" && break; sleep 0.1; done
  EPORT=$(sed -n 's/^port //p' "$T/evil.out")
  E="$T/victim-$mode"
  expect_exit 1 "a reader refuses $mode data" -- "$P2P" --home "$E" core get "$KEY" 42 --peer "127.0.0.1:$EPORT"
  expect_grep "verif\|invalid\|checksum\|signature" "$T/err" "the $mode error says what failed"
  expect_exit 1 "nothing from the $mode peer was stored" -- "$P2P" --home "$E" core get "$KEY" 42
  kill "$EVIL" 2>/dev/null
  wait "$EVIL" 2>/dev/null
done

# --- seed stops cleanly ---------------------------------------------------------
kill -INT "$SEED"
wait "$SEED"
expect_eq "$?" "0" "p2p seed exits 0 on SIGINT"
finish
