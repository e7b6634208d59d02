#!/usr/bin/env bash
# p2p chat between homes on a private DHT of 4 nodes on 127.0.0.1 (never the
# public bootstrap nodes):
#  1. three homes in one open room, each with an interactive session fed from
#     a FIFO as its always-online peer: nicknames, a conversation by
#     `chat send` (exit 0, also from a home with no session), the same history
#     in the same causal order in every home;
#  2. 1,000 messages from three writers at once converge to one order, and a
#     `chat log --follow --json` printed every entry once;
#  3. a home offline while two others talk (one of which then leaves) catches
#     up with `chat log --sync`, its departed author's messages included; with
#     nothing new, --sync ends soon after meeting a peer;
#  4. a private room: the creator adds a member by key; a non-member's
#     messages are shown nowhere, a removed member's later ones neither;
#  5. exit codes: no peer reached, no room, oversized messages (nothing
#     written), --since; a session ends with exit 0 at the end of its input.
# The interactive line editor in a terminal is chat_tmux_test.sh.
set -euo pipefail
: "${P2P:?set P2P to the p2p binary}"
NODES=4
BURST=(334 333 333)  # section 2: messages per writer
MESH_BOUND=70        # s: sessions see each other (lookups every 5 s in a join's first minute, then 30 s)
SPREAD_BOUND=30      # s: one message reaches every home
BURST_BOUND=120      # s: the 1,000 messages are in every home
SYNC_TIMEOUT=30      # s: chat log --sync --timeout

