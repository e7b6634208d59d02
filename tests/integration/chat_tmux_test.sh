#!/usr/bin/env bash
# The interactive `p2p chat ROOM` in a terminal, driven through tmux (a
# detached session of a fixed size on a private socket) on a private DHT of 3
# nodes: what is typed reaches another home; a message from that home is
# printed above the input line while a half-typed line stays intact on the
# last line; text from peers cannot send escape sequences to the terminal;
# line editing (backspace, Ctrl-U, arrows ignored, a long line scrolls
# sideways); /nick changes the prompt; /who; /quit, Ctrl-D on an empty line
# (not on a non-empty one) and Ctrl-C leave with exit 0.
# Exit 77 (skipped) when tmux is missing.
set -euo pipefail
: "${P2P:?set P2P to the p2p binary}"
if ! command -v tmux > /dev/null 2>&1; then
  echo "SKIP: tmux is not installed; the interactive chat needs a terminal to be tested"
  exit 77
fi
NODES=3
WIDTH=100
HEIGHT=30
MESH_BOUND=70     # s: the terminal's session and the other home see each other
SPREAD_BOUND=30   # s: one message reaches the other side
ROOM="chat tmux test"

T=$(mktemp -d)
PIDS=()
unset TMUX  # (when run inside tmux: our server is a separate one)
tm() { tmux -S "$T/tmux.sock" -f /dev/null "$@"; }
cleanup() {
  local p
  {
    tm kill-server 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
  } 2> /dev/null
  rm -rf "$T"
}
trap cleanup EXIT
START=$SECONDS

# shellcheck source=strict_lib.sh
source "$(dirname "$0")/strict_lib.sh"
json() {  # json EXPR < one JSON line: print EXPR of the parsed object `j`
  python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); print(eval(sys.argv[1]))' "$1"
}
TAIL_LINES=8

# --- a private DHT ------------------------------------------------------------------------
start_node 0
node_address 0
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "${ADDR[0]}"; done
for i in $(seq 1 $((NODES - 1))); do node_address "$i"; done
BOOT=$(IFS=,; echo "${ADDR[*]}")

declare -A ID
at() {  # at HOME ARGS...: p2p in HOME on the private DHT
  local h=$1
  shift
  P2P_HOME="$T/$h" "$P2P" --bootstrap "$BOOT" "$@"
}
new_home() {  # new_home NAME: sets ID[NAME] (the identity, z-base-32)
  run at "$1" --json id create
  [ "$RC" = 0 ] || fail "id create in home $1: exit $RC"
  ID[$1]=$(json 'j["id"]' < "$T/out")
}
new_home x  # types in the terminal
new_home y  # the other home: chat log --follow and chat send
X=${ID[x]:0:8}
Y=${ID[y]:0:8}

