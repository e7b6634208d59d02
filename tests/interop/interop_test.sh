#!/usr/bin/env bash
# Interop test: p2p must write the same cores as the JavaScript reference
# (corestore 7.12.5 / hypercore 11.37.1, pinned in package.json).
#
# For each case: one random primary key, imported into a fresh P2P_HOME with
# `p2p id import`; the same blocks appended with `p2p core append NAME BLOCK`
# (one call per block) and with corestore_check.mjs (store.get({ name }),
# one append per block). Compared: key, discoveryKey, length, byteLength,
# fork; and treeHash / signature when `p2p --json core info` prints them.
# Also checks that `p2p core get` returns each block and `p2p core verify`
# accepts the core.
#
# Environment:
#   P2P                       p2p binary (default /tmp/b0/p2p)
#   P2P_INTEROP_PRIMARY_KEY   64 hex characters: use this primary key for
#                             every case instead of random ones (to reproduce)
#
# Exit: 0 pass, 1 mismatch or error, 77 skipped (no node/npm, or the pinned
# packages cannot be installed).

set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
P2P="${P2P:-/tmp/b0/p2p}"

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"

# The binary may be being rebuilt by someone else: wait briefly (bounded).
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -x "$P2P" ] && break
    sleep 1
done
[ -x "$P2P" ] || fail "p2p binary not found or not executable: $P2P (set P2P=...)"

# --- reference packages ------------------------------------------------------
if [ ! -d "$HERE/node_modules/corestore" ] || [ ! -d "$HERE/node_modules/hypercore" ]; then
    echo "installing the pinned JavaScript reference into $HERE/node_modules"
    if [ -f "$HERE/package-lock.json" ]; then install=(ci); else install=(install); fi
    if ! install_log="$(cd "$HERE" && timeout 300 npm "${install[@]}" --no-audit --no-fund 2>&1)"; then
        echo "$install_log" | tail -n 20
        skip "npm ${install[*]} failed (no network or registry?)"
    fi
fi
versions="$(cd "$HERE" && node -e '
  const v = (p) => require("./node_modules/" + p + "/package.json").version
  console.log(v("corestore"), v("hypercore"))')" || fail "cannot read the installed reference versions"
echo "reference: corestore/hypercore $versions"

# --- scratch space -----------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/p2p-interop.XXXXXX")" || fail "mktemp failed"
trap 'rm -rf "$WORK"' EXIT

random_key() {
    if [ -n "${P2P_INTEROP_PRIMARY_KEY:-}" ]; then
        printf '%s\n' "$P2P_INTEROP_PRIMARY_KEY"
    else
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
        echo
    fi
}

# Retry a p2p call a few times if the binary vanished (rebuild in progress).
p2p() {
    local i
    for i in 1 2 3 4 5; do
        [ -x "$P2P" ] && break
        sleep 1
    done
    "$P2P" "$@"
}

failures=0