T=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  {
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
# tails FILE...: the last lines of each (for failure reports).
TAIL_LINES=8

# --- a private DHT of 4 nodes -----------------------------------------------------------
start_node 0
node_address 0
for i in $(seq 1 $((NODES - 1))); do start_node "$i" "${ADDR[0]}"; done
for i in $(seq 1 $((NODES - 1))); do node_address "$i"; done
for i in $(seq 0 $((NODES - 1))); do
  ok=
  for _ in 1 2 3 4 5; do
    run "$P2P" dht ping "${ADDR[$i]}" --timeout 2
    if [ "$RC" = 0 ]; then ok=1; break; fi
  done
  [ -n "$ok" ] || fail "node $i (${ADDR[$i]}) does not answer a ping"
done
BOOT=$(IFS=,; echo "${ADDR[*]}")

# --- homes, sessions, histories -----------------------------------------------------------
declare -A KEY ID SESSION_PID SESSION_FD
at() {  # at HOME ARGS...: p2p in HOME on the private DHT
  local h=$1
  shift
  P2P_HOME="$T/$h" "$P2P" --bootstrap "$BOOT" "$@"
}
new_home() {  # new_home NAME: a home with a fresh identity; sets KEY[NAME] (hex), ID[NAME] (z-base-32)
  run at "$1" --json id create
  [ "$RC" = 0 ] || fail "id create in home $1: exit $RC"
  KEY[$1]=$(json 'j["publicKey"]' < "$T/out")
  ID[$1]=$(json 'j["id"]' < "$T/out")
  [[ "${KEY[$1]}" =~ ^[0-9a-f]{64}$ ]] || fail "id create --json printed no publicKey: $(cat "$T/out")"
}
# start_session LABEL HOME ROOM: `p2p chat ROOM` in HOME, its stdin the FIFO
# $T/LABEL.in (held open by this shell), its output in $T/LABEL.out and .err.
start_session() {
  local fd
  mkfifo "$T/$1.in"
  # $! is p2p itself: the shell that opens the FIFO execs it.
  P2P_HOME="$T/$2" "$P2P" --bootstrap "$BOOT" chat "$3" < "$T/$1.in" > "$T/$1.out" 2> "$T/$1.err" &
  SESSION_PID[$1]=$!
  PIDS+=("$!")
  exec {fd}> "$T/$1.in"
  SESSION_FD[$1]=$fd
}
session_alive() {  # session_alive LABEL: fails with its output when it exited
  kill -0 "${SESSION_PID[$1]}" 2>/dev/null && return 0
  tails "$T/$1.out" "$T/$1.err"
  fail "the chat session $1 exited"
}
say() {  # say LABEL LINE...: lines typed into a session
  session_alive "$1"
  local label=$1
  shift
  (printf '%s\n' "$@" >&"${SESSION_FD[$label]}") || fail "writing to the session $label failed"
}
# stop_session LABEL: /quit, then the exit status in RC (bounded).
stop_session() {
  local i pid=${SESSION_PID[$1]}
  say "$1" /quit
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { tails "$T/$1.out" "$T/$1.err"; fail "session $1 still running 10 s after /quit"; }
  RC=0
  wait "$pid" || RC=$?
  close_input "$1"
}
kill_session() {  # kill_session LABEL: SIGKILL (the home goes offline without a word)
  { kill -9 "${SESSION_PID[$1]}"; wait "${SESSION_PID[$1]}" || true; } 2> /dev/null
  close_input "$1"
}
close_input() {  # close_input LABEL: closes the session's FIFO (its end of input)
  local fd=${SESSION_FD[$1]}
  exec {fd}>&-
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND (every 0.3 s) until it
# succeeds; false after SECONDS, with WAIT_FAILED="WHAT (not within SECONDS s)".
wait_until() {
  local bound=$1 what=$2 begin=$SECONDS
  shift 2
  for _ in $(seq 1 $((bound * 4))); do
    if "$@"; then return 0; fi
    [ $((SECONDS - begin)) -lt "$bound" ] || break
    sleep 0.3
  done
  WAIT_FAILED="$what (not within $bound s)"
  return 1
}

# Normalises `p2p chat log --json` (stdin) to one entry a line: position, type,
# author, writer, seq, nick, text (JSON-quoted), member, admin — tab-separated.
# Exit 2 with a message when a line is malformed.
cat > "$T/norm.py" <<'PY'
import json, re, sys
hex64 = re.compile(r"[0-9a-f]{64}")
iso = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
need = {"position", "type", "author", "nick", "time", "timeMs", "writer", "seq"}
n = 0
def bad(why, line):
    print(f"chat log --json line {n + 1}: {why}: {line[:300]}", file=sys.stderr)
    sys.exit(2)
for line in sys.stdin:
    if not line.strip():
        continue
    try:
        j = json.loads(line)
    except ValueError:
        bad("not JSON", line)
    if need - set(j):
        bad(f"no {sorted(need - set(j))}", line)
    kind = j["type"]
    if kind not in ("join", "message", "nick", "add", "remove"):
        bad("unknown type", line)
    if j["position"] != n:
        bad(f"position {j['position']}, expected {n}", line)
    if not hex64.fullmatch(j["author"]) or not hex64.fullmatch(j["writer"]):
        bad("author or writer is not 64 hex digits", line)
    if not iso.fullmatch(j["time"]) or not isinstance(j["timeMs"], int) or not isinstance(j["seq"], int):
        bad("time, timeMs or seq malformed", line)
    if (kind in ("message", "nick")) != ("text" in j):
        bad("text present for the wrong type", line)
    if (kind in ("add", "remove")) != ("member" in j):
        bad("member present for the wrong type", line)
    if kind == "join" and j["seq"] != 0:
        bad("a join that is not its writer's block 0", line)
    print("\t".join([str(j["position"]), kind, j["author"], j["writer"], str(j["seq"]), json.dumps(j["nick"]),
                     json.dumps(j.get("text", "")), j.get("member", "-"), str(j.get("admin", "-"))]))
    n += 1
PY
# history HOME ROOM [FILE]: the room's order as HOME holds it (chat log --json),
# normalised into FILE (default $T/HOME.hist).
history() {
  local file=${3:-$T/$1.hist}
  run at "$1" chat log "$2" --json
  [ "$RC" = 0 ] || fail "chat log '$2' in home $1: exit $RC"
  python3 "$T/norm.py" < "$T/out" > "$file" 2> "$T/norm.err" || fail "home $1: $(cat "$T/norm.err")"
}
texts() { awk -F'\t' '$2 == "message" { print $7 }' "$1"; }  # texts HIST: message texts in order (quoted)
has_text() {  # has_text HOME ROOM TEXT: HOME's history shows the message TEXT
  history "$1" "$2"
  texts "$T/$1.hist" | grep -qxF "\"$3\""
}
has_all() {  # has_all ROOM TEXT HOME...: every HOME shows TEXT
  local room=$1 text=$2 h
  shift 2
  for h in "$@"; do has_text "$h" "$room" "$text" || return 1; done
}
count_prefix() { texts "$1" | grep -c "^\"$2" || true; }  # count_prefix HIST PREFIX
sees() {  # sees LABEL NAME...: session LABEL said "-- NAME is here" for each NAME
  local label=$1 n
  shift
  session_alive "$label"
  for n in "$@"; do grep -qF -- "-- $n is here" "$T/$label.out" || return 1; done
}
wait_or_fail() {  # wait_or_fail SECONDS WHAT COMMAND... [-- FILES to show]
  wait_until "$@" || { tails "${SHOW[@]}"; fail "$WAIT_FAILED"; }
}
SHOW=()

ROOM="chat test lobby"
for h in a b c d e f; do new_home "$h"; done
step "a private DHT of $NODES nodes; homes a b c d e f"

# --- 1. three homes in one open room ----------------------------------------------------
S1=$SECONDS
start_session a a "$ROOM"
sleep 2  # (the first session's announce lands, so that the next ones' first lookups find it)
start_session b b "$ROOM"
sleep 1
start_session c c "$ROOM"
P2P_HOME="$T/c" "$P2P" --bootstrap "$BOOT" --json chat log "$ROOM" --follow > "$T/follow.out" 2> "$T/follow.err" &
FOLLOW_PID=$!
PIDS+=("$!")
SHOW=("$T/a.out" "$T/a.err" "$T/b.out" "$T/b.err" "$T/c.out" "$T/c.err")
mesh() { sees a "${ID[b]:0:8}" "${ID[c]:0:8}" && sees b "${ID[a]:0:8}" "${ID[c]:0:8}" && sees c "${ID[a]:0:8}" "${ID[b]:0:8}"; }
wait_or_fail "$MESH_BOUND" "the sessions of a, b and c do not all say the other two are here" mesh
MESH_SECONDS=$((SECONDS - S1))
for h in a b c; do
  grep -q -- "^-- joined room $ROOM" "$T/$h.out" || fail "session $h did not say it joined: $(head -c 300 "$T/$h.out")"
done
step "1a. sessions a, b, c see each other after ${MESH_SECONDS}s"

say a "/nick alice"
say b "/nick bob"
say c "/nick carol"
nicks() {  # every home shows the three nick entries
  local h
  for h in a b c; do
    history "$h" "$ROOM"
    [ "$(awk -F'\t' '$2 == "nick"' "$T/$h.hist" | wc -l)" = 3 ] || return 1
  done
}
wait_or_fail "$SPREAD_BOUND" "the three /nick entries are not in every home" nicks
# A conversation, each message sent once its sender's home holds the one before:
# the order must then be the order of sending.
CONVERSATION=()
for round in 1 2; do
  for h in a b c; do
    text="$h says $round"
    expect_rc 0 "chat send from home $h once the others are online" at "$h" chat send "$ROOM" "$text" --timeout 20
    wait_or_fail "$SPREAD_BOUND" "'$text' (sent from $h) is not in every home's history" has_all "$ROOM" "$text" a b c
    CONVERSATION+=("\"$text\"")
  done
done
# From a home with no session of its own, exit 0 means another home holds it.
# (`chat send` appends before it joins the room: a home that had not fetched
# the room writes a message concurrent with all of it, so where it sorts is
# not checked here, only that every home has it in the same place.)
expect_rc 0 "chat send from home e (no session there), the others online" at e chat send "$ROOM" "e says hi" --timeout 20
wait_or_fail "$SPREAD_BOUND" "'e says hi' is not in every home's history" has_all "$ROOM" "e says hi" a b c
for h in a b c; do history "$h" "$ROOM"; done
cmp -s "$T/a.hist" "$T/b.hist" || { diff "$T/a.hist" "$T/b.hist" | head -20; fail "homes a and b hold different histories"; }
cmp -s "$T/a.hist" "$T/c.hist" || { diff "$T/a.hist" "$T/c.hist" | head -20; fail "homes a and c hold different histories"; }
[ "$(texts "$T/a.hist" | grep -vxF '"e says hi"')" = "$(printf '%s\n' "${CONVERSATION[@]}")" ] ||
  fail "the conversation is not in the order it was held: $(texts "$T/a.hist" | tr '\n' ' ')"
E_AT=$(texts "$T/a.hist" | grep -nxF '"e says hi"' | cut -d: -f1)
# Each message carries its author's nickname and identity.
for h in a b c; do
  nick=$(case $h in a) echo alice ;; b) echo bob ;; c) echo carol ;; esac)
  line=$(awk -F'\t' -v t="\"$h says 2\"" '$7 == t' "$T/a.hist")
  [ "$(cut -f3 <<< "$line")" = "${KEY[$h]}" ] || fail "'$h says 2' has author $(cut -f3 <<< "$line"), not ${KEY[$h]}"
  [ "$(cut -f6 <<< "$line")" = "\"$nick\"" ] || fail "'$h says 2' has nick $(cut -f6 <<< "$line"), not $nick"