# --- the terminal ---------------------------------------------------------------------------
# term_start NAME: `p2p chat ROOM` in home x in a new detached tmux session
# NAME of WIDTH x HEIGHT; its exit status goes to $T/NAME.rc, stderr to $T/NAME.err.
term_start() {
  {
    echo '#!/bin/sh'
    printf 'P2P_HOME=%q %q --bootstrap %q chat %q 2> %q\n' "$T/x" "$P2P" "$BOOT" "$ROOM" "$T/$1.err"
    printf 'echo $? > %q\n' "$T/$1.rc"
  } > "$T/$1.sh"
  tm new-session -d -s "$1" -x "$WIDTH" -y "$HEIGHT" "sh $T/$1.sh"
  tm set-option -t "$1" status off > /dev/null
}
pane() { tm capture-pane -p -t "$1" > "$T/pane" 2> /dev/null || true; }  # pane NAME: the screen to $T/pane
# last_line: the pane's last non-empty line (where the input line is).
last_line() { sed '/^[[:space:]]*$/d' "$T/pane" | tail -n 1; }
keys() { tm send-keys -t "$@"; }          # keys NAME KEY...: named keys (Enter, C-d, BSpace...)
type_text() { tm send-keys -t "$1" -l "$2"; }  # type_text NAME TEXT: literal text
ended() { [ -s "$T/$1.rc" ]; }  # ended NAME: the chat process exited
# wait_until SECONDS WHAT COMMAND...: polls COMMAND until true; fails with WHAT and the screen after SECONDS.
wait_until() {
  local bound=$1 what=$2 begin=$SECONDS
  shift 2
  for _ in $(seq 1 $((bound * 5))); do
    if "$@"; then return 0; fi
    [ $((SECONDS - begin)) -lt "$bound" ] || break
    sleep 0.2
  done
  echo "  the screen:"
  sed 's/^/    |/' "$T/pane" 2> /dev/null | tail -n "$HEIGHT"
  tails "$T/term.err" "$T/follow.err" "$T/follow.out"
  fail "$what (not within $bound s)"
}
shows() { pane "$1"; ! ended "$1" && grep -qF -- "$2" "$T/pane"; }  # shows NAME TEXT: on the screen
input_is() { pane "$1"; [ "$(last_line)" = "$2" ]; }            # input_is NAME LINE: the last line
# y_got TEXT [TYPE]: y's chat log --follow --json printed an entry of TYPE
# (default message) with TEXT.
y_got() {
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    try:
        j = json.loads(l)
    except ValueError:
        continue
    if j["type"] == sys.argv[3] and j.get("text") == sys.argv[2]: sys.exit(0)
sys.exit(1)' "$T/follow.out" "$1" "${2:-message}"
}
exit_rc() {  # exit_rc NAME: waits (10 s) for the chat process to exit; its status in RC
  wait_until 10 "the chat in tmux session $1 has not exited" ended "$1"
  RC=$(cat "$T/$1.rc")
}

# --- 1. joined: the other home is here ---------------------------------------------------------
P2P_HOME="$T/y" "$P2P" --bootstrap "$BOOT" --json chat log "$ROOM" --follow > "$T/follow.out" 2> "$T/follow.err" &
FOLLOW=$!
PIDS+=("$FOLLOW")
sleep 2  # (y's announce lands, so that the terminal's first lookup finds it)
S1=$SECONDS
term_start term
wait_until "$MESH_BOUND" "the terminal does not say y is here" shows term "-- $Y is here"
shows term "-- joined room $ROOM" || fail "the terminal does not say it joined the room"
wait_until 5 "the input line is not the empty prompt '$X>'" input_is term "$X>"
step "1. p2p chat in a ${WIDTH}x$HEIGHT terminal: joined, y is here after $((SECONDS - S1))s, prompt '$X> '"

# --- 2. typing, and a message arriving while a line is half typed --------------------------------
type_text term "hello from the terminal"
keys term Enter
wait_until "$SPREAD_BOUND" "y did not receive 'hello from the terminal'" y_got "hello from the terminal"
wait_until 5 "the terminal does not show its own message" shows term "$X: hello from the terminal"
wait_until 5 "the input line is not empty after Enter" input_is term "$X>"
type_text term "half typed"
wait_until 5 "the input line does not show the half-typed text" input_is term "$X> half typed"
expect_rc 0 "chat send from y" at y chat send "$ROOM" "hello from y" --timeout 20
wait_until "$SPREAD_BOUND" "the terminal does not show y's message" shows term "$Y: hello from y"
[ "$(last_line)" = "$X> half typed" ] || fail "after y's message the last line is '$(last_line)', not '$X> half typed'"
[ "$(grep -c "half typed" "$T/pane")" = 1 ] || fail "'half typed' is on more than the input line: $(grep -n "half typed" "$T/pane")"
grep -n "" "$T/pane" | grep -F "$Y: hello from y" | grep -q "^[0-9]*:[0-9][0-9]:[0-9][0-9] $Y: hello from y$" ||
  fail "y's message is not a line of its own: $(grep -F "hello from y" "$T/pane")"
# Escape sequences from a peer are not obeyed (clear screen, home): they are shown as spaces.
expect_rc 0 "chat send from y" at y chat send "$ROOM" "$(printf 'evil\033[2J\033[Htext')" --timeout 20
wait_until "$SPREAD_BOUND" "the terminal does not show y's message with escapes as spaces" shows term "$Y: evil [2J [Htext"
grep -qF "$X: hello from the terminal" "$T/pane" || fail "the screen was cleared by a peer's escape sequence"
[ "$(last_line)" = "$X> half typed" ] || fail "after the escapes the last line is '$(last_line)'"
keys term Enter
wait_until "$SPREAD_BOUND" "y did not receive the half-typed line once Enter was pressed" y_got "half typed"
wait_until 5 "the input line is not empty after Enter" input_is term "$X>"
step "2. typed lines reach y; y's messages print above a half-typed input line, which stays whole; a peer's escapes are spaces"

