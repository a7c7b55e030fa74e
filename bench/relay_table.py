#!/usr/bin/env python3
"""relay_table.py RESULTS RELAY_RESULTS: the relay pass's table (relay.sh, after bench.sh's).
RESULTS: bench.sh's pass lines (server=... pass=relay ok= fail= rate= cpu_us= secs= ...);
RELAY_RESULTS: relay.sh's lines (server=... sessions= calls= managed= terminated= timedout=
rtpe_cpu_ms= pass_secs=, or server=... notrun=WHY). Exit 1 if a server left rtpengine
sessions or its relay pass did not run (failures are stats.py's to report)."""
import sys


def read(fn, keep):
    d = {}
    for line in open(fn):
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if "server" in kv and keep(kv):
            d[kv["server"]] = kv
    return d


def main(results, relay_results):
    res = read(results, lambda kv: kv.get("pass") == "relay")
    rel = read(relay_results, lambda kv: True)
    print("relay pass: media always, through one fresh local rtpengine per server (no RTP sent);")
    print("cpu = the server's user+system per call (its process and children, as above); rtpengine's")
    print("CPU over the same measured run apart, not counted; sessions left = rtpengine's own sessions")
    print("after the measured run (must be 0); created/deleted since rtpengine started (warm-up too)")
    cols = ["server", "calls/s", "cpu µs/call", "rtpengine µs/call", "fail", "sessions left",
            "created", "deleted", "timed out", "measured s", "whole pass s"]
    rows, notes, bad = [], [], 0
    for s, r in rel.items():
        p = res.get(s, {})
        if "notrun" in r:
            notes.append(f"NOT RUN: {s}: {r['notrun'].replace('_', ' ')}")
            bad = 1
            continue
        try:
            rcpu = int(r["rtpe_cpu_ms"]) * 1000 // max(int(p.get("ok", "0") or 0), 1)
        except ValueError:
            rcpu = "?"
        left = r["sessions"] if r["sessions"] == r["calls"] else f"{r['sessions']} (list {r['calls']})"
        try:  # rtpengine's managedsessions counts the sessions that have ended
            created = int(r["managed"]) + int(r["sessions"])
        except (KeyError, ValueError):
            created = "?"
        rows.append([s, p.get("rate", "?"), p.get("cpu_us", "?"), rcpu, p.get("fail", "?"), left,
                     created, r.get("terminated", "?"), r.get("timedout", "?"),
                     p.get("secs", "?"), r.get("pass_secs", "?")])
        if r["sessions"] != "0" or r["calls"] != "0":
            bad = 1
            notes.append(f"LEAK: {s} left {r['sessions']} rtpengine sessions (must be 0); "
                         f"their call-IDs: relay/{s}/sessions-left.txt")
    if rows:
        w = [max(len(str(x[i])) for x in rows + [cols]) for i in range(len(cols))]
        fmt = lambda r: "  ".join(str(v).rjust(w[i]) if i else str(v).ljust(w[i]) for i, v in enumerate(r))
        print(fmt(cols))
        print(fmt(["-" * x for x in w]))
        for r in rows:
            print(fmt(r))
    for n in notes:
        print(n)
    a, b = res.get("parley"), res.get("kamailio")
    if a and b:
        def ratio(k):
            try:
                return f"{float(a[k]) / float(b[k]):.2f}"
            except (KeyError, ValueError, ZeroDivisionError):
                return "n/a"
        x = ratio("cpu_us")
        met = "n/a" if x == "n/a" else ("met" if float(x) <= 1 / 3 else "NOT met")
        print(f"\nParley/Kamailio relay   cpu/call {x} (target <= 0.33: {met})   "
              f"throughput {ratio('rate')}   p50 {ratio('p50_ms')}   p99 {ratio('p99_ms')}")
    return bad


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