done
[ "$(awk -F'\t' '$2 == "join"' "$T/a.hist" | wc -l)" = 4 ] || fail "expected 4 join entries (one per writer): $(cut -f2 "$T/a.hist" | tr '\n' ' ')"
# The sessions showed the others' messages as they came.
for h in a b c; do
  for other in "alice: a says 2" "bob: b says 2" "carol: c says 2"; do
    grep -qF -- "$other" "$T/$h.out" || { tails "$T/$h.out"; fail "session $h did not show '$other'"; }
  done
done
step "1b. nicks and a 7-message conversation (chat send, exit 0): the same $(wc -l < "$T/a.hist") entries in the same order in a, b and c (e's message, sent last from a home that had not fetched the room, is message $E_AT of 7)"

# --- 2. 1,000 messages from three writers at once ------------------------------------------
TOTAL=$((BURST[0] + BURST[1] + BURST[2]))
i=0
for h in a b c; do
  seq -f "$h-burst-%04g" 1 "${BURST[$i]}" > "$T/burst.$h"
  i=$((i + 1))
done
S2=$SECONDS
# (Each burst fits in a pipe's buffer: the three sessions get theirs at once.)
for h in a b c; do say "$h" "$(cat "$T/burst.$h")"; done
burst_done() {
  local h
  for h in a b c; do
    session_alive "$h"
    history "$h" "$ROOM"
    [ "$(count_prefix "$T/$h.hist" "[abc]-burst-")" = "$TOTAL" ] || return 1
  done
}
if ! wait_until "$BURST_BOUND" "all $TOTAL messages in every home" burst_done; then
  for h in a b c; do echo "  home $h holds $(count_prefix "$T/$h.hist" "[abc]-burst-") of $TOTAL"; done
  tails "${SHOW[@]}"
  fail "$WAIT_FAILED"
