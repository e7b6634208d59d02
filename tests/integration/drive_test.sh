#!/usr/bin/env bash
# p2p drive as scripts use it: folder round trips, large files streamed in
# bounded memory, stdin/stdout, ls/rm/info, mirror, versions, paths that
# climb above the root, read-only access by key, exit codes.
source "$(dirname "$0")/lib.sh"

# expect_lt ACTUAL LIMIT DESCRIPTION (integers)
expect_lt() {
  checks=$((checks + 1))
  if ! [ "$1" -lt "$2" ] 2> /dev/null; then
    echo "FAIL: $3: got '$1', expected less than $2"
    failures=$((failures + 1))
  fi
}

# drive_version [DRIVE OPTIONS...]: the drive's version from info --json.
drive_version() { "$P2P" --json drive "$@" info 2> /dev/null | json_field version; }

# count_changes FILE: the number of '+', '~' and '-' lines.
count_changes() { grep -c '^[-+~] ' "$1"; }

for cmd in "drive" "drive put" "drive get" "drive ls" "drive rm" "drive info" "drive mirror"; do
  # shellcheck disable=SC2086
  expect_exit 0 "p2p $cmd --help" -- "$P2P" $cmd --help
done
expect_exit 2 "drive without subcommand" -- "$P2P" drive
expect_exit 2 "put without SRC" -- "$P2P" drive put
expect_exit 2 "mirror without DIR" -- "$P2P" drive mirror

# A drive that was never written: ls is empty, the rest is not found.
expect_exit 0 "ls of a never-written drive" -- "$P2P" drive --drive never ls
expect_eq "$(cat "$T/out")" "" "never-written drive lists nothing"
expect_exit 0 "ls -r of a never-written drive" -- "$P2P" drive --drive never ls -r
expect_eq "$(cat "$T/out")" "" "never-written drive lists nothing recursively"
expect_exit 1 "info of a never-written drive" -- "$P2P" drive --drive never info
expect_grep "no drive named 'never'" "$T/err" "missing drive message"
expect_exit 1 "get from a never-written drive" -- "$P2P" drive --drive never get /x

# --- Folder -> drive -> folder round trip -----------------------------------
src="$T/tree"
mkdir -p "$src/sub/deep/deeper" "$src/ünïcødé" "$src/dir with space"
: > "$src/empty"
: > "$src/sub/deep/also-empty"
echo "deep" > "$src/sub/deep/deeper/leaf.txt"
echo "top" > "$src/sub/top.txt"
printf '#!/bin/sh\necho ok\n' > "$src/run.sh"
chmod 755 "$src/run.sh"
chmod 644 "$src/sub/top.txt"
ln -s sub/top.txt "$src/link"
ln -s ../nowhere "$src/sub/dangling"
echo "こんにちは" > "$src/ünïcødé/日本語.txt"
echo "spaced" > "$src/with space.txt"
echo "inner" > "$src/dir with space/file name.txt"
nfiles=$(find "$src" -type f -o -type l | wc -l)

expect_exit 0 "put a folder" -- "$P2P" drive --drive tree put "$src" /
expect_eq "$(grep -c '^+ ' "$T/out")" "$nfiles" "one + line per file and symlink"
expect_grep "+ /ünïcødé/日本語.txt" "$T/out" "unicode path in the drive"
expect_exit 0 "get the drive root into a folder" -- "$P2P" drive --drive tree get / "$T/tree-back"
expect_exit 0 "round trip is equal" -- diff -r --no-dereference "$src" "$T/tree-back"
expect_exit 0 "executable bit survives" -- test -x "$T/tree-back/run.sh"
expect_exit 0 "plain file stays non-executable" -- test ! -x "$T/tree-back/sub/top.txt"
expect_exit 0 "symlink stays a symlink" -- test -L "$T/tree-back/link"
expect_eq "$(readlink "$T/tree-back/sub/dangling")" "../nowhere" "dangling symlink target"
expect_eq "$(wc -c < "$T/tree-back/empty")" 0 "empty file stays empty"
expect_exit 0 "get one file into a folder" -- "$P2P" drive --drive tree get "/with space.txt" "$T/tree-back"
expect_exit 0 "get one file to a path" -- "$P2P" drive --drive tree get "/ünïcødé/日本語.txt" "$T/nihongo.txt"
expect_exit 0 "unicode file content" -- cmp "$src/ünïcødé/日本語.txt" "$T/nihongo.txt"
expect_exit 0 "put the same folder again" -- "$P2P" drive --drive tree put "$src" /
expect_eq "$(count_changes "$T/out")" 0 "re-putting an unchanged folder changes nothing"
expect_grep "$nfiles unchanged" "$T/err" "re-put reports the files unchanged"