# run_case NAME BLOCK...
run_case() {
    local name="$1"; shift
    local pk; pk="$(random_key)"
    [[ "$pk" =~ ^[0-9a-fA-F]{64}$ ]] || fail "bad primary key: '$pk'"
    local label="name='$name' blocks=$#"
    echo "  $label primaryKey=$pk"
    local case_dir="$WORK/case$((++case_no))"
    mkdir -p "$case_dir/home"
    export P2P_HOME="$case_dir/home"

    if ! printf '%s\n' "$pk" | p2p -q id import >"$case_dir/import.out" 2>"$case_dir/import.err"; then
        cat "$case_dir/import.err" >&2
        fail "$label: p2p id import failed"
    fi

    local b i=0
    for b in "$@"; do
        if ! p2p -q core append -- "$name" "$b" 2>"$case_dir/append.err"; then
            cat "$case_dir/append.err" >&2
            fail "$label: p2p core append (block $i) failed"
        fi
        i=$((i + 1))
    done

    if ! p2p --json core info -- "$name" >"$case_dir/p2p.json" 2>"$case_dir/info.err"; then
        cat "$case_dir/info.err" >&2
        fail "$label: p2p core info failed"
    fi
    if ! p2p --json core verify -- "$name" >"$case_dir/verify.json" 2>"$case_dir/verify.err"; then
        cat "$case_dir/verify.err" >&2
        echo "  mismatch: $label: p2p core verify failed" >&2
        failures=$((failures + 1))
    fi

    # Blocks read back from p2p (raw bytes) must equal the blocks written.
    i=0
    for b in "$@"; do
        if ! p2p core get -- "$name" "$i" >"$case_dir/get.$i" 2>"$case_dir/get.err"; then
            cat "$case_dir/get.err" >&2
            echo "  mismatch: $label: p2p core get $i failed" >&2
            failures=$((failures + 1))
        elif ! printf '%s' "$b" | cmp -s - "$case_dir/get.$i"; then
            echo "  mismatch: $label: p2p core get $i returned different bytes" >&2
            failures=$((failures + 1))
        fi
        i=$((i + 1))
    done

    if ! (cd "$HERE" && timeout 30 node corestore_check.mjs "$pk" "$name" "$@") \
            >"$case_dir/js.json" 2>"$case_dir/js.err"; then
        cat "$case_dir/js.err" >&2
        fail "$label: corestore_check.mjs failed"
    fi

    if python3 - "$case_dir/p2p.json" "$case_dir/js.json" "$case_dir/verify.json" "$label" "$pk" <<'EOF'
import json, sys
p2p_path, js_path, verify_path, label, pk = sys.argv[1:6]
p2p = json.loads(open(p2p_path).read().strip().splitlines()[-1])
js = json.loads(open(js_path).read().strip().splitlines()[-1])
try:
    verify = json.loads(open(verify_path).read().strip().splitlines()[-1])
except Exception:
    verify = {}

# Always compared.
fields = ["key", "discoveryKey", "length", "byteLength", "fork"]
# Compared only when p2p prints them (JS side always has them).
# "signature" is the stored container (68-byte multisig for manifest v1),
# "signatureEd25519" the bare 64-byte ed25519 signature.
optional = ["treeHash", "signature", "signatureEd25519"]
compared, skipped, bad = [], [], []

def norm(v):
    return v.lower() if isinstance(v, str) else v

for f in fields + optional:
    if f not in p2p:
        if f in fields:
            bad.append((f, "<missing>", js.get(f)))
        else:
            skipped.append(f)
        continue
    compared.append(f)
    if norm(p2p[f]) != norm(js.get(f)):
        bad.append((f, p2p[f], js.get(f)))

if verify.get("verified") is not True:
    bad.append(("p2p core verify: verified", verify.get("verified"), True))

if bad:
    print(f"  MISMATCH {label} primaryKey={pk}")
    for f, a, b in bad:
        print(f"    {f}:\n      p2p: {a}\n      js:  {b}")
    sys.exit(1)
note = f" (not printed by p2p: {', '.join(skipped)})" if skipped else ""
print(f"  ok {label}: {', '.join(compared)} equal; key={js['key'][:16]}..{note}")
EOF
    then :; else failures=$((failures + 1)); fi
}

case_no=0
long_block="$(printf 'x%.0s' $(seq 1 5000))"

echo "case 1"
run_case "a" "hello"
echo "case 2"
run_case "log-1" "first block" "second: ümlaut ✓" "$long_block"
echo "case 3"
run_case "ünï" "0" "1" "" "three with spaces" "-leading dash" \
    "$(printf 'tab\tand\nnewline')" "日本語" "7" "$long_block$long_block" "last"

if [ "$failures" -ne 0 ]; then
    echo "FAIL: $failures mismatch(es); primary keys are printed above (reproduce with P2P_INTEROP_PRIMARY_KEY=...)" >&2
    exit 1
fi
echo "PASS: p2p writes the same cores as corestore $versions"
exit 0
