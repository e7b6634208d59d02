#!/usr/bin/env python3
"""Swarm first data: the time from `p2p swarm join TOPIC --pipe` starting in
one home until its stdout has the first byte the peer piped in, two processes
on a private DHT on 127.0.0.1. Home A joins first with a few bytes on stdin
(kept open) and is given a second to announce; then home B joins and the
clock runs from B's start (process start, DHT bootstrap, lookup, holepunch
handshake, secret stream) to B's first byte on stdout. Repeated ROUNDS times
with fresh topics and fresh homes (identities made beforehand, outside the
timing). B's stdout is unbuffered (see below). Prints one JSON line.
Usage: bench/swarm_first_data.py P2P_BINARY [ROUNDS=10]"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

p2p = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
limit_s = 60
tmp = tempfile.mkdtemp()
# `p2p swarm join --pipe` writes the peer's bytes to std::cout without a
# flush, so into a pipe they sit in stdio's buffer until it fills or the
# process exits; B's stdout is made unbuffered (as a terminal would make it
# line-buffered) so the time is the bytes' arrival. Set SWARM_BUFFERED=1 to
# measure without it.
unbuffered = () if os.environ.get("SWARM_BUFFERED") else ("stdbuf", "-o0")
procs = []


def spawn(args, home=None, prefix=(), **kw):
    env = dict(os.environ)
    if home:
        env["P2P_HOME"] = os.path.join(tmp, home)
    p = subprocess.Popen(list(prefix) + [p2p] + args, env=env, **kw)
    procs.append(p)
    return p


def stop(p):
    p.kill()
    p.wait()
    procs.remove(p)


def wait_for_line(stream, needle, timeout):
    """True once a line of stream contains needle (read on a thread)."""
    found = threading.Event()

    def pump():
        for line in stream:
            if needle in line:
                found.set()
    threading.Thread(target=pump, daemon=True).start()
    return found.wait(timeout)


try:
    node = spawn(["dht", "bootstrap", "--host", "127.0.0.1", "--port", "0"],
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bootstrap = node.stdout.readline().strip()
    common = ["--bootstrap", bootstrap]
    samples = []
    for i in range(rounds):
        topic = "first-data-%d-%d" % (os.getpid(), i)
        for h in ("a%d" % i, "b%d" % i):
            subprocess.run([p2p, "id", "show"], env=dict(os.environ, P2P_HOME=os.path.join(tmp, h)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        a = spawn(common + ["swarm", "join", topic, "--pipe"], home="a%d" % i, stdin=subprocess.PIPE,
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        a.stdin.write("hello from a\n")
        a.stdin.flush()
        if not wait_for_line(a.stderr, "joined", limit_s):
            sys.exit("swarm_first_data: home A never joined the DHT")
        time.sleep(1.0)  # A's announce on a one-node DHT
        t0 = time.monotonic()
        b = spawn(common + ["swarm", "join", topic, "--pipe"], home="b%d" % i, prefix=unbuffered, stdin=subprocess.PIPE,
                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        got = [None]

        def first_byte(out=b.stdout):
            if out.read(1):
                got[0] = time.monotonic()
        reader = threading.Thread(target=first_byte, daemon=True)
        reader.start()
        reader.join(limit_s)
        if got[0] is None:
            sys.exit("swarm_first_data: round %d: no byte within %d s" % (i, limit_s))
        samples.append((got[0] - t0) * 1000)
        print("swarm_first_data: round %d: %.1f ms" % (i, samples[-1]), file=sys.stderr)
        stop(b)
        stop(a)
    print(json.dumps({"bench": "swarm-first-data", "impl": "p2p", "rounds": rounds,
                      "median_ms": round(statistics.median(samples), 1),
                      "min_ms": round(min(samples), 1), "max_ms": round(max(samples), 1),
                      "samples_ms": [round(s, 1) for s in samples]}))
finally:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    subprocess.run(["rm", "-rf", tmp])