# --- A large file streams in bounded memory ----------------------------------
if [ -x /usr/bin/time ]; then
  head -c $((200 * 1024 * 1024)) /dev/urandom > "$T/big"
  expect_exit 0 "put 200 MiB" -- /usr/bin/time -f %M -o "$T/put.rss" "$P2P" drive --drive big put "$T/big" /big.bin
  expect_grep "put /big.bin (209715200 bytes)" "$T/err" "put reports the size"
  checks=$((checks + 1))
  if grep -q $'\r' "$T/err"; then echo "FAIL: a progress bar on a stderr that is not a terminal"; failures=$((failures + 1)); fi
  # AddressSanitizer's shadow memory and quarantine inflate RSS: the bound holds for real builds.
  rss_limit=65536
  [ -n "${P2P_SANITIZED:-}" ] && { echo "note: sanitizer build, RSS bound not checked"; rss_limit=99999999; }
  expect_lt "$(tail -1 "$T/put.rss")" "$rss_limit" "peak RSS (KiB) of drive put of 200 MiB"
  expect_exit 0 "get 200 MiB" -- /usr/bin/time -f %M -o "$T/get.rss" "$P2P" drive --drive big get /big.bin "$T/big.back"
  expect_lt "$(tail -1 "$T/get.rss")" "$rss_limit" "peak RSS (KiB) of drive get of 200 MiB"
  expect_exit 0 "200 MiB round trip" -- cmp "$T/big" "$T/big.back"
  rm -f "$T/big.back"
  expect_exit 0 "200 MiB to stdout" -- sh -c "\"$P2P\" drive --drive big get /big.bin | cmp - \"$T/big\""
  expect_exit 0 "ls -l of the large file" -- "$P2P" drive --drive big ls -l
  expect_eq "$(cat "$T/out")" "$(printf -- '- 209715200\tbig.bin')" "ls -l size"
  rm -f "$T/big"
else
  echo "FAIL: /usr/bin/time is needed to measure peak RSS"
  failures=$((failures + 1))
fi

