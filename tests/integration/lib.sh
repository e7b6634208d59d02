# Helpers for the integration tests (sourced).
set -uo pipefail
: "${P2P:?set P2P to the p2p binary}"
failures=0
checks=0

# expect_exit CODE DESCRIPTION -- COMMAND...
expect_exit() {
  local want=$1 what=$2
  shift 3
  checks=$((checks + 1))
  "$@" > "$T/out" 2> "$T/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: exit $got, expected $want"
    echo "  command: $*"
    sed 's/^/  stdout: /' "$T/out" | head -5
    sed 's/^/  stderr: /' "$T/err" | head -5
    failures=$((failures + 1))
    return 1
  fi
  return 0
}

# expect_eq ACTUAL EXPECTED DESCRIPTION
expect_eq() {
  checks=$((checks + 1))
  if [ "$1" != "$2" ]; then
    echo "FAIL: $3: got '$1', expected '$2'"
    failures=$((failures + 1))
  fi
}

# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
  checks=$((checks + 1))
  if ! grep -q -- "$1" "$2"; then
    echo "FAIL: $3: '$1' not in $(basename "$2"): $(head -c 300 "$2")"
    failures=$((failures + 1))
  fi
}

json_field() {  # json_field FIELD < json-line
  python3 -c 'import json,sys; v=json.loads(sys.stdin.readline())[sys.argv[1]]; print(json.dumps(v) if isinstance(v,(bool,dict,list)) else v)' "$1"
}

finish() {
  echo "$checks checks, $failures failures"
  [ "$failures" = 0 ]
}

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export P2P_HOME="$T/home"
