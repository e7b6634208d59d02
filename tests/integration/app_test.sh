#!/usr/bin/env bash
# Apps and datasets: init, stage, info, run (terminal, web, dataset).
source "$(dirname "$0")/lib.sh"

for cmd in init stage info run; do expect_exit 0 "p2p $cmd --help" -- "$P2P" $cmd --help; done

app="$T/apps/hello"
expect_exit 0 "init" -- "$P2P" init "$app"
expect_grep '"name": "hello"' "$app/p2p.json" "manifest name"
expect_exit 2 "init twice" -- "$P2P" init "$app"
expect_exit 2 "init with a bad type" -- "$P2P" init --type weird "$T/apps/x"
mkdir -p "$app/.git" "$app/docs"
echo "not staged" > "$app/.git/HEAD"
echo "ignored" > "$app/debug.log"
echo "doc" > "$app/docs/guide.md"

cd "$app" || exit 1
expect_exit 0 "first stage" -- "$P2P" stage
expect_grep "^+ /main.sh" "$T/out" "main.sh added"
expect_grep "^+ /docs/guide.md" "$T/out" "nested file added"
checks=$((checks + 1)); grep -qE '\.git|debug\.log' "$T/out" && { echo "FAIL: .git or ignored files staged"; failures=$((failures + 1)); }
link=$(tail -1 "$T/out")
expect_eq "${link:0:6}" "p2p://" "stage prints the link"
expect_exit 0 "stage with nothing changed" -- "$P2P" stage
expect_eq "$(grep -c '^[+~-] ' "$T/out")" 0 "nothing to stage"
echo 'echo "changed build"' >> main.sh
expect_exit 0 "stage one change" -- "$P2P" --json stage
expect_eq "$(grep -c '"op"' "$T/out")" 1 "exactly one change"
expect_eq "$(head -1 "$T/out" | json_field path)" "/main.sh" "the changed file"
expect_eq "$(head -1 "$T/out" | json_field op)" "~" "reported as changed"
rm docs/guide.md
expect_exit 0 "dry run" -- "$P2P" stage --dry-run
expect_grep "^- /docs/guide.md" "$T/out" "removal shown"
expect_exit 0 "info of the channel" -- "$P2P" --json info dev
expect_eq "$(json_field files < "$T/out")" 3 "dry run changed nothing"
expect_exit 0 "stage the removal" -- "$P2P" stage
expect_exit 0 "info by link" -- "$P2P" --json info "$link"
expect_eq "$(json_field files < "$T/out")" 2 "files after removal"
expect_exit 1 "info of a channel never staged" -- "$P2P" info prod

# run: arguments in, exit code out, from the folder, the channel and the link
printf '#!/bin/sh\necho "args: $*"\nexit 7\n' > main.sh
"$P2P" stage > /dev/null 2>&1
expect_exit 7 "run the folder" -- "$P2P" run "$app" -- a "b c"
expect_eq "$(cat "$T/out")" "args: a b c" "arguments passed"
expect_exit 7 "run the channel" -- "$P2P" run dev -- x
expect_eq "$(cat "$T/out")" "args: x" "channel run"
cd "$T" || exit 1
expect_exit 7 "run the link from elsewhere" -- "$P2P" run "$link" -- y
expect_eq "$(cat "$T/out")" "args: y" "link run"
expect_exit 1 "a link not in the local store, nor on the (empty) DHT" -- "$P2P" run "p2p://$(printf 'y%.0s' $(seq 52))" --timeout 2
expect_grep "not in the local store" "$T/err" "clear error for remote links"

# a web app is served over HTTP on 127.0.0.1
web="$T/apps/site"
"$P2P" init --type web "$web" > /dev/null
(cd "$web" && "$P2P" stage > /dev/null 2>&1)
(cd "$web" && exec "$P2P" run dev > "$T/url" 2> /dev/null) &
server=$!
for _ in $(seq 50); do [ -s "$T/url" ] && break; sleep 0.1; done
url=$(head -1 "$T/url")
expect_eq "${url:0:17}" "http://127.0.0.1:" "URL printed"
page=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$url")
checks=$((checks + 1)); grep -q "<h1>site</h1>" <<< "$page" || { echo "FAIL: web page not served: $page"; failures=$((failures + 1)); }
code=$(python3 -c '
import sys, urllib.request, urllib.error
try: urllib.request.urlopen(sys.argv[1] + "missing.html", timeout=5)
except urllib.error.HTTPError as e: print(e.code)' "$url")
expect_eq "$code" 404 "missing page is 404"
kill -INT "$server"
wait "$server"
expect_eq "$?" 0 "server exits 0 on Ctrl-C"

# a dataset is checked out into a folder
data="$T/apps/data"
"$P2P" init --type dataset "$data" > /dev/null
(cd "$data" && "$P2P" stage > /dev/null 2>&1)
dlink=$(cd "$data" && "$P2P" --json info dev | json_field link)
expect_exit 0 "fetch a dataset" -- "$P2P" run "$dlink" --out "$T/dataset-copy"
expect_eq "$(cat "$T/dataset-copy/README.md" | head -1)" "# data" "dataset content"

finish
