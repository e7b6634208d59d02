#!/usr/bin/env bash
# The p2p command as a script sees it: output, --json shapes and exit codes.
source "$(dirname "$0")/lib.sh"

# --- help, version, usage errors ----------------------------------------------
for cmd in "" "id" "id create" "id show" "id export" "id import" "core" "core append" "core get" \
           "core info" "core list" "core verify"; do
  # shellcheck disable=SC2086
  expect_exit 0 "p2p $cmd --help" -- "$P2P" $cmd --help && expect_grep "Usage" "$T/out" "help of '$cmd'"
done
expect_exit 0 "--version" -- "$P2P" --version
expect_grep "^p2p [0-9]" "$T/out" "version line"
expect_exit 2 "no subcommand" -- "$P2P"
expect_exit 2 "unknown subcommand" -- "$P2P" frobnicate
expect_exit 2 "core without subcommand" -- "$P2P" core
expect_exit 2 "missing argument" -- "$P2P" core get
expect_exit 2 "non-numeric index" -- "$P2P" core get log x
expect_exit 2 "negative index" -- "$P2P" core get log -1
expect_exit 2 "unknown option" -- "$P2P" core list --bogus
expect_exit 2 "usage error as JSON" -- "$P2P" --json core get
expect_eq "$(json_field code < "$T/err")" "usage" "JSON usage error code"

# --- a fresh home: the first write creates the identity, once ------------------
expect_exit 0 "first append" -- "$P2P" core append log hello
expect_grep "created a new identity" "$T/err" "identity notice"
expect_exit 0 "second append" -- "$P2P" core append log world
checks=$((checks + 1)); grep -q "created a new identity" "$T/err" && { echo "FAIL: identity notice repeated"; failures=$((failures + 1)); }
[ "$(stat -c %a "$P2P_HOME/identity")" = 600 ] || { echo "FAIL: identity file mode"; failures=$((failures + 1)); }

expect_exit 0 "get block 1" -- "$P2P" core get log 1
expect_eq "$(cat "$T/out")" "world" "block 1 content (no newline when not a TTY)"
expect_eq "$(wc -c < "$T/out")" "5" "exact bytes"
expect_exit 1 "get beyond length" -- "$P2P" core get log 2
expect_grep "beyond the length" "$T/err" "beyond length message"
expect_exit 1 "missing core" -- "$P2P" core get nothing 0
expect_grep "no core named 'nothing'" "$T/err" "missing core message"
expect_exit 1 "missing core as JSON" -- "$P2P" --json core info nothing
expect_eq "$(json_field code < "$T/err")" "not_found" "JSON not_found"
expect_eq "$(json_field exitCode < "$T/err")" "1" "JSON exit code"

# --- stdin, binary data, --lines ---------------------------------------------
head -c 100000 /dev/urandom > "$T/blob"
expect_exit 0 "append binary from stdin" -- sh -c "\"$P2P\" core append bin < \"$T/blob\""
expect_exit 0 "append '-' reads stdin" -- sh -c "printf 'abc' | \"$P2P\" core append bin -"
"$P2P" core get bin 0 > "$T/back"
cmp -s "$T/blob" "$T/back" || { echo "FAIL: binary round trip"; failures=$((failures + 1)); }
expect_eq "$("$P2P" core get bin 1)" "abc" "stdin '-'"
expect_exit 0 "binary as JSON" -- "$P2P" --json core get bin 0
expect_eq "$(json_field encoding < "$T/out")" "base64" "binary value is base64"
python3 - "$T/out" "$T/blob" <<'PY' || { echo "FAIL: base64 value"; failures=$((failures + 1)); }
import base64, json, sys
v = json.load(open(sys.argv[1]))
assert base64.b64decode(v["value"]) == open(sys.argv[2], "rb").read()
PY
expect_exit 0 "utf-8 as JSON" -- "$P2P" --json core get log 0
expect_eq "$(json_field value < "$T/out")" "hello" "text value"

expect_exit 0 "--lines from stdin" -- sh -c "printf 'one\ntwo\n\nfour' | \"$P2P\" --json core append lines --lines"
expect_eq "$(json_field appended < "$T/out")" "4" "four lines, one empty"
expect_eq "$("$P2P" core get lines 3)" "four" "last line without newline"
expect_eq "$("$P2P" core get lines 2 | wc -c)" "0" "empty line is an empty block"
seq 1 10000 | "$P2P" core append many --lines 2> "$T/err"
expect_grep "appended 10000 blocks" "$T/err" "10000 lines message"
expect_eq "$("$P2P" core get many 9999)" "10000" "line 10000"
expect_exit 0 "--lines with DATA" -- "$P2P" --json core append dl --lines $'x\ny'
expect_eq "$(json_field appended < "$T/out")" "2" "DATA split into lines"

head -c $((16 * 1024 * 1024 + 1)) /dev/zero > "$T/huge"
expect_exit 2 "block over the limit" -- sh -c "\"$P2P\" core append big < \"$T/huge\""
expect_grep "16 MiB" "$T/err" "limit message"

