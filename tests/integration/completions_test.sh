#!/usr/bin/env bash
# The committed completion files are exactly what 'p2p completion' prints,
# so they follow the command tree; the bash one is valid and completes.
source "$(dirname "$0")/lib.sh"
: "${SRC:?}"
for pair in "bash p2p.bash" "zsh _p2p" "fish p2p.fish"; do
  set -- $pair
  "$P2P" completion "$1" > "$T/$2"
  checks=$((checks + 1))
  if ! cmp -s "$T/$2" "$SRC/completions/$2"; then
    echo "FAIL: completions/$2 is stale; regenerate with: p2p completion $1 > completions/$2"
    failures=$((failures + 1))
  fi
done
expect_exit 0 "bash script parses" -- bash -n "$SRC/completions/p2p.bash"
out=$(bash -c "source '$SRC/completions/p2p.bash'; COMP_WORDS=(p2p core ap); COMP_CWORD=2; _p2p; echo \${COMPREPLY[*]}")
expect_eq "$out" "append" "bash completes 'p2p core ap'"
out=$(bash -c "source '$SRC/completions/p2p.bash'; COMP_WORDS=(p2p id ''); COMP_CWORD=2; _p2p; echo \${COMPREPLY[*]}")
expect_eq "$out" "create show export import --help -h --home --passphrase-file --json --quiet -q --bootstrap" "bash lists id subcommands"
if command -v zsh > /dev/null; then expect_exit 0 "zsh script parses" -- zsh -n "$SRC/completions/_p2p"; fi
if command -v fish > /dev/null; then expect_exit 0 "fish script parses" -- fish -n "$SRC/completions/p2p.fish"; fi
finish