fi
BURST_SECONDS=$((SECONDS - S2))
for h in b c; do
  cmp -s "$T/a.hist" "$T/$h.hist" || { diff "$T/a.hist" "$T/$h.hist" | head -20; fail "after the burst, homes a and $h hold different orders"; }
done
# Every message once, each writer's in the order it wrote them.
i=0
for h in a b c; do
  [ "$(count_prefix "$T/a.hist" "$h-burst-")" = "${BURST[$i]}" ] || fail "$(count_prefix "$T/a.hist" "$h-burst-") of $h's ${BURST[$i]} messages"
  [ "$(texts "$T/a.hist" | grep "^\"$h-burst-" | tr -d '"')" = "$(cat "$T/burst.$h")" ] ||
    fail "$h's messages are not each once in the order written"
  i=$((i + 1))
done
python3 - "$T/a.hist" <<'PY' || fail "the room order breaks a writer's sequence"
import sys
last = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    w, seq = f[3], int(f[4])
    if seq <= last.get(w, -1):
        sys.exit(f"writer {w[:16]}: seq {seq} after {last[w]}")
    last[w] = seq
PY
# Interleaved, not one writer after another: the burst is a merge.
SWITCHES=$(texts "$T/a.hist" | grep -- "-burst-" | cut -c2 | uniq | wc -l)
[ "$SWITCHES" -gt 3 ] || echo "   (note: the three bursts were merged one writer after another: $SWITCHES runs)"
step "2. $TOTAL messages from 3 writers at once: in every home within ${BURST_SECONDS}s, one identical order of $(wc -l < "$T/a.hist") entries ($SWITCHES runs of one writer)"

# The follower in home c printed every entry exactly once.
python3 - "$T/follow.out" "$T/c.hist" <<'PY' || { tails "$T/follow.err"; fail "chat log --follow --json in home c"; }
import json, sys
seen = {}
for n, line in enumerate(open(sys.argv[1]), 1):
    j = json.loads(line)
    k = (j["writer"], j["seq"])
    if k in seen:
        sys.exit(f"line {n}: entry {k[0][:16]}/{k[1]} printed twice")
    seen[k] = j