# --- stdin, stdout, missing paths, folders -----------------------------------
expect_exit 0 "put from stdin" -- sh -c "printf 'from stdin' | \"$P2P\" drive --drive io put - /x"
expect_exit 0 "get to stdout" -- "$P2P" drive --drive io get /x
expect_eq "$(cat "$T/out")" "from stdin" "stdin round trip"
expect_eq "$(wc -c < "$T/out")" 10 "no newline added off a TTY"
expect_exit 0 "'-' as OUT is stdout" -- "$P2P" drive --drive io get /x -
expect_eq "$(cat "$T/out")" "from stdin" "get to '-'"
head -c 300000 /dev/urandom > "$T/blob"
expect_exit 0 "binary from stdin" -- sh -c "\"$P2P\" drive --drive io put - /bin/blob < \"$T/blob\""
"$P2P" drive --drive io get /bin/blob > "$T/blob.back" 2> /dev/null
expect_exit 0 "binary stdin/stdout round trip" -- cmp "$T/blob" "$T/blob.back"
expect_exit 0 "empty stdin" -- sh -c "\"$P2P\" drive --drive io put - /none < /dev/null"
expect_exit 0 "get an empty file" -- "$P2P" drive --drive io get /none
expect_eq "$(wc -c < "$T/out")" 0 "empty file from stdin"
expect_exit 2 "stdin needs a DEST" -- sh -c "echo x | \"$P2P\" drive --drive io put -"
expect_exit 1 "put of a missing host file" -- "$P2P" drive --drive io put "$T/no-such-file" /y
expect_exit 1 "get a missing path" -- "$P2P" drive --drive io get /missing
expect_grep "not in the drive" "$T/err" "missing path message"
expect_exit 1 "get a missing path --json" -- "$P2P" --json drive --drive io get /missing
expect_eq "$(json_field code < "$T/err")" "not_found" "JSON not_found"
echo one > "$T/one"
"$P2P" drive --drive io put "$T/one" /folder/one 2> /dev/null
"$P2P" drive --drive io put "$T/one" /folder/inner/two 2> /dev/null
expect_exit 2 "get a folder without OUT" -- "$P2P" drive --drive io get /folder
expect_grep "is a folder" "$T/err" "folder without OUT message"
expect_exit 2 "get a folder to stdout" -- "$P2P" drive --drive io get /folder -
expect_exit 0 "get a folder into OUT" -- "$P2P" drive --drive io get /folder "$T/folder-out"
expect_exit 0 "folder copied" -- cmp "$T/one" "$T/folder-out/one"
expect_exit 0 "sub-folder copied" -- cmp "$T/one" "$T/folder-out/inner/two"
expect_eq "$(find "$T/folder-out" -type f | wc -l)" 2 "only the folder's files"
expect_exit 0 "get a folder again" -- "$P2P" drive --drive io get /folder "$T/folder-out"
expect_grep "2 already there" "$T/err" "unchanged files are not rewritten"
expect_exit 2 "get a symlink to stdout" -- "$P2P" drive --drive tree get /link
expect_grep "symlink" "$T/err" "symlink message"

# --- ls ----------------------------------------------------------------------
expect_exit 0 "ls root" -- "$P2P" drive --drive tree ls
expect_eq "$(tr '\n' '|' < "$T/out")" \
  "dir with space/|empty|link|run.sh|sub/|with space.txt|ünïcødé/|" "root listing, folders with /"
expect_exit 0 "ls a folder" -- "$P2P" drive --drive tree ls /sub
expect_eq "$(tr '\n' '|' < "$T/out")" "dangling|deep/|top.txt|" "folder listing"
expect_exit 0 "ls a folder, trailing slash" -- "$P2P" drive --drive tree ls sub/
expect_eq "$(tr '\n' '|' < "$T/out")" "dangling|deep/|top.txt|" "folder listing without a leading /"
expect_exit 0 "ls -r" -- "$P2P" drive --drive tree ls -r
expect_eq "$(wc -l < "$T/out")" "$nfiles" "ls -r lists every file"
expect_eq "$(grep -c '^/' "$T/out")" "$nfiles" "ls -r shows full paths"
expect_grep "^/sub/deep/deeper/leaf.txt$" "$T/out" "ls -r nested path"
expect_eq "$(head -1 "$T/out")" "/dir with space/file name.txt" "ls -r in path order"
expect_exit 0 "ls -r of a folder" -- "$P2P" drive --drive tree ls -r /sub/deep
expect_eq "$(tr '\n' '|' < "$T/out")" "/sub/deep/also-empty|/sub/deep/deeper/leaf.txt|" "ls -r below a folder"
expect_exit 0 "ls -l" -- "$P2P" drive --drive tree ls -l
expect_grep "$(printf '^x 18\trun.sh$')" "$T/out" "ls -l executable"
expect_grep "$(printf '^- 0\tempty$')" "$T/out" "ls -l empty file"
expect_grep "$(printf '^- 7\twith space.txt$')" "$T/out" "ls -l file size"
expect_grep "$(printf '^l 0\tlink -> sub/top.txt$')" "$T/out" "ls -l symlink"
expect_grep "$(printf '^d -\tsub/$')" "$T/out" "ls -l folder"
expect_exit 0 "ls of one file" -- "$P2P" drive --drive tree ls /sub/top.txt
expect_eq "$(cat "$T/out")" "/sub/top.txt" "ls of a file names it"
expect_exit 0 "ls --json" -- "$P2P" --json drive --drive tree ls
cp "$T/out" "$T/ls.json"
expect_exit 0 "ls --json objects" -- python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 7, lines
for l in lines:
    o = json.loads(l)
    assert "path" in o and "type" in o, o
    assert o["type"] in ("file", "symlink", "folder"), o
    if o["type"] != "folder":
        assert isinstance(o["size"], int), o