# --- 3. line editing -----------------------------------------------------------------------------
type_text term "wrongX"
keys term BSpace
type_text term "!"
keys term Enter
wait_until "$SPREAD_BOUND" "backspace: y did not receive 'wrong!'" y_got "wrong!"
type_text term "discard me"
keys term C-u
wait_until 5 "Ctrl-U does not empty the input line" input_is term "$X>"
type_text term "ab"
keys term Left Up
type_text term "c"
wait_until 5 "arrow keys are not ignored" input_is term "$X> abc"
keys term Enter
wait_until "$SPREAD_BOUND" "y did not receive 'abc'" y_got "abc"
y_got "discard me" && fail "Ctrl-U: y received the discarded line"
LONG=$(for _ in $(seq 1 15); do printf '0123456789'; done)
type_text term "$LONG"
ROOM_LEFT=$((WIDTH - ${#X} - 2 - 1))
wait_until 5 "a 150-character input line does not scroll sideways in one line" input_is term "$X> ${LONG: -$ROOM_LEFT}"
keys term C-u
wait_until 5 "Ctrl-U does not empty a long input line" input_is term "$X>"
step "3. backspace, Ctrl-U, arrow keys ignored, a 150-character line scrolls sideways on one line"

# --- 4. /nick, /who, /quit ---------------------------------------------------------------------
type_text term "/nick tester"
keys term Enter
wait_until 10 "the terminal does not show the nick change" shows term "-- $X is now known as tester"
wait_until 5 "the prompt is not 'tester>' after /nick" input_is term "tester>"
wait_until "$SPREAD_BOUND" "y did not receive the nick entry" y_got tester nick
type_text term "/who"
keys term Enter
wait_until 10 "/who does not list 2 members, 2 online" shows term "-- 2 member(s), 2 online:"
wait_until 5 "/who does not list tester as online and you" shows term "tester ($X) · online · you"
shows term "   $Y · online" || fail "/who does not list y as online: $(grep -A3 "member(s)" "$T/pane")"
type_text term "/quit"
keys term Enter
exit_rc term
[ "$RC" = 0 ] || { tails "$T/term.err"; fail "/quit: exit $RC, expected 0"; }
[ -s "$T/term.err" ] && fail "the chat wrote to stderr: $(head -c 300 "$T/term.err")"
step "4. /nick changes the prompt, /who lists both members online, /quit exits 0"

# --- 5. Ctrl-D and Ctrl-C ----------------------------------------------------------------------
term_start term2
wait_until "$MESH_BOUND" "the second terminal does not show the history" shows term2 "$Y: hello from y"
wait_until 5 "the second terminal's prompt is not 'tester>'" input_is term2 "tester>"
type_text term2 "abc"
keys term2 C-d
sleep 1
ended term2 && fail "Ctrl-D on a non-empty line left the room"
input_is term2 "tester> abc" || fail "Ctrl-D changed the input line to '$(last_line)'"
keys term2 C-u C-d
exit_rc term2
[ "$RC" = 0 ] || { tails "$T/term2.err"; fail "Ctrl-D on an empty line: exit $RC, expected 0"; }
term_start term3
wait_until "$MESH_BOUND" "the third terminal shows no prompt" input_is term3 "tester>"
keys term3 C-c
exit_rc term3
[ "$RC" = 0 ] || { tails "$T/term3.err"; fail "Ctrl-C: exit $RC, expected 0"; }
y_got "abc" || fail "y lost a message"
step "5. Ctrl-D on an empty line exits 0 (not on a non-empty one); Ctrl-C exits 0"

stop_rc "$FOLLOW" TERM 10
for f in "$T"/*.err; do
  if grep -q "Sanitizer\|runtime error" "$f"; then fail "$(basename "$f"): $(grep -m 3 "Sanitizer\|runtime error" "$f")"; fi
done
echo "chat tmux test: passed in $((SECONDS - START)) s"