want = {(f[3], int(f[4])) for f in (l.rstrip("\n").split("\t") for l in open(sys.argv[2]))}
if set(seen) != want:
    sys.exit(f"--follow printed {len(seen)} entries, the history has {len(want)}: "
             f"{len(want - set(seen))} missing, {len(set(seen) - want)} extra")
PY
LATE=$(grep -c '"late":true' "$T/follow.out" || true)
step "2b. chat log --follow --json in home c printed each of the $(wc -l < "$T/c.hist") entries once ($LATE marked late)"

# --- 3. offline, then back --------------------------------------------------------------------
kill_session c
{ kill -9 "$FOLLOW_PID"; wait "$FOLLOW_PID" || true; } 2> /dev/null
history c "$ROOM"
cp "$T/c.hist" "$T/c.before"
SHOW=("$T/a.out" "$T/a.err" "$T/b.out" "$T/b.err")
for i in 1 2 3; do
  say a "a offline $i"
  wait_or_fail "$SPREAD_BOUND" "'a offline $i' (session a) did not reach home b" has_text b "$ROOM" "a offline $i"
  say b "b offline $i"
  wait_or_fail "$SPREAD_BOUND" "'b offline $i' (session b) did not reach home a" has_text a "$ROOM" "b offline $i"
done
history a "$ROOM"
stop_session a
[ "$RC" = 0 ] || { tails "$T/a.out" "$T/a.err"; fail "session a exited $RC after /quit, expected 0"; }
history b "$ROOM"
cmp -s "$T/a.hist" "$T/b.hist" || { diff "$T/a.hist" "$T/b.hist" | head; fail "a and b hold different histories before a left"; }
history c "$ROOM"
cmp -s "$T/c.hist" "$T/c.before" || fail "home c's history changed while it was offline"
S3=$SECONDS
run timeout $((SYNC_TIMEOUT + 30)) env P2P_HOME="$T/c" "$P2P" --bootstrap "$BOOT" chat log "$ROOM" --json --sync --timeout "$SYNC_TIMEOUT"
SYNC_SECONDS=$((SECONDS - S3))
[ "$RC" = 0 ] || fail "chat log --sync in home c: exit $RC"
python3 "$T/norm.py" < "$T/out" > "$T/c.sync" 2> "$T/norm.err" || fail "home c --sync: $(cat "$T/norm.err")"
for i in 1 2 3; do
  texts "$T/c.sync" | grep -qxF "\"a offline $i\"" ||
    fail "home c's chat log --sync (${SYNC_SECONDS}s) lacks 'a offline $i', written by a, who left: $(texts "$T/c.sync" | tail -n 4 | tr '\n' ' ')"
done
cmp -s "$T/c.sync" "$T/b.hist" || { diff "$T/c.sync" "$T/b.hist" | head; fail "home c's synced history differs from b's"; }
history c "$ROOM"
cmp -s "$T/c.hist" "$T/b.hist" || fail "home c's history after --sync (a plain chat log) differs from b's"
# Nothing new to fetch: --sync ends soon after meeting b (quiet for a while),
# not at its --timeout.
S3=$SECONDS
run timeout $((SYNC_TIMEOUT + 30)) env P2P_HOME="$T/c" "$P2P" --bootstrap "$BOOT" chat log "$ROOM" --json --sync --timeout "$SYNC_TIMEOUT"
RESYNC_SECONDS=$((SECONDS - S3))
[ "$RC" = 0 ] || fail "a second chat log --sync in home c: exit $RC"
python3 "$T/norm.py" < "$T/out" > "$T/c.sync" 2> "$T/norm.err" || fail "home c's second --sync: $(cat "$T/norm.err")"
cmp -s "$T/c.sync" "$T/b.hist" || fail "home c's second --sync printed a history that differs from b's"
[ "$RESYNC_SECONDS" -lt $((SYNC_TIMEOUT - 5)) ] ||
  fail "chat log --sync with nothing new to fetch (b online) took ${RESYNC_SECONDS}s: it waited for its --timeout $SYNC_TIMEOUT instead of ending once quiet"
step "3. c offline while a and b talked, a left: chat log --sync in c (with b online) has a's messages after ${SYNC_SECONDS}s; $(wc -l < "$T/c.hist") entries as in b; with nothing new, --sync ends after ${RESYNC_SECONDS}s"

