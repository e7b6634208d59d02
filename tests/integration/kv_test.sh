#!/usr/bin/env bash
# p2p kv as scripts use it: values, binary data through stdin, ranges,
# versions, import/export round trips, exit codes.
source "$(dirname "$0")/lib.sh"

for cmd in "kv" "kv put" "kv get" "kv del" "kv list" "kv import" "kv export" "kv version" "kv diff" \
           "kv history" "kv info"; do
  # shellcheck disable=SC2086
  expect_exit 0 "p2p $cmd --help" -- "$P2P" $cmd --help
done
expect_exit 2 "kv without subcommand" -- "$P2P" kv
expect_exit 2 "put without key" -- "$P2P" kv put

# Reading a store that does not exist yet.
expect_exit 1 "get from an empty home" -- "$P2P" kv get a
expect_grep "no key-value store named 'default'" "$T/err" "missing store message"
expect_exit 0 "list of a missing store is empty" -- "$P2P" kv list
expect_eq "$(cat "$T/out")" "" "empty list"
expect_exit 0 "version of a missing store" -- "$P2P" kv version
expect_eq "$(cat "$T/out")" "1" "empty version"

expect_exit 0 "put" -- "$P2P" kv put greeting "hello world"
expect_exit 0 "get" -- "$P2P" kv get greeting
expect_eq "$(cat "$T/out")" "hello world" "value, no newline off a TTY"
expect_eq "$(wc -c < "$T/out")" 11 "exact bytes"
expect_exit 1 "get missing" -- "$P2P" kv get nope
expect_grep "not found" "$T/err" "not found message"
expect_exit 1 "get missing --json" -- "$P2P" --json kv get nope
expect_eq "$(json_field code < "$T/err")" "not_found" "JSON not_found"

head -c 300000 /dev/urandom > "$T/blob"
expect_exit 0 "binary value from stdin" -- sh -c "\"$P2P\" kv put blob < \"$T/blob\""
"$P2P" kv get blob > "$T/back"
cmp -s "$T/blob" "$T/back" || { echo "FAIL: binary round trip"; failures=$((failures + 1)); }
expect_exit 0 "'-' reads stdin" -- sh -c "printf 'from stdin' | \"$P2P\" kv put dash -"
expect_eq "$("$P2P" kv get dash)" "from stdin" "dash value"
expect_exit 0 "empty value" -- "$P2P" kv put empty ""
expect_exit 0 "get empty value" -- "$P2P" kv get empty
expect_eq "$(wc -c < "$T/out")" 0 "empty value is empty"
expect_exit 0 "binary as JSON" -- "$P2P" --json kv get blob
expect_eq "$(json_field encoding < "$T/out")" "base64" "binary value is base64 in JSON"

# Limits: nothing is written beyond them.
v_before=$("$P2P" kv version)
head -c 5000 /dev/zero | tr '\0' k > "$T/bigkey"
expect_exit 2 "oversized key" -- "$P2P" kv put "$(cat "$T/bigkey")" v
expect_grep "4096" "$T/err" "key limit in message"
head -c $((8 * 1024 * 1024 + 1)) /dev/zero > "$T/bigvalue"
expect_exit 2 "oversized value" -- sh -c "\"$P2P\" kv put big < \"$T/bigvalue\""
expect_grep "8 MiB" "$T/err" "value limit in message"
expect_eq "$("$P2P" kv version)" "$v_before" "nothing written past the limits"

# del
expect_exit 0 "del" -- "$P2P" kv del dash
expect_exit 1 "get after del" -- "$P2P" kv get dash
expect_exit 1 "del missing" -- "$P2P" kv del dash
expect_exit 0 "del missing --force" -- "$P2P" kv del dash --force

# list and ranges in their own store
for k in apple apricot banana blueberry cherry; do "$P2P" kv --db fruit put "$k" "v-$k" 2> /dev/null; done
expect_eq "$("$P2P" kv --db fruit list --keys | tr '\n' ' ')" "apple apricot banana blueberry cherry " "list keys in order"
expect_eq "$("$P2P" kv --db fruit list --prefix b --keys | tr '\n' ' ')" "banana blueberry " "prefix"
expect_eq "$("$P2P" kv --db fruit list --gt apricot --lte blueberry --keys | tr '\n' ' ')" "banana blueberry " "gt/lte"
expect_eq "$("$P2P" kv --db fruit list --gte apricot --lt banana --keys | tr '\n' ' ')" "apricot " "gte/lt"
expect_eq "$("$P2P" kv --db fruit list --reverse --limit 2 --keys | tr '\n' ' ')" "cherry blueberry " "reverse limit"
expect_eq "$("$P2P" kv --db fruit list --limit 1)" "$(printf 'apple\tv-apple')" "tsv line"
expect_exit 2 "gt and gte together" -- "$P2P" kv --db fruit list --gt a --gte b
expect_exit 0 "list --json" -- "$P2P" --json kv --db fruit list --limit 1
expect_eq "$(json_field key < "$T/out")" "apple" "json key"
expect_eq "$(json_field value < "$T/out")" "v-apple" "json value"