by = {json.loads(l)["path"]: json.loads(l) for l in lines}
assert by["/sub"]["type"] == "folder", by
assert by["/run.sh"] == dict(by["/run.sh"], type="file", size=18, executable=True), by
assert by["/link"]["type"] == "symlink" and by["/link"]["linkname"] == "sub/top.txt", by
' "$T/ls.json"
expect_exit 0 "ls -r --json" -- "$P2P" --json drive --drive tree ls -r
cp "$T/out" "$T/ls-r.json"
expect_exit 0 "ls -r --json objects" -- python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == int(sys.argv[2]), lines
for l in lines:
    o = json.loads(l)
    assert o["path"].startswith("/") and o["type"] in ("file", "symlink") and isinstance(o["size"], int), o
' "$T/ls-r.json" "$nfiles"
expect_exit 0 "ls of a missing folder" -- "$P2P" drive --drive tree ls /nothing/here
expect_eq "$(cat "$T/out")" "" "missing folder lists nothing"

# --- rm ----------------------------------------------------------------------
expect_exit 0 "rm a file" -- "$P2P" drive --drive io rm /x
expect_exit 1 "get after rm" -- "$P2P" drive --drive io get /x
expect_exit 1 "rm a missing path" -- "$P2P" drive --drive io rm /x
expect_grep "not in the drive" "$T/err" "rm missing message"
v_before=$(drive_version --drive io)
expect_exit 2 "rm a folder without -r" -- "$P2P" drive --drive io rm /folder
expect_grep "\-\-recursive" "$T/err" "rm folder message mentions --recursive"
expect_eq "$(drive_version --drive io)" "$v_before" "refused rm writes nothing"
expect_exit 0 "files still there" -- "$P2P" drive --drive io get /folder/inner/two
expect_exit 0 "rm -r a folder" -- "$P2P" drive --drive io rm -r /folder
expect_grep "removed 2 files" "$T/err" "rm -r count"
expect_exit 0 "ls -r after rm -r" -- "$P2P" drive --drive io ls -r /folder
expect_eq "$(cat "$T/out")" "" "folder gone"
expect_exit 1 "rm -r of a removed folder" -- "$P2P" drive --drive io rm --recursive /folder
expect_exit 0 "other files survive rm -r" -- "$P2P" drive --drive io get /bin/blob

# --- info --------------------------------------------------------------------
printf 'hello' > "$T/five"
printf 'goodbye' > "$T/seven"
"$P2P" drive --drive info put "$T/five" /a/five 2> /dev/null
"$P2P" drive --drive info put "$T/seven" /seven 2> /dev/null
expect_exit 0 "info --json" -- "$P2P" --json drive --drive info info
cp "$T/out" "$T/info.json"
key=$(json_field key < "$T/info.json")
id=$(json_field id < "$T/info.json")
expect_exit 0 "key is 64 hex" -- grep -Eq '^[0-9a-f]{64}$' <<< "$key"
expect_eq "${#id}" 52 "id is 52 characters"
expect_exit 0 "id is z-base-32" -- grep -Eq '^[ybndrfg8ejkmcpqxot1uwisza345h769]{52}$' <<< "$id"
expect_eq "$(json_field link < "$T/info.json")" "p2p://$id" "info link"
expect_eq "$(json_field version < "$T/info.json")" 3 "version = header + 2 puts"
expect_eq "$(json_field files < "$T/info.json")" 2 "info files"
expect_eq "$(json_field bytes < "$T/info.json")" 12 "info bytes"
expect_eq "$(json_field drive < "$T/info.json")" "info" "info drive name"
expect_eq "$(json_field writable < "$T/info.json")" "true" "info writable"
expect_exit 0 "info (text)" -- "$P2P" drive --drive info info
expect_grep "^link: *p2p://$id$" "$T/out" "text info link"
expect_grep "^files: *2$" "$T/out" "text info files"
expect_exit 0 "info --at 2" -- "$P2P" --json drive --drive info info --at 2
expect_eq "$(json_field files < "$T/out")" 1 "files at version 2"
expect_eq "$(json_field bytes < "$T/out")" 5 "bytes at version 2"

