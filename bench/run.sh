#!/usr/bin/env bash
# Runs the C++ benchmarks and the JavaScript reference (../shared/bench/js)
# side by side on this machine and prints the ratios as a markdown table.
# Usage: bench/run.sh [N SIZE SINGLE_N]   (defaults: 100000 1024 10000, as run-all.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; SIZE=${2:-1024}; SINGLE_N=${3:-10000}
JS_SRC=${JS_BENCH:-../shared/bench/js}
[ -d "$JS_SRC" ] || { echo "bench: JavaScript bench not found at $JS_SRC (set JS_BENCH)"; exit 1; }

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$(nproc)" --target core_bench bee_bench replicate_bench dht_bench room_bench udx_bench p2p > /dev/null

js=build/bench-js
if [ ! -d "$js/node_modules" ]; then
  mkdir -p "$js" && cp -r "$JS_SRC"/. "$js"/
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

out=build/bench-results.jsonl
: > "$out"
# BENCH_ONLY=core,bee,kv,drive runs a subset (each part keeps both sides in the same run).
want() { [ -z "${BENCH_ONLY:-}" ] || [[ ",$BENCH_ONLY," == *",$1,"* ]]; }

if want core; then
echo "bench: JavaScript core-append ($N x $SIZE B)..." >&2
(cd "$js" && node core-append.js "$N" "$SIZE" "$SINGLE_N") | tail -n 1 >> "$out"
echo "bench: p2p core-append..." >&2
build/bench/core_bench "$N" "$SIZE" "$SINGLE_N" >> "$out"
fi

if want bee; then
echo "bench: JavaScript bee-put-get (100000 keys)..." >&2
(cd "$js" && node bee-put-get.js 100000 10000) | tail -n 1 >> "$out"
echo "bench: p2p bee-put-get..." >&2
build/bench/bee_bench 100000 10000 >> "$out"
fi

# 'p2p kv import' of 1,000,000 keys: peak RSS; then 'p2p kv get' as a whole process.
if want kv; then
kvhome=$(mktemp -d)
awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "key-%08d\tvalue-%d\n", (i * 7919) % 1000000, i }' > "$kvhome/in.tsv"
/usr/bin/time -f '%M' -o "$kvhome/rss" env P2P_HOME="$kvhome" build/p2p kv import < "$kvhome/in.tsv" 2> /dev/null
t0=$(date +%s%N)
for i in $(seq 200); do P2P_HOME="$kvhome" build/p2p kv get "key-$(printf '%08d' $((i * 4999)))" > /dev/null; done
t1=$(date +%s%N)
echo "{\"bench\":\"kv-1m\",\"impl\":\"p2p\",\"import_peak_rss_MB\":$(( $(cat "$kvhome/rss") / 1024 )),\"get_runs\":200,\"get_total_ns\":$((t1 - t0))}" >> "$out"
rm -rf "$kvhome"
fi

