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
