#!/usr/bin/env bash
# Concurrency test: several processes append at once, some to their own
# cores and some to one shared core; nothing may be lost or duplicated.
set -euo pipefail
: "${APPEND_WORKER:?}"
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
COUNT=${CONCURRENCY_COUNT:-1000}

pids=()
for w in 1 2 3; do "$APPEND_WORKER" tagged "$home" "own-$w" "w$w" "$COUNT" > /dev/null & pids+=($!); done
for w in 4 5 6 7; do "$APPEND_WORKER" tagged "$home" shared "w$w" "$COUNT" > /dev/null & pids+=($!); done
for pid in "${pids[@]}"; do wait "$pid"; done

for w in 1 2 3; do
  out=$("$APPEND_WORKER" check "$home" "own-$w")
  grep -qx "length $COUNT" <<< "$out" || { echo "own-$w: $out"; exit 1; }
  grep -qx "tag w$w count $COUNT" <<< "$out" || { echo "own-$w: $out"; exit 1; }
done
out=$("$APPEND_WORKER" check "$home" shared)
grep -qx "length $((4 * COUNT))" <<< "$out" || { echo "shared: $out"; exit 1; }
for w in 4 5 6 7; do
  grep -qx "tag w$w count $COUNT" <<< "$out" || { echo "shared lost blocks of w$w: $out"; exit 1; }
done
# Everyone raced to create the identity; exactly one must have won.
[ "$(ls "$home" | grep -c '^identity$')" = 1 ]
echo "concurrency test: 7 writers, $((7 * COUNT)) blocks, none lost or duplicated"