# --- mirror ------------------------------------------------------------------
m="$T/m"
mkdir -p "$m/d"
echo one > "$m/one"
echo two > "$m/d/two"
echo three > "$m/three"
expect_exit 0 "mirror, first run" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(grep -c '^+ ' "$T/out")" 3 "first run adds every file"
expect_grep "^+ /d/two$" "$T/out" "+ line names the drive path"
expect_grep "3 added, 0 changed, 0 removed" "$T/out" "first run totals"
v1=$(drive_version --drive mir)
expect_exit 0 "mirror, nothing changed" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(count_changes "$T/out")" 0 "no change lines"
expect_grep "0 added, 0 changed, 0 removed, 3 unchanged" "$T/out" "unchanged totals"
expect_eq "$(drive_version --drive mir)" "$v1" "unchanged files cost no writes"
echo "one, changed" > "$m/one"
expect_exit 0 "mirror one changed file" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(count_changes "$T/out")" 1 "exactly one change line"
expect_eq "$(grep '^~ ' "$T/out")" "~ /one" "the ~ line names the file"
expect_grep "0 added, 1 changed" "$T/out" "changed totals"
echo "one, same size" > "$m/one"
echo "one, SAME size" > "$m/one"
expect_exit 0 "mirror a same-size content change" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(grep '^[-+~] ' "$T/out")" "~ /one" "content compared when sizes match"
chmod +x "$m/three"
expect_exit 0 "mirror an executable bit change" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(grep '^[-+~] ' "$T/out")" "~ /three" "executable bit compared"
expect_exit 0 "executable in the drive" -- "$P2P" --json drive --drive mir ls /three
expect_eq "$(json_field executable < "$T/out")" "true" "x bit mirrored"
echo "two, changed" > "$m/d/two"
echo "new" > "$m/new"
v2=$(drive_version --drive mir)
expect_exit 0 "mirror --dry-run" -- "$P2P" drive --drive mir mirror "$m" --dry-run
expect_grep "^~ /d/two$" "$T/out" "dry run reports a change"
expect_grep "^+ /new$" "$T/out" "dry run reports an addition"
expect_grep "would mirror: 1 added, 1 changed" "$T/out" "dry run totals"
expect_eq "$(drive_version --drive mir)" "$v2" "dry run writes nothing"
expect_exit 1 "dry run did not add" -- "$P2P" drive --drive mir get /new
expect_exit 0 "mirror after the dry run" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(count_changes "$T/out")" 2 "the dry run's changes, applied"
rm "$m/d/two"
expect_exit 0 "mirror without --prune keeps a deleted file" -- "$P2P" drive --drive mir mirror "$m"
expect_eq "$(count_changes "$T/out")" 0 "no - line without --prune"
expect_exit 0 "still in the drive" -- "$P2P" drive --drive mir get /d/two
v3=$(drive_version --drive mir)
expect_exit 0 "mirror --prune --dry-run" -- "$P2P" drive --drive mir mirror "$m" --prune --dry-run
expect_eq "$(grep '^[-+~] ' "$T/out")" "- /d/two" "dry run prune line"
expect_eq "$(drive_version --drive mir)" "$v3" "dry-run prune writes nothing"
expect_exit 0 "mirror --prune" -- "$P2P" drive --drive mir mirror "$m" --prune
expect_eq "$(grep '^[-+~] ' "$T/out")" "- /d/two" "prune removes the deleted file"
expect_grep "0 added, 0 changed, 1 removed" "$T/out" "prune totals"
expect_exit 1 "pruned file gone" -- "$P2P" drive --drive mir get /d/two
rmdir "$m/d"  # a drive holds files, not folders: an empty folder does not come back
expect_exit 0 "mirror --json" -- "$P2P" --json drive --drive mir mirror "$m"
expect_eq "$(tail -1 "$T/out" | json_field added)" 0 "json totals added"
expect_eq "$(tail -1 "$T/out" | json_field unchanged)" 3 "json totals unchanged"
echo "json" > "$m/j"
expect_exit 0 "mirror --json with a change" -- "$P2P" --json drive --drive mir mirror "$m"
expect_eq "$(head -1 "$T/out" | json_field op)" "+" "json change op"
expect_eq "$(head -1 "$T/out" | json_field path)" "/j" "json change path"
expect_eq "$(head -1 "$T/out" | json_field size)" 5 "json change size"