# --- 4. a private room ---------------------------------------------------------------------
# writer_of HOME: "KEY LENGTH" of the core HOME writes in the private room (empty: none).
writer_of() {
  run at "$1" --json core list
  [ "$RC" = 0 ] || fail "core list in home $1: exit $RC"
  python3 -c '
import json, sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("name") == "chat/" + sys.argv[2]: print(j["key"], j["length"])' "$T/out" "$PKEY"
}
holds() {  # holds HOME "KEY LENGTH": HOME's store holds that core up to LENGTH
  run at "$1" --json core list
  python3 -c '
import json, sys
key, length = sys.argv[2].split()
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j["key"] == key and j["length"] >= int(length): sys.exit(0)
sys.exit(1)' "$T/out" "$2"
}
wrote_more() {  # wrote_more HOME LENGTH: HOME's writer core grew beyond LENGTH
  local w
  w=$(writer_of "$1")
  [ -n "$w" ] && [ "${w#* }" -gt "$2" ]
}
run at a --json chat create "chat test private"
[ "$RC" = 0 ] || fail "chat create: exit $RC"
LINK=$(json 'j["link"]' < "$T/out")
PKEY=$(json 'j["key"]' < "$T/out")
[ "$(json 'j["title"]' < "$T/out")" = "chat test private" ] || fail "chat create --json: title $(cat "$T/out")"
[[ "$LINK" =~ ^p2p://[a-z0-9]+$ ]] || fail "chat create printed the link '$LINK'"
[[ "$PKEY" =~ ^[0-9a-f]{64}$ ]] || fail "chat create printed the key '$PKEY'"
run at a chat create
if [ "$RC" != 0 ] || ! [[ "$(head -n 1 "$T/out")" =~ ^p2p:// ]]; then
  fail "chat create without --json: exit $RC, stdout '$(head -c 100 "$T/out")'"
fi
[ "$(head -n 1 "$T/out")" != "$LINK" ] || fail "two chat create gave the same room"
S4=$SECONDS
start_session pa a "$LINK"
sleep 2
start_session pb b "$LINK"
start_session pd d "$LINK"
SHOW=("$T/pa.out" "$T/pa.err" "$T/pb.out" "$T/pb.err" "$T/pd.out" "$T/pd.err")
private_mesh() { sees pa "${ID[b]:0:8}" "${ID[d]:0:8}" && sees pb "${ID[a]:0:8}" && sees pd "${ID[a]:0:8}"; }
wait_or_fail "$MESH_BOUND" "the sessions of a, b and d in the private room do not see each other" private_mesh
PRIVATE_MESH_SECONDS=$((SECONDS - S4))
grep -qF "not a member" "$T/pa.out" && fail "the creator's session says it is not a member: $(grep "not a member" "$T/pa.out")"
grep -qF -- "-- you are not a member of this room yet: ask an admin to /add ${ID[b]}" "$T/pb.out" ||
  fail "b's session (not a member yet) does not say so: $(head -c 400 "$T/pb.out")"
say pa "/add ${KEY[b]}"
added() { history b "$LINK" && awk -F'\t' -v k="${KEY[b]}" '$2 == "add" && $8 == k && $9 == "False"' "$T/b.hist" | grep -q .; }
wait_or_fail "$SPREAD_BOUND" "b's home does not show a's /add of b" added
# (b writes once its session has merged the /add, so that its message follows it.)
wait_or_fail 10 "b's session does not show that a added b" grep -qF " added ${ID[b]:0:8}" "$T/pb.out"
say pb "b private 1"
wait_or_fail "$SPREAD_BOUND" "'b private 1' (b, a member) is not in a's history" has_text a "$LINK" "b private 1"
# d is not a member: it cannot add itself, and what it writes is shown nowhere.
say pd "/add ${KEY[d]}"
wait_or_fail 10 "d's session does not refuse d's /add" grep -qF -- "-- only the room's admins can add and remove members" "$T/pd.out"
say pd "d intruder 1"
wait_or_fail 10 "d's session did not write 'd intruder 1' to its core" wrote_more d 0
run at d chat send "$LINK" "d intruder 2" --timeout 10
D_SEND=$RC
D_WRITER=$(writer_of d)
[ "${D_WRITER#* }" = 3 ] || fail "d's writer core is '$D_WRITER', expected 3 blocks (hello and two messages)"
say pb "b private 2"
wait_or_fail "$SPREAD_BOUND" "'b private 2' is not in a's history" has_text a "$LINK" "b private 2"
# Peers may or may not keep a non-member's core: either way nothing of it is shown.
if wait_until 10 "d's writer at a" holds a "$D_WRITER"; then D_AT_A="d's core reached a"; else D_AT_A="d's core did not reach a in 10 s"; fi
for h in a b d; do
  history "$h" "$LINK"
  texts "$T/$h.hist" | grep -q "intruder" && fail "home $h shows a non-member's message: $(texts "$T/$h.hist" | grep intruder | head -n 2 | tr '\n' ' ')"
  grep -q "${KEY[d]}" "$T/$h.hist" && fail "home $h's history names d, a non-member: $(grep "${KEY[d]}" "$T/$h.hist" | head -n 2)"
done
for s in pa pb pd; do
  grep -q "intruder" "$T/$s.out" && fail "session $s shows a non-member's message: $(grep intruder "$T/$s.out" | head -n 2)"
done
cmp -s "$T/a.hist" "$T/b.hist" || { diff "$T/a.hist" "$T/b.hist" | head; fail "a and b hold different histories of the private room"; }
[ "$(texts "$T/a.hist" | tr '\n' ' ')" = '"b private 1" "b private 2" ' ] || fail "a's private room shows $(texts "$T/a.hist" | tr '\n' ' ')"
grep -qF ": b private 1" "$T/pa.out" || fail "a's session did not show 'b private 1'"
# A removed member's later messages are not shown; its earlier ones stay.
say pa "/remove ${KEY[b]}"
removed() { history b "$LINK" && awk -F'\t' -v k="${KEY[b]}" '$2 == "remove" && $8 == k' "$T/b.hist" | grep -q .; }
wait_or_fail "$SPREAD_BOUND" "b's home does not show a's /remove of b" removed
wait_or_fail 10 "b's session does not show that a removed b" grep -qF " removed ${ID[b]:0:8}" "$T/pb.out"
B_BEFORE=$(writer_of b)
say pb "b after removal"
wait_or_fail 10 "b's session did not write 'b after removal' to its core" wrote_more b "${B_BEFORE#* }"
B_WRITER=$(writer_of b)
wait_or_fail "$SPREAD_BOUND" "b's writer core ($B_WRITER) did not reach a after the removal" holds a "$B_WRITER"
for h in a b; do
  history "$h" "$LINK"
  texts "$T/$h.hist" | grep -qxF '"b after removal"' && fail "home $h shows a message b wrote after being removed"
  [ "$(texts "$T/$h.hist" | tr '\n' ' ')" = '"b private 1" "b private 2" ' ] || fail "after the removal home $h shows $(texts "$T/$h.hist" | tr '\n' ' ')"
done
cmp -s "$T/a.hist" "$T/b.hist" || { diff "$T/a.hist" "$T/b.hist" | head; fail "a and b hold different histories of the private room after the removal"; }
for s in pa pb pd; do
  stop_session "$s"
  [ "$RC" = 0 ] || { tails "$T/$s.out" "$T/$s.err"; fail "session $s exited $RC after /quit, expected 0"; }
done
step "4. private room (sessions met after ${PRIVATE_MESH_SECONDS}s): b added by key, d's messages shown nowhere (d's chat send exit $D_SEND; $D_AT_A), b's after its removal neither"

# --- 5. exit codes and errors ----------------------------------------------------------------
expect_rc 1 "chat send with nobody in the room" at e chat send "chat test empty room" "anyone?" --timeout 3
expect_err "stored locally, no peer reached" "chat send with nobody in the room"
[ "$(wc -l < "$T/err")" -le 2 ] || fail "chat send with nobody in the room: $(wc -l < "$T/err") lines on stderr"
history e "chat test empty room"
[ "$(texts "$T/e.hist")" = '"anyone?"' ] || fail "the undelivered message is not in the sender's history: $(cat "$T/e.hist")"
expect_rc 2 "chat without a room" at e chat
[ -s "$T/err" ] || fail "chat without a room: nothing on stderr"
expect_rc 2 "chat send without a room" at e chat send
expect_rc 2 "chat log without a room" at e chat log
head -c 4097 /dev/zero | tr '\0' x > "$T/big"
run at f chat send "chat test big" "$(cat "$T/big")" --timeout 2
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "a 4,097-byte message: exit $RC, expected 1 or 2"
BIG_RC=$RC
expect_err "at most 4096 bytes" "a 4,097-byte message"
run at f chat send "chat test big" - --timeout 2 < "$T/big"
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "a 4,097-byte message on stdin: exit $RC, expected 1 or 2"
expect_err "at most 4096 bytes" "a 4,097-byte message on stdin"
head -c 100000 /dev/zero | tr '\0' x > "$T/huge"
run at f chat send "chat test big" --timeout 2 < "$T/huge"
[ "$RC" = 1 ] || [ "$RC" = 2 ] || fail "100 kB on stdin: exit $RC, expected 1 or 2"
[ -s "$T/err" ] || fail "100 kB on stdin: nothing on stderr"
history f "chat test big"
[ -s "$T/f.hist" ] && fail "oversized messages left entries: $(head -c 300 "$T/f.hist")"
run at f --json core list
grep -q '"name":"chat/' "$T/out" && fail "an oversized message created a writer core: $(cat "$T/out")"
# 4,096 bytes exactly is a message (stored; nobody is there to take it).
head -c 4096 /dev/zero | tr '\0' y > "$T/max"
expect_rc 1 "a 4,096-byte message with nobody in the room" at f chat send "chat test big" - --timeout 2 < "$T/max"
history f "chat test big"
[ "$(texts "$T/f.hist")" = "\"$(cat "$T/max")\"" ] || fail "the 4,096-byte message is not in the history"
# --since: an age, a UTC time; a bad one is a usage error.
history b "$ROOM"
run at b chat log "$ROOM" --json --since 1h
python3 "$T/norm.py" < "$T/out" > "$T/since" 2> "$T/norm.err" || fail "chat log --since 1h: $(cat "$T/norm.err")"
cmp -s "$T/since" "$T/b.hist" || fail "chat log --since 1h does not print the whole (recent) history"
expect_rc 0 "chat log --since a future time" at b chat log "$ROOM" --json --since 2099-01-01T00:00:00Z
[ -s "$T/out" ] && fail "chat log --since 2099-01-01T00:00:00Z printed entries: $(head -c 200 "$T/out")"
expect_rc 2 "chat log --since yesterday" at b chat log "$ROOM" --since yesterday
expect_err "since" "chat log --since yesterday"
# An oversized line in a session is refused there and nothing is posted.
say b "$(cat "$T/big")"
wait_or_fail 10 "session b does not refuse a 4,097-byte line" grep -qF -- "-- a message is at most 4096 bytes" "$T/b.out"
history b "$ROOM"
texts "$T/b.hist" | grep -q "xxxxxxxx" && fail "session b posted a 4,097-byte line"
step "5. no peer: exit 1, stored locally; no room: exit 2; 4,097 bytes refused (exit $BIG_RC), nothing written; 4,096 bytes taken"

# --- the end: sanitizers, a session at end of input, a follower on SIGTERM ----------------------
close_input b
for _ in $(seq 1 100); do kill -0 "${SESSION_PID[b]}" 2>/dev/null || break; sleep 0.1; done
kill -0 "${SESSION_PID[b]}" 2>/dev/null && fail "session b still running 10 s after the end of its input"
RC=0
wait "${SESSION_PID[b]}" || RC=$?
[ "$RC" = 0 ] || fail "session b exited $RC at the end of its input, expected 0"
P2P_HOME="$T/b" "$P2P" --bootstrap "$BOOT" chat log "$ROOM" --follow > "$T/follow2.out" 2> "$T/follow2.err" &
F2=$!
PIDS+=("$F2")
wait_or_fail 10 "chat log --follow (text) prints the history" grep -qF "bob: b offline 3" "$T/follow2.out"
stop_rc "$F2" TERM 10
[ "$RC" = 0 ] || fail "chat log --follow exited $RC on SIGTERM, expected 0"
for f in "$T"/*.err; do
  if grep -q "Sanitizer\|runtime error" "$f"; then fail "$(basename "$f"): $(grep -m 3 "Sanitizer\|runtime error" "$f")"; fi
done
step "a session exits 0 at the end of its input; chat log --follow exits 0 on SIGTERM"
echo "chat test: passed in $((SECONDS - START)) s"