# --- info, list, verify, keys ------------------------------------------------
expect_exit 0 "info --json" -- "$P2P" --json core info log
info=$(cat "$T/out")
key=$(json_field key <<< "$info")
id=$(json_field id <<< "$info")
expect_eq "${#key}" 64 "hex key"
expect_eq "${#id}" 52 "z-base-32 id"
expect_eq "$(json_field length <<< "$info")" 2 "length"
expect_eq "$(json_field byteLength <<< "$info")" 10 "byteLength"
expect_eq "$(json_field fork <<< "$info")" 0 "fork"
expect_eq "$(json_field writable <<< "$info")" true "writable"
expect_eq "$(json_field link <<< "$info")" "p2p://$id" "link"
for form in "$key" "$id" "p2p://$id" "pear://$id"; do
  expect_exit 0 "get by $form" -- "$P2P" core get "$form" 0
  expect_eq "$(cat "$T/out")" "hello" "get by key form"
done
expect_exit 2 "malformed link" -- "$P2P" core info "p2p://nonsense"
expect_grep "z-base-32" "$T/err" "accepted forms listed"
expect_exit 2 "key-like name on append" -- "$P2P" core append "$key" x
expect_exit 1 "unknown key" -- "$P2P" core info "$(printf '%064d' 0)"
expect_exit 0 "info human" -- "$P2P" core info log
expect_grep "discovery key:" "$T/out" "human info"
expect_exit 0 "list" -- "$P2P" core list
expect_grep "  2  log$" "$T/out" "list line"
expect_exit 0 "list --json" -- "$P2P" --json core list
expect_eq "$(wc -l < "$T/out")" 6 "six cores listed"
expect_exit 0 "verify" -- "$P2P" core verify many
expect_grep "10000 blocks verify" "$T/out" "verify message"

# --- identity: show, export, import, sealing ----------------------------------
expect_exit 0 "id show" -- "$P2P" id show
pub=$(cat "$T/out")
expect_exit 0 "id show --json" -- "$P2P" --json id show
expect_eq "$(json_field id < "$T/out")" "$pub" "show --json id"
expect_exit 0 "id export" -- "$P2P" id export
secret=$(cat "$T/out")
expect_eq "${#secret}" 64 "plain export is 64 hex"
expect_exit 1 "id create refuses to overwrite" -- "$P2P" id create
expect_grep "already exists" "$T/err" "create refusal message"

# The same identity elsewhere writes the same cores.
export P2P_HOME="$T/home2"
expect_exit 0 "import from stdin" -- sh -c "echo '$secret' | \"$P2P\" id import"
expect_eq "$(cat "$T/out")" "$pub" "imported identity has the same public key"
"$P2P" core append log anything 2> /dev/null
expect_eq "$("$P2P" --json core info log | json_field key)" "$key" "same name, same core key"

echo "correct horse" > "$T/pass"
echo "wrong" > "$T/wrong"
expect_exit 0 "sealed export" -- "$P2P" --passphrase-file "$T/pass" id export
sealed=$(cat "$T/out")
expect_grep "^p2p-sealed-key:" "$T/out" "sealed form"
export P2P_HOME="$T/home3"
echo "$sealed" > "$T/sealed"
expect_exit 1 "sealed import without passphrase" -- "$P2P" id import "$T/sealed"
expect_grep "passphrase" "$T/err" "asks for the passphrase"
expect_exit 1 "sealed import, wrong passphrase" -- "$P2P" --passphrase-file "$T/wrong" id import "$T/sealed"
expect_grep "wrong passphrase" "$T/err" "wrong passphrase message"
expect_exit 0 "sealed import" -- "$P2P" --passphrase-file "$T/pass" id import "$T/sealed"
expect_eq "$(cat "$T/out")" "$pub" "sealed import gives the same identity"
expect_exit 1 "sealed identity needs the passphrase to write" -- "$P2P" core append log x
expect_grep "passphrase-file" "$T/err" "says how to unlock"
expect_exit 0 "write with passphrase from the environment" -- env P2P_PASSPHRASE_FILE="$T/pass" "$P2P" core append log x
expect_exit 0 "reading needs no passphrase" -- "$P2P" core get log 0
expect_exit 0 "export --plain unlocks" -- "$P2P" --passphrase-file "$T/pass" id export --plain
expect_eq "$(cat "$T/out")" "$secret" "plain export of a sealed identity"
expect_exit 1 "import over an existing identity" -- sh -c "echo '$secret' | \"$P2P\" id import"
expect_exit 0 "import --force" -- sh -c "echo '$secret' | \"$P2P\" id import --force"
expect_exit 2 "import garbage" -- sh -c "echo 'not a key' | \"$P2P\" id import --force"
expect_exit 2 "missing passphrase file" -- "$P2P" --passphrase-file "$T/none" id export

finish