# drive -> an empty folder, then the same again
expect_exit 0 "mirror --to-folder" -- "$P2P" drive --drive mir mirror --to-folder "$T/mf"
expect_eq "$(grep -c '^+ ' "$T/out")" 4 "to-folder adds every file"
expect_exit 0 "to-folder copy is equal" -- diff -r --no-dereference "$m" "$T/mf"
expect_exit 0 "to-folder keeps the x bit" -- test -x "$T/mf/three"
expect_exit 0 "mirror --to-folder again" -- "$P2P" drive --drive mir mirror --to-folder "$T/mf"
expect_eq "$(count_changes "$T/out")" 0 "to-folder unchanged"
expect_exit 0 "whole tree --to-folder" -- "$P2P" drive --drive tree mirror --to-folder "$T/tree-mf"
expect_exit 0 "tree via mirror --to-folder is equal" -- diff -r --no-dereference "$src" "$T/tree-mf"
expect_exit 2 "--to-drive with --to-folder" -- "$P2P" drive --drive mir mirror "$m" --to-drive --to-folder
expect_exit 1 "mirror of a missing folder" -- "$P2P" drive --drive mir mirror "$T/no-such-dir"

# --ignore and --path
mkdir -p "$T/ig/logs"
echo a > "$T/ig/keep.txt"
echo b > "$T/ig/app.log"
echo c > "$T/ig/logs/deep.log"
echo d > "$T/ig/logs/keep2.txt"
expect_exit 0 "mirror --ignore" -- "$P2P" drive --drive ign mirror "$T/ig" --ignore '*.log'
expect_exit 0 "ls after --ignore" -- "$P2P" drive --drive ign ls -r
expect_eq "$(tr '\n' '|' < "$T/out")" "/keep.txt|/logs/keep2.txt|" "*.log skipped at every depth"
expect_exit 0 "mirror --path" -- "$P2P" drive --drive ign mirror "$T/ig" --path /backup --ignore '*.log'
expect_exit 0 "ls of --path" -- "$P2P" drive --drive ign ls -r /backup
expect_eq "$(tr '\n' '|' < "$T/out")" "/backup/keep.txt|/backup/logs/keep2.txt|" "mirror under --path"

# --- --at: older versions -----------------------------------------------------
printf 'first' | "$P2P" drive --drive hist put - /doc 2> /dev/null
v_first=$(drive_version --drive hist)
printf 'second, longer' | "$P2P" drive --drive hist put - /doc 2> /dev/null
printf 'later' | "$P2P" drive --drive hist put - /later 2> /dev/null
expect_exit 0 "get latest" -- "$P2P" drive --drive hist get /doc
expect_eq "$(cat "$T/out")" "second, longer" "latest content"
expect_exit 0 "get --at" -- "$P2P" drive --drive hist get /doc --at "$v_first"
expect_eq "$(cat "$T/out")" "first" "older content"
expect_exit 0 "get --at to a file" -- "$P2P" drive --drive hist get /doc "$T/doc.old" --at "$v_first"
expect_eq "$(cat "$T/doc.old")" "first" "older content to a file"
expect_exit 0 "ls -l --at" -- "$P2P" drive --drive hist ls -l --at "$v_first"
expect_eq "$(cat "$T/out")" "$(printf -- '- 5\tdoc')" "ls at the older version"
expect_exit 0 "ls -l latest" -- "$P2P" drive --drive hist ls -l
expect_eq "$(tr '\n' '|' < "$T/out")" "$(printf -- '- 14\tdoc|- 5\tlater|')" "ls at the latest version"
expect_exit 1 "get --at of a file written later" -- "$P2P" drive --drive hist get /later --at "$v_first"
expect_exit 1 "get --at beyond the version" -- "$P2P" drive --drive hist get /doc --at 99
expect_exit 1 "ls --at beyond the version" -- "$P2P" drive --drive hist ls --at 99
expect_exit 2 "--at 0 is refused" -- "$P2P" drive --drive hist get /doc --at 0

