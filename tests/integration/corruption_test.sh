#!/usr/bin/env bash
# A damaged store is detected with a clear error naming the core and index,
# never a crash: flipped bytes in a block, a truncated data file, a damaged
# identity file.
source "$(dirname "$0")/lib.sh"

for i in $(seq 0 19); do printf 'MARKER-%04d-payload-%s\n' "$i" "$(printf '%0200d' "$i")"; done |
  "$P2P" core append victim --lines 2> /dev/null
expect_exit 0 "intact core verifies" -- "$P2P" core verify victim

# Flip one byte inside block 7's bytes in the LMDB file (values are stored in place).
python3 - "$P2P_HOME/data.mdb" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
at = data.find(b"MARKER-0007-payload")
assert at >= 0, "block 7 not found in the data file"
data[at + 30] ^= 0x01
open(path, "r+b").write(data)
PY
expect_exit 1 "damaged block on get" -- "$P2P" core get victim 7
expect_grep "block 7" "$T/err" "error names the index"
expect_grep "$("$P2P" --json core info victim | json_field id | cut -c1-12)" "$T/err" "error names the core"
expect_exit 0 "other blocks still readable" -- "$P2P" core get victim 6
expect_exit 1 "verify finds it" -- "$P2P" core verify victim
expect_grep "block 7" "$T/err" "verify names the index"
expect_exit 1 "verify as JSON" -- "$P2P" --json core verify victim
expect_eq "$(json_field code < "$T/err")" "corruption" "JSON corruption code"

# A truncated data file is refused before LMDB can fault on the missing pages.
for i in $(seq 1 300); do head -c 4000 /dev/urandom | base64 -w0; echo; done | "$P2P" core append filler --lines 2> /dev/null
size=$(stat -c %s "$P2P_HOME/data.mdb")
cp "$P2P_HOME/data.mdb" "$T/data.backup"
truncate -s $((size / 3)) "$P2P_HOME/data.mdb"
expect_exit 1 "truncated store" -- "$P2P" core info victim
expect_grep "truncated" "$T/err" "truncation message"
cp "$T/data.backup" "$P2P_HOME/data.mdb"
expect_exit 0 "restored store opens" -- "$P2P" core info filler

# A damaged identity file.
cp "$P2P_HOME/identity" "$T/identity.backup"
echo "garbage" > "$P2P_HOME/identity"
expect_exit 1 "damaged identity" -- "$P2P" core append victim more
expect_grep "identity is damaged" "$T/err" "identity damage message"
cp "$T/identity.backup" "$P2P_HOME/identity"

# Random garbage as the data file.
head -c 100000 /dev/urandom > "$P2P_HOME/data.mdb"
expect_exit 1 "garbage store" -- "$P2P" core list
checks=$((checks + 1))
[ -s "$T/err" ] || { echo "FAIL: no message for a garbage store"; failures=$((failures + 1)); }

finish
