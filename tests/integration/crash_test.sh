#!/usr/bin/env bash
# Crash test: a process appending in a loop is killed with SIGKILL at random
# moments. After every kill the store must open, every block must verify
# against the signed roots, and every append acknowledged before the kill
# must be there.
set -euo pipefail
: "${APPEND_WORKER:?}" "${P2P:?}"
KILLS=${CRASH_KILLS:-25}
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export P2P_HOME="$home"
RANDOM=42

for ((round = 1; round <= KILLS; round++)); do
  out="$home/acks.$round"
  "$APPEND_WORKER" loop "$home" crashlog > "$out" &
  pid=$!
  # 20..400 ms: long enough for many commits, random enough to land anywhere.
  sleep "0.$(printf '%03d' $((20 + RANDOM % 380)))"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  acked=$(grep -E '^acked [0-9]+$' "$out" | tail -n 1 | cut -d' ' -f2 || true)  # none yet: grep fails
  acked=${acked:-0}
  check=$("$APPEND_WORKER" check "$home" crashlog) || { echo "round $round: check failed"; exit 1; }
  length=$(echo "$check" | sed -n 's/^length //p')
  if ((length < acked)); then
    echo "round $round: acknowledged length $acked but only $length survived"
    exit 1
  fi
  "$P2P" core verify crashlog > /dev/null
  echo "round $round: killed after $acked acknowledged, store holds $length (verified)"
done
echo "crash test: $KILLS kills, no loss"