# Drive: 10,000 files of 4 KiB and a 1 GiB file, JavaScript then p2p, and cp.
if want drive; then
echo "bench: JavaScript drive-put-get (10000 x 4 KiB, 1024 MiB)..." >&2
(cd "$js" && BENCH_TIMEOUT=900 node drive-put-get.js 10000 4096 1024) | tail -n 1 >> "$out"
dd=$(mktemp -d)
mkdir -p "$dd/small"
for i in $(seq 0 9999); do head -c 4096 /dev/urandom > "$dd/small/f$i"; done
head -c $((1024 * 1024 * 1024)) /dev/urandom > "$dd/big"
sync
now() { date +%s%N; }
t0=$(now); P2P_HOME="$dd/h1" build/p2p drive put "$dd/small" /small 2> /dev/null > /dev/null; t1=$(now)
P2P_HOME="$dd/h1" build/p2p id show > /dev/null 2>&1
t2=$(now); P2P_HOME="$dd/h2" build/p2p drive mirror "$dd/small" 2> /dev/null > /dev/null; t3=$(now)
t4=$(now); P2P_HOME="$dd/h1" build/p2p drive get /small "$dd/small-out" 2> /dev/null; t5=$(now)
t6=$(now); P2P_HOME="$dd/h1" build/p2p drive put "$dd/big" /big 2> /dev/null; t7=$(now)
t8=$(now); P2P_HOME="$dd/h1" build/p2p drive get /big "$dd/big-out" 2> /dev/null; t9=$(now)
cmp -s "$dd/big" "$dd/big-out" || { echo "bench: big file round trip differs" >&2; exit 1; }
# The stream the JavaScript side reads (in process, hashing it): stdout into a pipe, checksummed.
want_sum=$(cksum < "$dd/big")
s0=$(now); got_sum=$(P2P_HOME="$dd/h1" build/p2p drive get /big - 2> /dev/null | cksum); s1=$(now)
[ "$got_sum" = "$want_sum" ] || { echo "bench: big file stream differs" >&2; exit 1; }
rm -f "$dd/big-out"; sync
c0=$(now); cp "$dd/big" "$dd/big-cp"; c1=$(now); sync "$dd/big-cp"; c2=$(now)
echo "{\"bench\":\"drive\",\"impl\":\"p2p\",\"small_put_ns\":$((t1 - t0)),\"mirror_ns\":$((t3 - t2)),\"small_get_ns\":$((t5 - t4)),\"big_put_ns\":$((t7 - t6)),\"big_get_ns\":$((t9 - t8)),\"big_stream_ns\":$((s1 - s0)),\"cp_ns\":$((c1 - c0)),\"cp_sync_ns\":$((c2 - c0))}" >> "$out"
rm -rf "$dd"
fi

# Replication over TCP on loopback: full downloads of 1 KiB and 64 KiB blocks,
# 100 random blocks in parallel; then one key of a 1,000,000-key bee fetched
# with 'p2p kv get --from --peer'.
if want replicate; then
echo "bench: JavaScript replicate (100000 x 1 KiB, 2000 x 64 KiB)..." >&2
(cd "$js" && BENCH_NO_SWARM=1 node replicate.js 100000 1024) | tail -n 1 >> "$out"
(cd "$js" && BENCH_NO_SWARM=1 node replicate.js 2000 65536) | tail -n 1 | sed 's/"bench":"replicate"/"bench":"replicate-64k"/' >> "$out"
echo "bench: p2p replicate..." >&2
build/bench/replicate_bench build/p2p 100000 1024 >> "$out"
build/bench/replicate_bench build/p2p 2000 65536 | sed 's/"bench":"replicate"/"bench":"replicate-64k"/' >> "$out"
rh=$(mktemp -d)
awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "key-%08d\tvalue-%d\n", (i * 7919) % 1000000, i }' |
  P2P_HOME="$rh/w" build/p2p kv import > /dev/null 2>&1