# versions, --at, diff, history
expect_eq "$("$P2P" kv --db fruit version)" 6 "version = header + 5 puts"
"$P2P" kv --db fruit put apple green 2> /dev/null
"$P2P" kv --db fruit del cherry 2> /dev/null
"$P2P" kv --db fruit put date sweet 2> /dev/null
expect_eq "$("$P2P" kv --db fruit get apple --at 6)" "v-apple" "checkout"
expect_eq "$("$P2P" kv --db fruit list --at 3 --keys | tr '\n' ' ')" "apple apricot " "list --at"
expect_exit 1 "--at beyond the version" -- "$P2P" kv --db fruit get apple --at 99
expect_exit 0 "diff" -- "$P2P" kv --db fruit diff 6 9
expect_eq "$(cat "$T/out" | tr '\n' '|')" "$(printf '~ apple\tgreen|- cherry|+ date\tsweet|')" "diff lines"
expect_exit 0 "diff --json" -- "$P2P" --json kv --db fruit diff 6 9
expect_eq "$(head -1 "$T/out" | json_field op)" "change" "diff op"
expect_eq "$(head -1 "$T/out" | json_field previous)" "v-apple" "diff previous"
expect_exit 0 "history" -- "$P2P" kv --db fruit history --since 6
expect_eq "$(cat "$T/out" | tr '\n' '|')" "$(printf '6\tput\tapple\tgreen|7\tdel\tcherry|8\tput\tdate\tsweet|')" "history lines"

# info: how a store is shared
expect_exit 0 "info --json" -- "$P2P" --json kv --db fruit info
key=$(json_field key < "$T/out")
id=$(json_field id < "$T/out")
expect_eq "$(json_field version < "$T/out")" 9 "info version"
expect_eq "$(json_field link < "$T/out")" "p2p://$id" "info link"
expect_exit 0 "read by key" -- "$P2P" kv --key "$key" get date
expect_eq "$(cat "$T/out")" "sweet" "read by key"
expect_exit 0 "read by link" -- "$P2P" kv --key "p2p://$id" list --keys
expect_exit 2 "write by key is refused" -- "$P2P" kv --key "$key" put x y
expect_exit 2 "malformed key" -- "$P2P" kv --key "p2p://zzz" get x

# export | import round trip, binary included, into another store
expect_exit 0 "export" -- "$P2P" kv export
cp "$T/out" "$T/export.jsonl"
expect_exit 0 "import" -- sh -c "\"$P2P\" kv --db copy import < \"$T/export.jsonl\""
expect_grep "imported 3 entries" "$T/err" "import count"
"$P2P" kv --db copy export > "$T/export2.jsonl"
cmp -s "$T/export.jsonl" "$T/export2.jsonl" || { echo "FAIL: export | import round trip"; failures=$((failures + 1)); }
"$P2P" kv --db copy get blob > "$T/back2"
cmp -s "$T/blob" "$T/back2" || { echo "FAIL: binary survives export/import"; failures=$((failures + 1)); }

# TSV import with escapes, and list output re-imports.
printf 'tab\\tkey\tline1\\nline2\nplain\tvalue\n' > "$T/in.tsv"
expect_exit 0 "tsv import" -- sh -c "\"$P2P\" kv --db tsv import < \"$T/in.tsv\""
expect_eq "$("$P2P" kv --db tsv get "$(printf 'tab\tkey')")" "$(printf 'line1\nline2')" "tsv escapes decoded"
"$P2P" kv --db tsv list > "$T/list.tsv"
expect_exit 0 "list output imports" -- sh -c "\"$P2P\" kv --db tsv2 import < \"$T/list.tsv\""
expect_eq "$("$P2P" kv --db tsv2 list)" "$("$P2P" kv --db tsv list)" "list | import round trip"

printf '{"key":"a","value":"1"}\nnot a record\n' > "$T/bad.txt"
expect_exit 2 "bad import line" -- sh -c "\"$P2P\" kv --db bad import < \"$T/bad.txt\""
expect_grep "line 2" "$T/err" "names the bad line"
expect_exit 2 "bad base64" -- sh -c "echo '{\"key\":\"a\",\"value\":\"!!\",\"encoding\":\"base64\"}' | \"$P2P\" kv --db bad import"

# A large import commits in batches and reports progress under --json.
seq 1 25000 | awk '{printf "k%06d\tv%d\n", $1, $1}' > "$T/big.tsv"
expect_exit 0 "large import" -- sh -c "\"$P2P\" --json kv --db big import < \"$T/big.tsv\""
expect_eq "$(grep -c committed "$T/out")" 5 "five committed batches of 5000"
expect_eq "$(tail -1 "$T/out" | json_field imported)" 25000 "imported count"
expect_eq "$("$P2P" kv --db big get k012345)" "v12345" "imported value"
expect_eq "$("$P2P" kv --db big list --keys | wc -l)" 25000 "all keys listed"

finish