# --- Paths are normalised and may not climb above the root --------------------
v_before=$(drive_version --drive io)
expect_exit 2 "put ../../etc/x" -- "$P2P" drive --drive io put "$T/one" ../../etc/x
expect_grep "climbs above" "$T/err" "climb message"
expect_exit 2 "put /a/../../x" -- "$P2P" drive --drive io put "$T/one" /a/../../x
expect_exit 2 "stdin put to ../x" -- sh -c "echo x | \"$P2P\" drive --drive io put - ../x"
expect_exit 2 "put a folder to ../x" -- "$P2P" drive --drive io put "$m" ../x
expect_exit 2 "mirror --path ../x" -- "$P2P" drive --drive io mirror "$m" --path ../x
expect_exit 2 "put to the root" -- sh -c "echo x | \"$P2P\" drive --drive io put - /"
expect_eq "$(drive_version --drive io)" "$v_before" "refused paths write nothing"
expect_exit 2 "get ../x" -- "$P2P" drive --drive io get ../x
expect_exit 2 "ls ../.." -- "$P2P" drive --drive io ls ../..
expect_exit 2 "rm ../x" -- "$P2P" drive --drive io rm ../x
expect_exit 0 "put a/./b/../c" -- "$P2P" drive --drive io put "$T/one" a/./b/../c
expect_exit 0 "normalised path" -- "$P2P" drive --drive io get /a/c
expect_eq "$(cat "$T/out")" "one" "a/./b/../c is /a/c"
expect_exit 0 "get through a non-normal path" -- "$P2P" drive --drive io get //a/../a/c
expect_eq "$(cat "$T/out")" "one" "//a/../a/c is /a/c"

# --- --key: anyone's drive, read-only ------------------------------------------
tree_key=$("$P2P" --json drive --drive tree info | json_field key)
tree_id=$("$P2P" --json drive --drive tree info | json_field id)
"$P2P" drive --drive tree ls -r > "$T/tree.ls"
expect_exit 0 "ls --key" -- "$P2P" drive --key "$tree_key" ls -r
cp "$T/out" "$T/tree-key.ls"
expect_exit 0 "ls --key matches" -- cmp "$T/tree-key.ls" "$T/tree.ls"
expect_exit 0 "get --key (link)" -- "$P2P" drive --key "p2p://$tree_id" get /sub/top.txt
expect_eq "$(cat "$T/out")" "top" "read by link"
expect_exit 0 "get a folder --key" -- "$P2P" drive --key "$tree_id" get / "$T/tree-key"
expect_exit 0 "folder read by key is equal" -- diff -r --no-dereference "$src" "$T/tree-key"
expect_exit 0 "info --key" -- "$P2P" --json drive --key "$tree_key" info
expect_eq "$(json_field writable < "$T/out")" "false" "by key is read-only"
expect_eq "$(json_field files < "$T/out")" "$nfiles" "info files by key"
v_before=$(drive_version --drive tree)
expect_exit 2 "put --key is refused" -- "$P2P" drive --key "$tree_key" put "$T/one" /one
expect_grep "read-only" "$T/err" "read-only message"
expect_exit 2 "rm --key is refused" -- "$P2P" drive --key "$tree_key" rm /empty
expect_exit 2 "mirror to a --key drive is refused" -- "$P2P" drive --key "$tree_key" mirror "$m"
expect_eq "$(drive_version --drive tree)" "$v_before" "nothing written by key"
expect_exit 2 "malformed key" -- "$P2P" drive --key "p2p://zzz" ls
expect_exit 1 "unknown key" -- "$P2P" drive --key "$(printf '%064d' 1)" ls

finish
