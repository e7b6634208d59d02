#!/usr/bin/env python3
"""Chat latency: a line entered in one home's `p2p chat ROOM` until another
home's `p2p chat log ROOM --follow --json` prints it, on a private DHT on
127.0.0.1. Prints one JSON line (median and p90 over N messages).
Usage: bench/chat_latency.py P2P_BINARY [N]"""
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

p2p = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
tmp = tempfile.mkdtemp()
procs = []


def spawn(args, home=None, **kw):
    env = dict(os.environ)
    if home:
        env["P2P_HOME"] = os.path.join(tmp, home)
    p = subprocess.Popen([p2p] + args, env=env, **kw)
    procs.append(p)
    return p


def lines_of(stream):
    q = queue.Queue()

    def pump():
        for line in stream:
            q.put((time.monotonic(), line))
    threading.Thread(target=pump, daemon=True).start()
    return q


try:
    node = spawn(["dht", "bootstrap", "--host", "127.0.0.1", "--port", "0"],
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bootstrap = node.stdout.readline().strip()
    room = "latency-%d" % os.getpid()
    common = ["--bootstrap", bootstrap]
    reader = spawn(common + ["--json", "chat", "log", room, "--follow"], home="b",
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    writer = spawn(common + ["chat", room], home="a", stdin=subprocess.PIPE,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    got = lines_of(reader.stdout)

    def wait_for(text, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                at, line = got.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if json.loads(line).get("text") == text:
                return at
        return None

    # Until the two are connected: a first message gets through.
    for attempt in range(60):
        writer.stdin.write("warm-up %d\n" % attempt)
        writer.stdin.flush()
        if wait_for("warm-up %d" % attempt, 1.0):
            break
    else:
        sys.exit("chat_latency: the two homes never connected")
    samples = []
    for i in range(n):
        text = "message %d" % i
        sent = time.monotonic()
        writer.stdin.write(text + "\n")
        writer.stdin.flush()
        at = wait_for(text, 5.0)
        if at is None:
            sys.exit("chat_latency: %s never arrived" % text)
        samples.append((at - sent) * 1000)
    samples.sort()
    print(json.dumps({"bench": "chat-latency", "impl": "p2p", "messages": n,
                      "median_ms": round(statistics.median(samples), 2),
                      "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 2),
                      "max_ms": round(samples[-1], 2)}))
finally:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    subprocess.run(["rm", "-rf", tmp])
