# Helpers for integration tests that run under `set -euo pipefail` (lib.sh's
# expect_exit counts failures instead). Needs $T (a scratch folder) and START.
fail() {
  echo "FAIL: $*"
  [ -s "$T/out" ] && sed 's/^/  stdout: /' "$T/out" | head -5
  [ -s "$T/err" ] && sed 's/^/  stderr: /' "$T/err" | head -5
  exit 1
}
# run COMMAND...: stdout to $T/out, stderr to $T/err, exit status in RC.
run() {
  RC=0
  "$@" > "$T/out" 2> "$T/err" || RC=$?
}
# expect_rc CODE DESCRIPTION COMMAND...
expect_rc() {
  local want=$1 what=$2
  shift 2
  run "$@"
  [ "$RC" = "$want" ] || fail "$what: exit $RC, expected $want (command: $*)"
}
expect_err() {  # expect_err PATTERN DESCRIPTION: grep the last command's stderr
  grep -q -- "$1" "$T/err" || fail "$2: '$1' not in stderr"
}
# stop_rc PID SIGNAL SECONDS: send SIGNAL, wait at most SECONDS for the exit, status in RC.
stop_rc() {
  local i
  kill -"$2" "$1"
  for i in $(seq 1 $(($3 * 10))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$1" 2>/dev/null && fail "process $1 still running $3 s after SIG$2"
  RC=0
  wait "$1" || RC=$?
}
step() { echo "ok $(printf '%3d' $((SECONDS - START)))s  $*"; }
tails() {  # tails FILE...: the last lines of each (TAIL_LINES, default 12), for failure reports
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "  --- $(basename "$f"):"
    tail -n "${TAIL_LINES:-12}" "$f" | cut -c1-300 | sed 's/^/    /'
  done
}

# A private DHT on 127.0.0.1 (needs $P2P and the PIDS array the cleanup kills).
# start_node INDEX [BOOTSTRAP]: a `p2p dht bootstrap` node in the background.
declare -a NODE_PID ADDR
start_node() {
  "$P2P" dht bootstrap --host 127.0.0.1 --port 0 ${2:+--bootstrap "$2"} > "$T/node$1.out" 2> "$T/node$1.err" &
  NODE_PID[$1]=$!
  PIDS+=("$!")
}
node_address() {  # node_address INDEX: its HOST:PORT, the first line it prints
  local i
  for i in $(seq 1 100); do
    if [ -s "$T/node$1.out" ]; then
      ADDR[$1]=$(head -n 1 "$T/node$1.out")
      [[ "${ADDR[$1]}" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "node $1 printed '${ADDR[$1]}', not HOST:PORT"
      return 0
    fi
    kill -0 "${NODE_PID[$1]}" 2>/dev/null || fail "node $1 exited: $(cat "$T/node$1.err")"
    sleep 0.05
  done
  fail "node $1 printed no address within 5 s"
}