P2P_HOME="$rh/w" build/p2p seed --listen 127.0.0.1:0 > "$rh/seed.out" 2> /dev/null &
seed=$!
for _ in $(seq 100); do grep -q 'on 127' "$rh/seed.out" && break; sleep 0.1; done
port=$(sed -n 's/.*on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$rh/seed.out")
bkey=$(P2P_HOME="$rh/w" build/p2p --json kv info | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
t0=$(date +%s%N)
P2P_HOME="$rh/r" build/p2p kv get --from "$bkey" --peer "127.0.0.1:$port" -v key-00424242 > /dev/null 2> "$rh/get.err"
t1=$(date +%s%N)
fetched=$(sed -n 's/^fetched \([0-9]*\) block.*/\1/p' "$rh/get.err")
kill -INT $seed; wait $seed 2> /dev/null
echo "{\"bench\":\"kv-get-from\",\"impl\":\"p2p\",\"keys\":1000000,\"blocks_fetched\":${fetched:-0},\"total_ns\":$((t1 - t0))}" >> "$out"
rm -rf "$rh"
fi

# DHT: lookups and announces on local networks of 30 and 100 nodes (one
# process each side, real UDP on 127.0.0.1); the memory of 100,000 records.
if want dht; then
for n in 30 100; do
  echo "bench: JavaScript and p2p dht-lookup ($n nodes)..." >&2
  (cd "$js" && node dht-lookup.js "$n" 20) | tail -n 1 >> "$out"
  build/bench/dht_bench lookup "$n" 20 >> "$out"
done
echo "bench: JavaScript and p2p dht-records (100,000 records)..." >&2
[ -d bench/js-extra/node_modules ] || (cd bench/js-extra && npm ci --no-audit --no-fund --loglevel=error)
(cd bench/js-extra && node --expose-gc dht-records.mjs 100000) | tail -n 1 >> "$out"
build/bench/dht_bench records 100000 >> "$out"
fi

# Chat: merging 100,000 messages from 10 writers; a line entered in one home
# until another prints it (no JavaScript counterpart: Autobase is not used).
if want chat; then
echo "bench: p2p room merge (100,000 messages, 10 writers) and chat latency (100 messages)..." >&2
build/bench/room_bench 100000 10 | tail -n 1 >> "$out"
python3 bench/chat_latency.py build/p2p 100 >> "$out"
fi

# Connections: 256 MiB over one UDX stream on loopback (and a TCP stream on
# the same loop), JavaScript udx-native then p2p; the time from 'p2p swarm
# join --pipe' starting until the first byte of a peer that joined before it.
if want udx; then
echo "bench: JavaScript and p2p udx-bulk (256 MiB on loopback)..." >&2
[ -d bench/js-extra/node_modules ] || (cd bench/js-extra && npm ci --no-audit --no-fund --loglevel=error)
(cd bench/js-extra && node udx-bulk.mjs 256) | tail -n 1 >> "$out"
build/bench/udx_bench 256 >> "$out"
echo "bench: p2p swarm first data (10 rounds)..." >&2
python3 bench/swarm_first_data.py build/p2p 10 >> "$out"
fi

# Whole-process 'p2p core get NAME INDEX', averaged over 200 runs.
if want core; then
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
seq 1 1000 | P2P_HOME="$home" build/p2p core append bench --lines 2> /dev/null
t0=$(date +%s%N)
for _ in $(seq 200); do P2P_HOME="$home" build/p2p core get bench 500 > /dev/null; done
t1=$(date +%s%N)
echo "{\"bench\":\"cli-get\",\"impl\":\"p2p\",\"runs\":200,\"total_ns\":$((t1 - t0))}" >> "$out"
fi

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def find(bench, p2p):
    return next((r for r in rows if r.get("bench") == bench and (r.get("impl") == "p2p") == p2p), None)
def row(name, unit, j, c, target=None, higher=True):
    ratio = c / j if higher else j / c
    t = f"≥ {target}x" if target else ""
    ok = "" if not target else ("yes" if ratio >= target else "NO")
    fmt = lambda v: f"{v:,.2f}" if abs(v) < 10 else f"{v:,.0f}"
    print(f"| {name} | {unit} | {fmt(j)} | {fmt(c)} | {ratio:.1f}x | {t} | {ok} |")
js, cc, cli = find("core-append", False), find("core-append", True), find("cli-get", True)
if js and cc:
  print("| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
  row("batched append, 1 KiB, 1000/batch", "blocks/s", js["append_batched"]["blocks_per_s"], cc["append_batched"]["blocks_per_s"], 3)
  row("sequential get", "blocks/s", js["read_seq_get"]["blocks_per_s"], cc["read_seq_get"]["blocks_per_s"], 5)
  row("random get, one at a time", "gets/s", js["random_get"]["gets_per_s"], cc["random_get"]["gets_per_s"], 5)
  row("single append (durable commit each)", "blocks/s", js["append_single"]["blocks_per_s"], cc["append_single"]["blocks_per_s"])
  row("disk per block (batched)", "bytes", js["disk"]["apparent_bytes_per_block"], cc["disk"]["apparent_bytes_per_block"], None, False)
  row("peak RSS", "MB", js["peak_rss_MB"], cc["peak_rss_MB"], None, False)
if cli:
  print(f"\n`p2p core get NAME INDEX` as a whole process: {cli['total_ns'] / cli['runs'] / 1e6:.2f} ms mean over {cli['runs']} runs (target < 10 ms).")

jb, cb, kv = find("bee-put-get", False), find("bee-put-get", True), find("kv-1m", True)
if jb and cb:
  print("\n| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
  row("bee: 100k puts, random order, batched", "ops/s", jb["put_batched"]["ops_per_s"], cb["put_batched"]["ops_per_s"], 5)
  row("bee: single puts (durable commit each)", "ops/s", jb["put_single"]["ops_per_s"], cb["put_single"]["ops_per_s"])
  row("bee: 10k random gets", "ops/s", jb["get_random"]["ops_per_s"], cb["get_random"]["ops_per_s"], 10)
  row("bee: full ordered scan", "keys/s", jb["scan_full"]["keys_per_s"], cb["scan_full"]["keys_per_s"], 10)
  row("bee: 1000-key range scan", "ms", jb["scan_range"]["median_ms"], cb["scan_range"]["median_ms"], None, False)
  row("bee: disk per key (batched)", "bytes", jb["disk"]["bytes_per_key"], cb["disk"]["bytes_per_key"], None, False)
  row("bee: peak RSS (100k keys)", "MB", jb["peak_rss_MB"], cb["peak_rss_MB"], None, False)
if kv:
  print(f"\n`p2p kv import` of 1,000,000 keys: peak RSS {kv['import_peak_rss_MB']} MB.")
  print(f"`p2p kv get KEY` on that 1,000,000-key store as a whole process: {kv['get_total_ns'] / kv['get_runs'] / 1e6:.2f} ms mean over {kv['get_runs']} runs (target < 10 ms).")

jr, cr = find("replicate", False), find("replicate", True)
jr64, cr64 = find("replicate-64k", False), find("replicate-64k", True)
if jr and cr:
  print("\n| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
  row("replicate: full download, 100,000 x 1 KiB", "MB/s", jr["tcp_full"]["MB_per_s"], cr["tcp_full"]["MB_per_s"], 5)
  if jr64 and cr64:
    row("replicate: full download, 2,000 x 64 KiB", "MB/s", jr64["tcp_full"]["MB_per_s"], cr64["tcp_full"]["MB_per_s"], 3)
  row("replicate: 100 random blocks in parallel", "ms", jr["tcp_sparse"]["connect_to_done_ms"], cr["tcp_sparse"]["connect_to_done_ms"], 3, False)
kg = find("kv-get-from", True)
if kg:
  print(f"\n`p2p kv get --from --peer` of one key in a 1,000,000-key bee: {kg['blocks_fetched']} blocks fetched, "
        f"{kg['total_ns'] / 1e6:.0f} ms as a whole process (connect, upgrade, B-tree path).")

dl = [r for r in rows if r.get("bench") == "dht-lookup"]
if dl:
  print("\n| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
  for n in sorted({r["params"]["NODES"] for r in dl}):
    j = next((r for r in dl if r["params"]["NODES"] == n and r.get("impl") != "p2p"), None)
    c = next((r for r in dl if r["params"]["NODES"] == n and r.get("impl") == "p2p"), None)
    if not (j and c): continue
    target = 1 if n == 100 else None
    row(f"dht ({n} nodes): announce, median", "ms", j["announce"]["median_ms"], c["announce"]["median_ms"], None, False)
    row(f"dht ({n} nodes): lookup, median", "ms", j["lookup"]["median_ms"], c["lookup"]["median_ms"], target, False)
    row(f"dht ({n} nodes): UDP messages per lookup", "packets", j["lookup"]["udp_packets_per_op"], c["lookup"]["udp_packets_per_op"], target, False)
    row(f"dht ({n} nodes): UDP messages per announce", "packets", j["announce"]["udp_packets_per_op"], c["announce"]["udp_packets_per_op"], None, False)
jm, cm = find("dht-records", False), find("dht-records", True)
if jm and cm:
  row("dht: memory for 100,000 announce records", "MB", jm["rss_delta_MB"], cm["rss_delta_MB"], 4, False)

rm_, cl = find("room-merge", True), find("chat-latency", True)
if rm_:
  print(f"\nchat: merging {rm_['params']['N']:,} messages from {rm_['params']['WRITERS']} writers: {rm_['merge_ms']:.0f} ms "
        f"(target < 2 s); one more message merged in {rm_['incremental_ms']:.2f} ms; peak RSS +{rm_['rss_increase_kb'] / 1024:.0f} MB.")
if cl:
  print(f"chat: a line entered in one home printed by another: median {cl['median_ms']:.1f} ms, p90 {cl['p90_ms']:.1f} ms "
        f"over {cl['messages']} messages (target: median < 100 ms).")

ju, cu, sf = find("udx-bulk", False), find("udx-bulk", True), find("swarm-first-data", True)
if (ju and cu) or sf:
  print("\n| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
if ju and cu:
  row("udx: bulk transfer, one stream, loopback (256 MiB)", "MB/s", ju["udx_MB_per_s"], cu["udx_MB_per_s"], 1)
  print(f"| udx: p2p UDX against p2p's plain TCP (same loop) | MB/s | TCP {cu['tcp_MB_per_s']:,.0f} | UDX {cu['udx_MB_per_s']:,.0f} | "
        f"{cu['udx_MB_per_s'] / cu['tcp_MB_per_s']:.2f}x | ≥ 0.5x | {'yes' if cu['udx_MB_per_s'] >= 0.5 * cu['tcp_MB_per_s'] else 'NO'} |")
  print(f"| udx: retransmitted packets (256 MiB) | packets | {ju['retransmits']:,} | {cu['retransmits']:,} | | | |")
if sf:
  print(f"| swarm: join until the first byte from a peer, median of {sf['rounds']} | ms | (see below) | {sf['median_ms']:,.0f} | | < 1000 ms | "
        f"{'yes' if sf['median_ms'] < 1000 else 'NO'} |")
if ju:
  print(f"\nNode's net TCP in the same JavaScript process: {ju['tcp_MB_per_s']:,.0f} MB/s; JavaScript UDX is {ju['udx_MB_per_s'] / ju['tcp_MB_per_s']:.2f}x of it.")
if sf:
  print(f"swarm first data: median {sf['median_ms']:.0f} ms, max {sf['max_ms']:.0f} ms over {sf['rounds']} rounds "
        f"(JavaScript hyperswarm, measured by the issue's author: a first connection after 19 ms that carried nothing, 36 s until a working one).")

jd, cd = find("drive-put-get", False), find("drive", True)
GiB = 1024.0
if jd and cd:
  print("\n| workload | unit | JavaScript | p2p | ratio | target | met |")
  print("|---|---|---|---|---|---|---|")
  row("drive: put 10,000 files of 4 KiB", "files/s", jd["small_put"]["files_per_s"], 10000 / (cd["small_put_ns"] / 1e9), 5)
  row("drive: mirror a folder of 10,000 files", "files/s", jd["small_put"]["files_per_s"], 10000 / (cd["mirror_ns"] / 1e9), 5)
  row("drive: get 10,000 files of 4 KiB", "files/s", jd["small_get"]["files_per_s"], 10000 / (cd["small_get_ns"] / 1e9))
  row("drive: put a 1 GiB file", "MB/s", jd["big_put"]["MB_per_s"], GiB / (cd["big_put_ns"] / 1e9), 2)
  row("drive: get a 1 GiB file as a stream (into a pipe, checksummed)", "MB/s", jd["big_get_stream"]["MB_per_s"], GiB / (cd["big_stream_ns"] / 1e9), 2)
  row("drive: get a 1 GiB file into a file (JavaScript: its stream)", "MB/s", jd["big_get_stream"]["MB_per_s"], GiB / (cd["big_get_ns"] / 1e9))
  print(f"\n`cp` of the same 1 GiB file: {GiB / (cd['cp_ns'] / 1e9):,.0f} MB/s into the page cache, "
        f"{GiB / (cd['cp_sync_ns'] / 1e9):,.0f} MB/s including `sync` (p2p commits durably, so the second is the fair one): "
        f"put is {cd['big_put_ns'] / cd['cp_sync_ns']:.1f}x and get {cd['big_get_ns'] / cd['cp_sync_ns']:.1f}x the time of cp+sync (target within 3x).")
PY
